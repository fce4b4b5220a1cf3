"""On the real node: a pull request's preview is really built by kaniko, really pulled and
run by containerd, and really served by Traefik behind the preview's password.

The service runs as its Procfile processes against the node's own cluster
(tests/testbed/node/node.py); Gitea, PostgreSQL and Redis are the session's.
"""

from __future__ import annotations

import base64
import re
import time
import uuid

import pytest
import requests
from kubernetes import client as k8s

from app.adapters.traffic import TraefikTraffic
from tests.testbed.gitea_repo import create_repository
from tests.testbed.gitea_server import BOT
from tests.testbed.kube.waiting import eventually, namespace_gone
from tests.testbed.node.checks import in_pod, page, pod_logs, success_status
from tests.testbed.node.service import hooked_service_env, prepare_builds, sample_app
from tests.testbed.servers import free_port
from tests.testbed.service_processes import SecretEnv, service_processes

pytestmark = [pytest.mark.node, pytest.mark.gitea, pytest.mark.slow]

SECRET = "node-webhook-secret-" + uuid.uuid4().hex[:8]
API_TOKEN = "node-api-token-" + uuid.uuid4().hex
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def stack(gitea, real_node, redis_server, postgres_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("node")
    port = free_port()
    web_host, web_port = real_node.expose(port)  # where Traefik sends a sleeping preview's visitors
    prepare_builds(real_node, BOT, gitea.bot_token)
    database = postgres_server.create_database(f"node_{uuid.uuid4().hex[:8]}")
    env = {
        **hooked_service_env(real_node, gitea, redis_server.url, database, port, SECRET, "node"),
        "API_TOKENS": API_TOKEN,
        "WAKE_ENDPOINT": f"{web_host}:{web_port}",
        # Previews sleep only when their file asks (test_an_idle_preview_sleeps_...).
        "PREVIEW_IDLE_AFTER": "0",
    }
    api = real_node.plane.api_client()
    with service_processes(env, folder, port):
        yield {"url": f"http://127.0.0.1:{port}", "folder": folder, "env": SecretEnv(env), "api": api}
    api.close()


def hooked_repository(gitea, stack, workdir, prefix: str, files: dict[str, str]):
    """A repository of the test Gitea whose webhook calls this module's service."""
    return create_repository(
        gitea,
        f"{prefix}-{uuid.uuid4().hex[:6]}",
        workdir,
        webhook_url=f"{stack['url']}/webhooks/gitea",
        secret=SECRET,
        files=files,
    )


@pytest.fixture
def repo(gitea, real_node, stack, tmp_path):
    return hooked_repository(
        gitea, stack, tmp_path / "work", "node-app", sample_app(real_node.image("base"), "first version")
    )


def routing_state(real_node, namespace: str) -> str:
    """The preview's HTTPRoute as Traefik left it (its status), and what Traefik said."""
    routes = real_node.plane.kubectl(
        "get", "httproute,middleware,endpointslice,networkpolicy", "-n", namespace, "-o", "yaml", check=False
    )
    return f"{routes.stdout}{routes.stderr}\n{pod_logs(real_node, 'traefik')}"


def test_a_pr_is_built_run_and_served_behind_its_password_then_updated_then_gone(real_node, stack, repo):
    sha1 = repo.commit("feature/page", sample_app(real_node.image("base"), "hello reviewers"), "A page")
    number = repo.open_pr("feature/page")
    status = success_status(repo, sha1, real_node)
    host = status["target_url"].split("://", 1)[1].split("/", 1)[0]
    namespace = "preview-" + host.split(".", 1)[0]
    api = stack["api"]

    # The image the Deployment runs is the digest kaniko pushed, and the registry holds it.
    container = k8s.AppsV1Api(api).list_namespaced_deployment(namespace).items[0].spec.template.spec.containers[0]
    repository, digest = container.image.split("@")
    registry, path = repository.split("/", 1)
    manifest = requests.head(
        f"http://{registry}/v2/{path}/manifests/{digest}",
        auth=(real_node.registry_user, real_node.registry_password),
        headers={"Accept": MANIFEST_TYPES},
        timeout=10,
    )
    assert manifest.status_code == 200
    assert manifest.headers["Docker-Content-Digest"] == digest
    [pod] = k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=app").items
    assert pod.status.container_statuses[0].image_id.endswith(digest)

    # Ready means ready through Traefik too: the deploy asked it (PREVIEW_INGRESS_URL) until
    # the route reached the app, so at once the password is asked for, and with it the page
    # of this very commit is served (not Traefik's 404 or 503).
    assert page(real_node, host).status_code == 401, routing_state(real_node, namespace)
    secret = k8s.CoreV1Api(api).read_namespaced_secret("preview-basic-auth", namespace).data
    credentials = tuple(base64.b64decode(secret[key]).decode() for key in ("username", "password"))
    assert page(real_node, host, auth=(credentials[0], "wrong")).status_code == 401
    answer = page(real_node, host, auth=credentials)
    assert answer.status_code == 200, routing_state(real_node, namespace)
    assert answer.text == f"commit {sha1}\nhello reviewers\n"

    # A push: the same address serves the new commit.
    sha2 = repo.commit("feature/page", {"site/message.txt": "second version\n"}, "Reword")
    assert success_status(repo, sha2, real_node)["target_url"] == status["target_url"]
    eventually(
        lambda: page(real_node, host, auth=credentials).text == f"commit {sha2}\nsecond version\n",
        timeout=60,
        what="the page of the second commit",
    )

    # Closed: the namespace goes, and the host is no longer routed.
    repo.close_pr(number)
    eventually(lambda: namespace_gone(api, namespace), timeout=180, what="namespace deleted after close")
    eventually(lambda: page(real_node, host).status_code == 404, timeout=30, what="host answers 404")


@pytest.fixture(scope="module")
def served(real_node, stack, gitea, tmp_path_factory):
    """One ready preview for the tests that only look at it."""
    repo = hooked_repository(
        gitea,
        stack,
        tmp_path_factory.mktemp("served") / "work",
        "node-served",
        sample_app(real_node.image("base"), "first version"),
    )
    sha = repo.commit("feature/served", {"site/message.txt": "served\n"}, "Serve")
    repo.open_pr("feature/served")
    host = success_status(repo, sha, real_node)["target_url"].split("://", 1)[1].split("/", 1)[0]
    namespace = "preview-" + host.split(".", 1)[0]
    [service] = k8s.CoreV1Api(stack["api"]).list_namespaced_service(namespace).items
    return {"namespace": namespace, "host": host, "service": service.metadata.name, "sha": sha}


def test_a_visit_through_traefik_is_seen_and_a_refused_request_is_not(real_node, stack, served):
    secret = k8s.CoreV1Api(stack["api"]).read_namespaced_secret("preview-basic-auth", served["namespace"]).data
    credentials = tuple(base64.b64decode(secret[key]).decode() for key in ("username", "password"))
    headers = {"Authorization": f"Bearer {API_TOKEN}"}

    def shown() -> dict:
        listed = requests.get(f"{stack['url']}/api/previews?per_page=200", headers=headers, timeout=10).json()
        return next(p for p in listed["items"] if p["namespace"] == served["namespace"])

    # Traefik takes a few seconds to know a new route, its middleware and its endpoints.
    eventually(
        lambda: page(real_node, served["host"], auth=credentials).status_code == 200, timeout=30, what="the page"
    )
    # Traefik's own counters, read as the scheduler reads them, count the app's requests.
    counters = TraefikTraffic(stack["env"]["TRAFFIC_METRICS_URL"])
    wanted = (served["namespace"], served["service"])
    before = counters.requests_to([wanted])[wanted]
    assert page(real_node, served["host"], auth=credentials).status_code == 200
    eventually(lambda: counters.requests_to([wanted])[wanted] > before, timeout=10, what="Traefik to count it")

    def visited() -> str | None:
        page(real_node, served["host"], auth=credentials)  # one more each try: the first read is a baseline
        return shown()["last_visit_at"]

    eventually(visited, timeout=90, what="the scheduler to see the visit")
    time.sleep(15 + 2)  # the next pass takes in the last of those requests
    seen = shown()["last_visit_at"]
    # Without the password Traefik answers 401 itself: the app's count does not move.
    for _ in range(5):
        assert page(real_node, served["host"]).status_code == 401
    counted = counters.requests_to([wanted])[wanted]
    time.sleep(2 * 15 + 2)  # two scheduler passes
    assert counters.requests_to([wanted])[wanted] == counted
    assert shown()["last_visit_at"] == seen


def test_a_preview_pod_resolves_names_and_reaches_its_own_services(real_node, served):
    service = f"{served['service']}.{served['namespace']}.svc.cluster.local"
    code, log = in_pod(real_node, served["namespace"], f"getent hosts {service} && curl -sS -m 10 http://{service}/")
    assert code == 0, log
    assert f"commit {served['sha']}" in log
    # Names outside the cluster are refused, never asked of a resolver outside the machine.
    code, log = in_pod(real_node, served["namespace"], "getent hosts example.com")
    assert code != 0, log


def test_the_egress_and_isolation_policies_are_enforced(real_node, served):
    # The canary answers whoever the network lets through: the node itself does reach it.
    reached = real_node.run_inside("curl", "-sS", "-m", "5", real_node.canary_url, check=False)
    assert reached.stdout == "canary\n", reached.stderr
    if not real_node.policy_enforced:
        pytest.skip(
            "NetworkPolicy is not enforced on this machine: its kernel lacks nftables' queue statement"
            " (CONFIG_NFT_QUEUE), which kube-network-policies needs"
        )
    canary = f"curl -sS -m 5 {real_node.canary_url}"
    code, log = in_pod(real_node, served["namespace"], canary)
    assert code != 0, "a preview reached an address in a denied range"
    assert "canary" not in log, "a preview reached an address in a denied range"
    code, log = in_pod(real_node, "preview-builds", canary)
    assert code != 0, "a build reached an address in a denied range"
    assert "canary" not in log, "a build reached an address in a denied range"
    # Another namespace's pod cannot reach the preview's Service.
    api = real_node.plane.api_client()
    outsider = f"outsider-{uuid.uuid4().hex[:6]}"
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": outsider}})
    service = f"{served['service']}.{served['namespace']}.svc.cluster.local"
    code, log = in_pod(real_node, outsider, f"curl -sS -m 5 http://{service}/")
    assert code != 0, "a pod of another namespace reached the preview"
    assert "commit" not in log, "a pod of another namespace reached the preview"
    k8s.CoreV1Api(api).delete_namespace(outsider)
    api.close()


def test_a_real_kubelet_s_failures_are_said_in_a_sentence(real_node, stack, gitea, tmp_path):
    repo = hooked_repository(gitea, stack, tmp_path / "work", "node-fail", sample_app(real_node.image("base"), "fine"))
    base = real_node.image("base")
    missing = f"{real_node.registry}/previews/{repo.full_name.replace('/', '-')}/missing@sha256:{'0' * 64}"
    cases = {
        # branch: (files, what the status must say)
        "crash": ({"Dockerfile": f'FROM {base}\nCMD ["sh", "-c", "echo starting; exit 1"]\n'}, "keeps crashing"),
        # One line of 700 MiB, which sort holds whole: past the app's 512 MiB limit.
        "oom": (
            {"Dockerfile": f'FROM {base}\nCMD ["sh", "-c", "head -c 734003200 /dev/zero | sort"]\n'},
            "more memory than its limit",
        ),
        "pull": ({".gitea/preview.yml": f"image: {missing}\n"}, "cannot be pulled"),
    }
    shas = {}
    for branch, (files, _) in cases.items():
        shas[branch] = repo.commit(f"fail/{branch}", files, f"Fail: {branch}")
        repo.git("checkout", "main")
        repo.open_pr(f"fail/{branch}")
    for branch, (_, sentence) in cases.items():
        status = eventually(
            lambda sha=shas[branch]: (found := repo.latest_status(sha)) and found["status"] == "failure" and found,
            timeout=300,
            interval=1,
            what=f"the {branch} preview to fail",
        )
        assert sentence in status["description"], (branch, status["description"])


# Runs as root, as a hostile Dockerfile would; prints its environment, then every (small) file
# it can read under the places a credential could be: kaniko's own folder, /var/run and /run
# (a service account token would be there) and the source.
PEEKING_DOCKERFILE = """FROM {base}
USER root
COPY . /src
RUN echo "== env"; env; for d in /kaniko /var/run /run /workspace /src; do \\
      find "$d" -type f 2>/dev/null | while read -r f; do \\
        echo "== $f"; [ "$(wc -c < "$f" 2>/dev/null)" -lt 65536 ] 2>/dev/null && cat "$f"; echo; \\
      done; \\
    done; chmod 755 /src/site/cgi-bin/index.cgi
USER 65532
CMD ["httpd", "-f", "-p", "8080", "-h", "/src/site"]
"""


def test_an_approved_fork_s_build_sees_no_git_credential_and_no_service_account_token(
    real_node, stack, gitea, tmp_path
):
    repo = hooked_repository(
        gitea, stack, tmp_path / "work", "node-fork", sample_app(real_node.image("base"), "upstream")
    )
    gitea.api("PUT", f"/repos/{repo.full_name}/collaborators/{BOT}", json={"permission": "admin"})
    stranger = f"stranger{uuid.uuid4().hex[:6]}"
    password = gitea.create_user(stranger)
    dockerfile = PEEKING_DOCKERFILE.format(base=real_node.image("base"))
    number, sha = repo.fork_pr(stranger, password, "fork/peek", {"Dockerfile": dockerfile})
    eventually(lambda: (repo.latest_status(sha) or {}).get("status") == "pending", what="waiting for approval")
    repo.add_label(number, "preview:approved")
    success_status(repo, sha, real_node)

    # The build's log, read back as an agent would: through the API.
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    [preview] = requests.get(
        f"{stack['url']}/api/previews", params={"repository": repo.full_name}, headers=bearer, timeout=10
    ).json()["items"]
    answer = requests.get(f"{stack['url']}/api/previews/{preview['id']}/logs?tail=5000", headers=bearer, timeout=10)
    assert answer.status_code == 200
    log = answer.json()["build"]
    # The RUN did look (not a vacuous pass): its environment and kaniko's own files are there,
    # and a mounted Secret's file (behind the volume's ..data links), so one more would show.
    # Booleans first: a failing assert must not print the log (it holds the registry's push config).
    looked = all(f"== {marker}" in log for marker in ("env", "/kaniko/executor", "/workspace/Dockerfile"))
    push_config_seen = re.search(r"^== /kaniko/\.docker/\S*config\.json$", log, re.MULTILINE) is not None
    assert looked, "the build's RUN did not list what it can read"
    assert push_config_seen, "the mounted push configuration was not among the files the build read"
    git_token_seen = gitea.bot_token in log or "git-credentials" in log or "GIT_PASSWORD" in log
    account_token_seen = "serviceaccount" in log or "eyJhbGciOi" in log  # a projected token is a JWT
    assert not git_token_seen, "the build saw the git credential"
    assert not account_token_seen, "the build saw a service account token"


def database_app(postgres_image: str, migrate: str) -> dict[str, str]:
    """An app on the test bed's PostgreSQL image (for psql): its page counts the rows that seed
    put in the table that migrate made. psql finds the database in the PG* variables."""
    return {
        "Dockerfile": (
            f"FROM {postgres_image}\n"
            "COPY site /site\n"
            "RUN chmod 755 /site/cgi-bin/index.cgi\n"
            "ENTRYPOINT []\n"
            'CMD ["busybox", "httpd", "-f", "-p", "8080", "-h", "/site"]\n'
        ),
        "site/cgi-bin/index.cgi": (
            "#!/bin/sh\n"
            "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
            'echo "commit $PREVIEW_COMMIT"\n'
            "echo \"rows $(psql -tAc 'select count(*) from visits')\"\n"
        ),
        ".gitea/preview.yml": (
            "database:\n"
            "  engine: postgres\n"
            f'  migrate: [psql, -v, ON_ERROR_STOP=1, -c, "{migrate}"]\n'
            '  seed: [psql, -v, ON_ERROR_STOP=1, -c, "insert into visits select generate_series(1, 3)"]\n'
        ),
    }


def with_password(real_node, namespace: str, host: str) -> str:
    """The preview's page through Traefik, with the preview's own credentials."""
    api = real_node.plane.api_client()
    secret = k8s.CoreV1Api(api).read_namespaced_secret("preview-basic-auth", namespace).data
    api.close()
    credentials = tuple(base64.b64decode(secret[key]).decode() for key in ("username", "password"))
    return page(real_node, host, auth=credentials).text


def test_a_preview_s_own_postgresql_is_migrated_every_push_and_seeded_once(real_node, stack, gitea, tmp_path):
    repo = hooked_repository(
        gitea, stack, tmp_path / "work", "node-db", sample_app(real_node.image("base"), "no database yet")
    )
    image = real_node.image("postgres")
    sha1 = repo.commit("feature/db", database_app(image, "create table if not exists visits (n int)"), "A table")
    repo.open_pr("feature/db")
    host = success_status(repo, sha1, real_node)["target_url"].split("://", 1)[1].split("/", 1)[0]
    namespace = "preview-" + host.split(".", 1)[0]
    # The server is the StatefulSet in the namespace, on a volume of its own.
    api = stack["api"]
    [claim] = k8s.CoreV1Api(api).list_namespaced_persistent_volume_claim(namespace).items
    assert claim.status.phase == "Bound"
    assert eventually(lambda: with_password(real_node, host=host, namespace=namespace) == f"commit {sha1}\nrows 3\n")

    # A second push: migrate runs again, seed does not (the rows stay 3).
    sha2 = repo.commit("feature/db", {"site/readme.txt": "second\n"}, "Second")
    success_status(repo, sha2, real_node, namespace=namespace)
    eventually(
        lambda: with_password(real_node, host=host, namespace=namespace) == f"commit {sha2}\nrows 3\n",
        what="the second commit's page, the seed not run again",
    )
    jobs = {job.metadata.name for job in k8s.BatchV1Api(api).list_namespaced_job(namespace).items}
    assert {f"migrate-{sha1[:12]}", f"migrate-{sha2[:12]}", f"seed-{sha1[:12]}"} <= jobs
    assert f"seed-{sha2[:12]}" not in jobs

    # A failing migrate: the status says why, and the second version keeps serving.
    broken = database_app(image, "select no_such_function()")
    sha3 = repo.commit("feature/db", {".gitea/preview.yml": broken[".gitea/preview.yml"]}, "Broken migration")
    failed = eventually(
        lambda: (found := repo.latest_status(sha3)) and found["status"] == "failure" and found,
        timeout=300,
        interval=1,
        what="the broken migration's failure",
    )
    assert "migrat" in failed["description"], failed["description"]
    assert with_password(real_node, host=host, namespace=namespace) == f"commit {sha2}\nrows 3\n"


def test_an_idle_preview_sleeps_and_a_visit_with_its_password_wakes_it(real_node, stack, gitea, tmp_path):
    files = {**sample_app(real_node.image("base"), "first version"), ".gitea/preview.yml": "idle_after: 20s\n"}
    repo = hooked_repository(gitea, stack, tmp_path / "work", "node-sleepy", files)
    sha = repo.commit("feature/sleepy", {"site/message.txt": "awake\n"}, "Sleepy")
    repo.open_pr("feature/sleepy")
    host = success_status(repo, sha, real_node)["target_url"].split("://", 1)[1].split("/", 1)[0]
    namespace = "preview-" + host.split(".", 1)[0]
    secret = k8s.CoreV1Api(stack["api"]).read_namespaced_secret("preview-basic-auth", namespace).data
    credentials = tuple(base64.b64decode(secret[key]).decode() for key in ("username", "password"))
    app_page = f"commit {sha}\nawake\n"
    eventually(lambda: page(real_node, host, auth=credentials).text == app_page, timeout=30, what="the app")

    def state() -> str:
        listed = requests.get(
            f"{stack['url']}/api/previews?per_page=200", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
        ).json()
        return next(p for p in listed["items"] if p["namespace"] == namespace)["state"]

    # 20 s without a visit, then the scheduler's next pass (every 15 s) puts it to sleep.
    eventually(lambda: state() == "sleeping", timeout=120, interval=2, what="the preview to sleep")
    core = k8s.CoreV1Api(stack["api"])
    eventually(
        # Gone, not only terminating: a terminating pod may still serve (busybox's httpd as
        # PID 1 ignores SIGTERM and lives out its grace period).
        lambda: not core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=app").items,
        timeout=60,
        what="its pod to go",
    )
    assert success_status(repo, sha, real_node)["description"] == "Preview asleep: wakes on first visit"

    # Still behind its password: Traefik answers 401 without it, and nothing wakes.
    assert page(real_node, host).status_code == 401
    # A HEAD or a link-preview bot with the password sees the wake page without waking it.
    head = page(real_node, host, auth=credentials, method="HEAD")
    assert head.status_code == 503, (head.status_code, head.headers)
    bot = page(real_node, host, auth=credentials, headers={"User-Agent": "Slackbot-LinkExpanding 1.0"})
    assert (bot.status_code, "asleep" in bot.text) == (503, True), bot.text
    time.sleep(2 * 15 + 2)  # two scheduler passes: a wake it asked for would have started
    assert state() == "sleeping"

    # A browser with the password: the wake page, then the app within the bound.
    browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"}
    started = time.monotonic()
    first = page(real_node, host, auth=credentials, headers=browser)
    assert (first.status_code, "waking up" in first.text) == (503, True), first.text
    eventually(
        lambda: page(real_node, host, auth=credentials, headers=browser).text == app_page,
        timeout=30,
        interval=0.5,
        what="the app to answer again",
    )
    woke_in = time.monotonic() - started
    print(f"woke in {woke_in:.1f} s")
    assert woke_in < 10
    assert state() == "ready"
