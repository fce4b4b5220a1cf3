"""The chart, installed for real on the real node: the service's own image (built there by
our kaniko build Job), `helm install`, a preview made by the in-cluster service with the
chart's accounts and admission policies in force, `helm upgrade` while a preview deploys,
and `helm uninstall`.

The tests of this module run in order against one release (a module fixture).
"""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from kubernetes import client as k8s

from tests.testbed.gitea_repo import create_repository
from tests.testbed.gitea_server import BOT
from tests.testbed.kube.waiting import eventually, namespace_gone
from tests.testbed.node import release as chart
from tests.testbed.node.checks import page, success_status
from tests.testbed.node.service import prepare_builds, sample_app
from tests.testbed.node.service_image import service_image_builder
from tests.testbed.node.wheelhouse import served, wheelhouse
from tests.testbed.service_processes import ROOT

pytestmark = [pytest.mark.node, pytest.mark.gitea, pytest.mark.slow]

API_TOKEN = "chart-api-token-" + uuid.uuid4().hex
# Rows every authenticated account has (discovery, asking about itself): not the chart's rights.
EVERYONE = re.compile(r"^(selfsubject\w+\.authorization\.k8s\.io|selfsubjectreviews\.authentication\.k8s\.io|\s*\[)")


@pytest.fixture(scope="module")
def images(real_node, gitea, tmp_path_factory):
    """Two images of the service: the working tree's, and a later commit's (for the upgrade).
    Built in the host-run service's build namespace, with its registry and git credentials."""
    prepare_builds(real_node, BOT, gitea.bot_token)
    with served(wheelhouse()) as wheels_port:
        host, port = real_node.expose(wheels_port)
        builder = service_image_builder(
            real_node, gitea, tmp_path_factory.mktemp("image") / "src", f"http://{host}:{port}/"
        )
        first = builder.build(builder.repo.git("rev-parse", "HEAD"))
        second = builder.build(builder.change())
    assert first != second
    return first, second


@pytest.fixture(scope="module")
def release(real_node, gitea, postgres_server, redis_server, images, tmp_path_factory):
    installed = chart.prepare_release(
        real_node,
        tmp_path_factory.mktemp("release"),
        database_url=postgres_server.create_database(f"chart_{uuid.uuid4().hex[:8]}"),
        redis_url=redis_server.url,
        gitea_port=gitea.port,
        gitea_token=gitea.bot_token,
        webhook_secret="chart-webhook-" + uuid.uuid4().hex[:8],
        api_token=API_TOKEN,
        queue=f"chart-{uuid.uuid4().hex[:8]}",
    )
    installed.install(images[0])
    chart.grant_builds(installed, BOT, gitea.bot_token)
    return installed


def pods_of(release, component: str) -> list:
    api = release.node.plane.api_client()
    selector = f"app.kubernetes.io/instance={chart.RELEASE},app.kubernetes.io/component={component}"
    pods = k8s.CoreV1Api(api).list_namespaced_pod(chart.NAMESPACE, label_selector=selector).items
    api.close()
    return [pod for pod in pods if pod.metadata.deletion_timestamp is None]


def test_helm_install_migrates_then_every_process_is_ready_by_its_own_probe(release, images):
    # The migration hook ran to completion before the Deployments (Helm deletes it once it succeeded).
    assert release.exec("web", "flask", "--app", "app", "migrate", "--check").returncode == 0
    history = release.helm("history", chart.RELEASE, "-o", "yaml").stdout
    assert "status: deployed" in history
    for component in chart.COMPONENTS:
        [pod] = pods_of(release, component)
        [container] = pod.spec.containers
        assert container.image == images[0]
        assert container.readiness_probe, component
        assert container.liveness_probe, component
        assert container.security_context.read_only_root_filesystem, component
        assert all(status.ready for status in pod.status.container_statuses), component
    # Not root, and the image's own files cannot be changed.
    who = release.exec("worker", "python", "-c", "import os; print(os.getuid(), os.getgid())").stdout.split()
    assert who == ["10001", "10001"]
    write = release.exec("web", "python", "-c", "open('/opt/previews/x', 'w')", check=False)
    assert write.returncode != 0
    assert "Read-only file system" in write.stderr
    # The worker's probe is the file its loop touches, not a process that merely exists.
    stale = release.exec("worker", "python", "-m", "workers.health", "/tmp/alive", "0", check=False)
    assert stale.returncode == 1
    assert "the loop is stuck" in stale.stderr


def can_i(release, account: str, namespace: str) -> list[str]:
    """`kubectl auth can-i --list` with the token a running pod of `account` holds."""
    listed = release.kubectl_as("web" if account == "web" else "worker", "auth", "can-i", "--list", "-n", namespace)
    rows = [" ".join(line.split()) for line in listed.stdout.splitlines()[1:]]
    return [row for row in rows if row and not EVERYONE.match(row)]


def rights_table(release, preview_namespace: str) -> str:
    """The README's table: what each account may do where, as the API server answers."""
    scopes = [
        ("worker, scheduler (previews)", "worker", preview_namespace, "a preview namespace"),
        ("worker, scheduler (previews)", "worker", chart.BUILD_NAMESPACE, "the build namespace"),
        ("worker, scheduler (previews)", "worker", "default", "any other namespace"),
        ("web, mcp (previews-web)", "web", preview_namespace, "a preview namespace"),
        ("web, mcp (previews-web)", "web", chart.BUILD_NAMESPACE, "the build namespace"),
        ("web, mcp (previews-web)", "web", "default", "any other namespace"),
    ]
    return tabulate([(label, where, can_i(release, account, namespace)) for label, account, namespace, where in scopes])


def tabulate(scopes: list[tuple[str, str, list[str]]]) -> str:
    """Markdown rows from `can-i --list` rows: one per account, place, names and verbs."""
    lines = ["| account | where | resources | names | verbs |", "|---|---|---|---|---|"]
    for label, where, rows in scopes:
        grouped: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            resource, _, names, verbs = re.match(r"(\S+) (\[.*?\]) (\[.*?\]) (\[.*\])", row).groups()
            grouped.setdefault((names.strip("[]") or "any", verbs.strip("[]")), []).append(resource)
        for (names, verbs), resources in sorted(grouped.items(), key=lambda item: (-len(item[0][1]), item[0])):
            lines.append(f"| {label} | {where} | {', '.join(sorted(resources))} | {names} | {verbs} |")
        if not grouped:
            lines.append(f"| {label} | {where} | nothing | | |")
    return "\n".join(lines)


def readme_rights_table() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- rights: start -->\n(.*?)\n<!-- rights: end -->", readme, re.S)
    assert found, "the README has no rights table between its markers"
    return found.group(1).strip()


def ready(release, repo, sha: str) -> dict:
    """The commit's success status, or a failure that shows the release's own logs too."""
    return success_status(
        repo, sha, release.node, timeout=420, build_namespace=chart.BUILD_NAMESPACE, service_logs=release.explain
    )


def api(release, path: str) -> requests.Response:
    return requests.get(f"{release.public_url}/api{path}", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30)


def test_a_preview_made_by_the_installed_service_serves_then_survives_an_upgrade_then_goes(
    release, images, real_node, gitea, tmp_path
):
    repo = create_repository(gitea, f"chart-app-{uuid.uuid4().hex[:6]}", tmp_path / "work", files=sample_app(
        real_node.image("base"), "first version"
    ))  # fmt: skip
    gitea.api("PUT", f"/repos/{repo.full_name}/collaborators/{BOT}", json={"permission": "admin"})  # to add hooks
    added = release.exec("web", "flask", "--app", "app", "repos", "add", repo.full_name)
    assert f"calls {release.public_url}/webhooks/gitea" in added.stdout

    sha1 = repo.commit("feature/page", sample_app(real_node.image("base"), "from the installed service"), "A page")
    number = repo.open_pr("feature/page")
    status = ready(release, repo, sha1)
    host = status["target_url"].split("://", 1)[1].split("/", 1)[0]
    namespace = "preview-" + host.split(".", 1)[0]

    # Through Traefik, with the password the web reads with its own account (GET …/credentials).
    [preview] = api(release, f"/previews?repository={repo.full_name}").json()["items"]
    credentials = api(release, f"/previews/{preview['id']}/credentials").json()
    auth = (credentials["username"], credentials["password"])
    answer = eventually(
        lambda: (found := page(real_node, host, auth=auth)).status_code == 200 and found,
        timeout=60,
        what="the preview's page through Traefik",
    )
    assert answer.text == f"commit {sha1}\nfrom the installed service\n"
    assert page(real_node, host).status_code == 401
    logs = api(release, f"/previews/{preview['id']}/logs")
    assert logs.status_code == 200, logs.text

    # What the accounts may do, as the API server answers for the pods' own tokens.
    table = rights_table(release, namespace)  # compared with the README's at the end
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in table.splitlines()[2:]]
    web_rights = [row for row in cells if row[0].startswith("web") and row[1] == "a preview namespace"]
    assert {resource for row in web_rights for resource in row[2].split(", ")} == {"pods", "pods/log", "secrets"}
    assert set().union(*(row[4].split() for row in web_rights)) == {"get", "list"}
    assert {row[3] for row in web_rights if row[2] == "secrets"} == {"preview-basic-auth", "preview-database"}

    # A push, and while its build runs, the upgrade to the second image (migration Job first).
    sha2 = repo.commit("feature/page", {"site/message.txt": "during the upgrade\n"}, "Reword")
    eventually(
        lambda: (found := repo.latest_status(sha2)) and found["status"] == "pending" and found,
        timeout=60,
        what="the second commit's pending status",
    )
    release.upgrade(images[1])
    assert ready(release, repo, sha2)["target_url"] == status["target_url"]
    eventually(
        lambda: page(real_node, host, auth=auth).text == f"commit {sha2}\nduring the upgrade\n",
        timeout=60,
        what="the second commit's page",
    )
    for component in chart.COMPONENTS:
        assert [pod.spec.containers[0].image for pod in pods_of(release, component)] == [images[1]], component
    assert len(repo.bot_comments(number)) == 1

    repo.close_pr(number)
    api_client = real_node.plane.api_client()
    eventually(lambda: namespace_gone(api_client, namespace), timeout=180, what="the preview's namespace gone")
    api_client.close()
    assert table == readme_rights_table(), f"the README's rights table should read:\n{table}"


def ours(real_node) -> list[str]:
    """Cluster-scoped objects of the release, by its instance label."""
    kinds = "namespaces,clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings"
    found = real_node.plane.kubectl(
        "get", kinds, "-l", f"app.kubernetes.io/instance={chart.RELEASE}", "-o", "name"
    ).stdout
    return found.split()


def test_helm_uninstall_leaves_no_cluster_object_of_ours(release, real_node):
    assert ours(real_node)  # the label finds them while installed
    release.uninstall()
    eventually(lambda: not ours(real_node), timeout=120, what=f"nothing left but:\n{' '.join(ours(real_node))}")
    api_client = real_node.plane.api_client()
    assert namespace_gone(api_client, chart.BUILD_NAMESPACE)
    api_client.close()
    # The release's namespace and its settings Secret were the operator's (made before the
    # install, as the README says): kept, and nothing else is left in the namespace.
    left = real_node.plane.kubectl("-n", chart.NAMESPACE, "get", "all,secrets,serviceaccounts,roles", "-o", "name")
    assert set(left.stdout.split()) == {f"secret/{chart.SECRET}", "serviceaccount/default"}
