"""End to end: real git pushes and Gitea API calls drive the service's web, worker and
scheduler processes, which deploy on the test control plane and report back to Gitea."""

import itertools
import re
import uuid
from datetime import datetime, timedelta

import pytest
import requests
from kubernetes import client as k8s

from tests.testbed.factories import payload, webhook_request, with_changes
from tests.testbed.gitea_repo import create_repository
from tests.testbed.gitea_server import BOT
from tests.testbed.kube.waiting import eventually, namespace_gone
from tests.testbed.servers import free_port
from tests.testbed.service_processes import SecretEnv, flask_command, service_processes

pytestmark = [pytest.mark.kube, pytest.mark.gitea]

SECRET = "e2e-webhook-secret-" + uuid.uuid4().hex[:8]
_names = itertools.count()


@pytest.fixture(scope="module")
def stack(gitea, kube_cluster, redis_server, postgres_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    port = free_port()
    env = {
        "DATABASE_URL": postgres_server.create_database(f"e2e_{uuid.uuid4().hex[:8]}"),
        "REDIS_URL": redis_server.url,
        "PREVIEW_QUEUE": f"e2e-{uuid.uuid4().hex[:8]}",
        "GITEA_URL": gitea.url,
        "GITEA_TOKEN": gitea.bot_token,
        "GITEA_WEBHOOK_SECRET": SECRET,
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "PREVIEW_REGISTRY": "registry.preview.test:5000",
        "REGISTRY_SHARED_FALLBACK": "true",
        "PREVIEW_DOMAIN": "preview.test",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
    }
    with service_processes(env, folder, port):
        yield {"url": f"http://127.0.0.1:{port}", "folder": folder, "env": SecretEnv(env)}


@pytest.fixture
def repo(gitea, stack, tmp_path):
    return create_repository(
        gitea,
        f"app{next(_names)}-{uuid.uuid4().hex[:4]}",
        tmp_path / "work",
        webhook_url=f"{stack['url']}/webhooks/gitea",
        secret=SECRET,
    )


def success_status(repo, sha, timeout=120):
    def probe():
        status = repo.latest_status(sha)
        return status if status and status["status"] == "success" else None

    return eventually(probe, timeout=timeout, interval=0.5, what=f"success status on {sha[:12]}")


def namespace_of(status):
    # target_url is https://<slug>.preview.test: the namespace is preview-<slug>.
    host = status["target_url"].split("://", 1)[1]
    return "preview-" + host.split(".", 1)[0]


def test_a_pr_gets_a_preview_link_and_one_comment_then_updates_then_goes_away_on_merge(repo, kube_api):
    sha1 = repo.commit("feature/login", {"login.txt": "v1"}, "Add login")
    number = repo.open_pr("feature/login")

    status = success_status(repo, sha1)
    assert status["target_url"].startswith("https://")
    assert status["target_url"].endswith(".preview.test")
    assert status["creator"]["login"] == BOT
    # The status is posted just before the comment is edited: wait for the comment to catch up.
    [comment] = eventually(
        lambda: [c for c in repo.bot_comments(number) if status["target_url"] in c["body"]], what="PR comment"
    )
    assert sha1[:12] in comment["body"]
    assert len(repo.bot_comments(number)) == 1
    namespace = namespace_of(status)
    assert k8s.CoreV1Api(kube_api).read_namespace(namespace).metadata.labels["environment"] == "preview"

    sha2 = repo.commit("feature/login", {"login.txt": "v2"}, "Fix login")
    second = success_status(repo, sha2)
    assert second["target_url"] == status["target_url"]
    comments = eventually(
        lambda: [c for c in repo.bot_comments(number) if sha2[:12] in c["body"]], what="comment edited"
    )
    assert len(repo.bot_comments(number)) == 1
    assert comments[0]["id"] == comment["id"]

    repo.merge_pr(number)
    eventually(lambda: namespace_gone(kube_api, namespace), timeout=120, what="namespace deleted after merge")
    eventually(lambda: "removed" in repo.bot_comments(number)[0]["body"], what="comment says removed")
    assert len(repo.bot_comments(number)) == 1


def test_close_then_reopen_gives_a_fresh_preview(repo, kube_api):
    sha = repo.commit("feature/close", {"a.txt": "a"}, "A change")
    number = repo.open_pr("feature/close")
    namespace = namespace_of(success_status(repo, sha))
    repo.close_pr(number)
    eventually(lambda: namespace_gone(kube_api, namespace), timeout=120, what="namespace deleted after close")
    repo.reopen_pr(number)
    eventually(
        lambda: k8s.CoreV1Api(kube_api).list_namespace(field_selector=f"metadata.name={namespace}").items,
        timeout=120,
        what="namespace back after reopen",
    )
    eventually(
        lambda: (
            "Preview ready" in (repo.latest_status(sha) or {}).get("description", "")
            and "ready" in repo.bot_comments(number)[0]["body"]
        ),
        timeout=120,
        what="ready again",
    )
    assert len(repo.bot_comments(number)) == 1


def replay(stack, repo, name: str, number: int, sha: str, branch: str) -> dict:
    """Send a correctly signed PR delivery (a recorded one, made to name this PR) as a replay would."""
    body = with_changes(
        payload(name),
        number=number,
        **{
            "repository.full_name": repo.full_name,
            "pull_request.number": number,
            "pull_request.head.sha": sha,
            "pull_request.head.ref": branch,
        },
    )
    return signed_post(stack, body, "pull_request")


def test_a_replayed_close_of_a_reopened_pr_tears_nothing_down(repo, stack, kube_api):
    """A correctly signed but old `closed` delivery: Gitea says the PR is open, so the preview stays."""
    sha = repo.commit("feature/replay", {"r.txt": "r"}, "A change")
    number = repo.open_pr("feature/replay")
    namespace = namespace_of(success_status(repo, sha))
    uid = k8s.CoreV1Api(kube_api).read_namespace(namespace).metadata.uid
    statuses = len(repo.statuses_in_order())
    assert replay(stack, repo, "pull_request_closed", number, sha, "feature/replay")["outcome"] == "received"
    page = details_page(repo, number)
    eventually(lambda: "still open" in requests.get(page, timeout=10).text, what="the close recorded as stale")
    success_status(repo, sha)
    assert k8s.CoreV1Api(kube_api).read_namespace(namespace).metadata.uid == uid  # never deleted
    # Gitea was asked before anything was touched: the live preview was never marked for
    # teardown nor deployed again, so no new status was posted.
    assert len(repo.statuses_in_order()) == statuses


def test_a_replayed_open_of_a_closed_pr_deploys_nothing(repo, stack, kube_api):
    """A correctly signed `opened` delivery, sent again after the close: Gitea says the PR is
    closed, so nothing is deployed, whatever sha the payload names. (Its branch still stands at
    that commit, a writer's: the namespace may be made while Gitea is asked, and goes again.)"""
    sha = repo.commit("feature/reopen-replay", {"o.txt": "o"}, "A change")
    number = repo.open_pr("feature/reopen-replay")
    namespace = namespace_of(success_status(repo, sha))
    page = details_page(repo, number)  # the comment loses the link once the preview is gone
    repo.close_pr(number)
    eventually(lambda: namespace_gone(kube_api, namespace), timeout=120, what="namespace deleted after close")
    assert replay(stack, repo, "pull_request_opened", number, sha, "feature/reopen-replay")["outcome"] == "received"
    eventually(lambda: "nothing deployed" in requests.get(page, timeout=10).text, what="the replayed open refused")
    eventually(lambda: namespace_gone(kube_api, namespace), timeout=120, what="no namespace left for the closed PR")


def test_a_task_branch_without_a_pr_gets_a_preview_until_deleted(repo, kube_api):
    sha = repo.commit("task/add-search", {"search.txt": "s"}, "Search")
    namespace = namespace_of(success_status(repo, sha))
    # The link leads to the namespace the service made for this branch at this commit.
    annotations = k8s.CoreV1Api(kube_api).read_namespace(namespace).metadata.annotations
    assert annotations["previews.gitea.io/branch"] == "task/add-search"
    assert annotations["previews.gitea.io/head-sha"] == sha
    repo.delete_branch("task/add-search")
    eventually(lambda: namespace_gone(kube_api, namespace), timeout=120, what="namespace deleted with the branch")


def test_branch_names_with_slashes_and_unicode_and_clashing_slugs(repo, kube_api):
    sha_a = repo.commit("task/Ünïcode/Form", {"u.txt": "1"}, "Unicode")
    repo.git("checkout", "main")
    sha_b = repo.commit("task/unicode-form", {"u.txt": "2"}, "Ascii")
    first, second = success_status(repo, sha_a), success_status(repo, sha_b)
    assert first["target_url"] != second["target_url"]
    assert namespace_of(first) != namespace_of(second)


def test_the_pr_page_links_to_the_preview_and_is_styled(repo, gitea):
    import re

    import requests

    sha = repo.commit("feature/page", {"p.txt": "p"}, "Page")
    number = repo.open_pr("feature/page")
    url = success_status(repo, sha)["target_url"]
    page = requests.get(f"{gitea.url}/{repo.full_name}/pulls/{number}", timeout=30)
    assert page.status_code == 200
    assert url in page.text
    # Gitea's web assets are built (tests/tools/build.sh): the page's stylesheets and scripts are served.
    assets = re.findall(r'<(?:link rel="stylesheet" href|script[^>]* src)="([^"]*/assets/[^"]+)"', page.text)
    assert any(a.endswith(".css") for a in assets), assets
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        absolute = asset if asset.startswith("http") else gitea.url + asset
        assert requests.get(absolute, timeout=30).status_code == 200, asset


def pending_status(repo, sha, containing, timeout=60):
    def probe():
        status = repo.latest_status(sha)
        return status if status and status["status"] == "pending" and containing in status["description"] else None

    return eventually(probe, timeout=timeout, interval=0.5, what=f"pending status on {sha[:12]} saying {containing!r}")


def namespaces_of(kube_api, repo, number):
    """The namespaces made for this repository's PR `number`, whatever their state."""
    found = k8s.CoreV1Api(kube_api).list_namespace(label_selector=f"previews.gitea.io/pr={number}").items
    return [n for n in found if (n.metadata.annotations or {}).get("previews.gitea.io/repository") == repo.full_name]


def builds_of(kube_api, sha):
    jobs = k8s.BatchV1Api(kube_api).list_namespaced_job(
        "preview-builds", label_selector=f"previews.gitea.io/sha={sha[:12]}"
    )
    return jobs.items


def test_a_strangers_fork_pr_is_built_only_once_a_maintainer_approves_each_commit(gitea, repo, kube_api):
    # As the README asks: the bot administers the repository, so it may ask Gitea who can write.
    gitea.api("PUT", f"/repos/{repo.full_name}/collaborators/{BOT}", json={"permission": "admin"})
    stranger = f"stranger{uuid.uuid4().hex[:6]}"
    password = gitea.create_user(stranger)
    number, sha1 = repo.fork_pr(stranger, password, "fork/idea", {"idea.txt": "v1"})

    status = pending_status(repo, sha1, "preview:approved")
    assert "/preview" in status["description"]
    assert not builds_of(kube_api, sha1)
    # Nor a namespace: the guards are made ahead of the trust check only for a writer's delivery.
    assert not namespaces_of(kube_api, repo, number)
    # The PR comment says why.
    eventually(
        lambda: [c for c in repo.bot_comments(number) if f"by {stranger}, who cannot write to" in c["body"]],
        what="the reason in the PR comment",
    )

    # A maintainer (the repository's owner) approves with the label: this commit is built.
    repo.add_label(number, "preview:approved")
    success_status(repo, sha1)
    assert len(builds_of(kube_api, sha1)) == 1
    # Another label while the approval label is still on: a label event, but no new approval.
    repo.add_label(number, "needs-review")
    eventually(
        lambda: "preview:approved was on the PR already" in requests.get(details_page(repo, number), timeout=10).text,
        what="the old approval label not taken as a new approval",
    )

    # A new push to the fork is not approved by the old approval: it waits again, and the
    # label comes off so that adding it again approves the new commit.
    fork = f"{stranger}/{repo.full_name.split('/')[1]}"
    sha2 = repo.push_to_fork(fork, stranger, password, "fork/idea", {"idea.txt": "v2"})
    pending_status(repo, sha2, "preview:approved")
    eventually(lambda: "preview:approved" not in repo.labels_on(number), what="approval label removed")

    # The stranger's own "/preview" does nothing; a maintainer's approves the commit.
    repo.comment(number, "/preview", user=stranger)
    page = details_page(repo, number)
    eventually(
        lambda: f"approval by {stranger} ignored" in requests.get(page, timeout=10).text,
        what="the stranger's approval refused",
    )
    assert repo.latest_status(sha2)["status"] == "pending"
    assert not builds_of(kube_api, sha2)

    repo.comment(number, "/preview")  # the owner's
    success_status(repo, sha2)
    assert len(builds_of(kube_api, sha2)) == 1


@pytest.mark.parametrize("bot_access", ["write", "admin"])
def test_an_agit_pr_by_a_reader_waits_for_approval(gitea, repo, kube_api, bot_access):
    """Gitea's AGit flow gives a reader's PR the base repository as its head repository:
    that must not pass for a writer's branch, whether or not the bot may ask Gitea who can write."""
    gitea.api("PUT", f"/repos/{repo.full_name}/collaborators/{BOT}", json={"permission": bot_access})
    reader = f"reader{uuid.uuid4().hex[:6]}"
    password = gitea.create_user(reader)
    gitea.api("PUT", f"/repos/{repo.full_name}/collaborators/{reader}", json={"permission": "read"})
    number, sha = repo.agit_pr(reader, password, {"agit.txt": "from a reader"}, topic="idea")
    pull = repo.pr(number)
    assert pull["head"]["repo"]["id"] == pull["base"]["repo"]["id"]  # what made it look trusted

    pending_status(repo, sha, "preview:approved")
    eventually(
        lambda: [c for c in repo.bot_comments(number) if "it comes from an AGit push" in c["body"]],
        what="the reason in the PR comment",
    )
    assert not builds_of(kube_api, sha)
    assert not namespaces_of(kube_api, repo, number)


def test_a_writers_pr_gets_the_namespace_its_preview_file_asks_for(repo, kube_api):
    """The namespace is made while Gitea is read, from the repository's defaults; what the
    preview file then says (here its TTL) is applied on top before anything runs there."""
    sha = repo.commit("feature/ttl", {".gitea/preview.yml": "ttl: 2h\n"}, "A shorter life")
    number = repo.open_pr("feature/ttl")
    success_status(repo, sha)
    [namespace] = namespaces_of(kube_api, repo, number)
    annotations = namespace.metadata.annotations
    assert annotations["ttl"] == "7200s"
    assert annotations["previews.gitea.io/head-sha"] == sha
    created = datetime.fromisoformat(annotations["created-at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(annotations["expires-at"].replace("Z", "+00:00"))
    assert timedelta(hours=2) - timedelta(minutes=1) <= expires - created <= timedelta(hours=2, minutes=1)


def test_a_repository_registered_with_flask_repos_add_is_heard_with_its_own_secret(gitea, stack, tmp_path):
    repo = create_repository(gitea, f"reg-{uuid.uuid4().hex[:6]}", tmp_path / "work")  # no webhook yet
    gitea.api("PUT", f"/repos/{repo.full_name}/collaborators/{BOT}", json={"permission": "admin"})  # to manage hooks
    added = flask_command(stack["env"], "repos", "add", repo.full_name)
    assert added.returncode == 0, added.stderr
    assert "registered" in added.stdout, added.stderr
    [hook] = gitea.api("GET", f"/repos/{repo.full_name}/hooks")
    assert hook["config"]["url"] == f"{stack['url']}/webhooks/gitea"
    assert hook["active"]

    sha = repo.commit("task/registered", {"r.txt": "r"}, "Registered")
    success_status(repo, sha)  # Gitea signed the push with the repository's own secret, and it was acted on
    # The shared secret no longer speaks for this repository.
    body = with_changes(payload("push_task_branch"), **{"repository.full_name": repo.full_name})
    answer = requests.post(f"{stack['url']}/webhooks/gitea", timeout=10, **webhook_request(body, "push", secret=SECRET))
    assert answer.status_code == 401


def signed_post(stack, body, kind):
    answer = requests.post(f"{stack['url']}/webhooks/gitea", timeout=10, **webhook_request(body, kind, secret=SECRET))
    assert answer.status_code == 202, answer.text
    return answer.json()


def details_page(repo, number):
    """The service's public page of the PR's preview, from the link in its PR comment."""
    return re.search(r"\(\[details\]\(([^)]+)\)\)", repo.bot_comments(number)[0]["body"]).group(1)


def test_a_replayed_old_push_leaves_the_preview_at_the_newer_commit(repo, stack, kube_api):
    sha1 = repo.commit("feature/old", {"o.txt": "1"}, "One")
    number = repo.open_pr("feature/old")
    namespace = namespace_of(success_status(repo, sha1))
    sha2 = repo.commit("feature/old", {"o.txt": "2"}, "Two")
    success_status(repo, sha2)
    old = with_changes(
        payload("pull_request_synchronized"),
        number=number,
        **{"repository.full_name": repo.full_name, "pull_request.number": number, "pull_request.head.sha": sha1},
    )
    replayed = signed_post(stack, old, "pull_request_sync")
    assert replayed["outcome"] == "received"  # the worker plans it, and asks Gitea
    page = details_page(repo, number)
    eventually(
        lambda: f"delivery {replayed['delivery_id']} (deploy)" in requests.get(page, timeout=10).text,
        what="the replay processed",
    )
    eventually(
        lambda: (
            k8s.CoreV1Api(kube_api).read_namespace(namespace).metadata.annotations["previews.gitea.io/head-sha"] == sha2
            and repo.latest_status(sha2)["status"] == "success"
        ),
        timeout=60,
        what="the preview still at the newer commit",
    )


def test_a_force_push_back_to_the_first_commit_deploys_it(repo, kube_api):
    sha1 = repo.commit("feature/back", {"b.txt": "1"}, "One")
    number = repo.open_pr("feature/back")
    namespace = namespace_of(success_status(repo, sha1))
    sha2 = repo.commit("feature/back", {"b.txt": "2"}, "Two")
    success_status(repo, sha2)
    repo.git("push", "--force", "origin", f"{sha1}:refs/heads/feature/back")

    def running():
        return k8s.CoreV1Api(kube_api).read_namespace(namespace).metadata.annotations["previews.gitea.io/head-sha"]

    eventually(lambda: running() == sha1, timeout=120, what="the preview back at the first commit")
    success_status(repo, sha1)
    # And forward again to the second: its sync event was seen once already, and is new work now.
    repo.git("push", "--force", "origin", f"{sha2}:refs/heads/feature/back")
    eventually(lambda: running() == sha2, timeout=120, what="the preview at the second commit again")
    assert repo.pr(number)["head"]["sha"] == sha2


def test_the_pin_follows_the_prs_real_labels_not_a_replayed_payload(repo, stack):
    sha = repo.commit("feature/pin", {"p.txt": "p"}, "Pin")
    number = repo.open_pr("feature/pin")
    success_status(repo, sha)
    page = details_page(repo, number)
    repo.add_label(number, "preview:keep")
    eventually(lambda: "pinned" in requests.get(page, timeout=10).text, what="pinned by the label")
    # A signed label event from before the label was added: the worker reads the labels from Gitea.
    stale = with_changes(
        payload("pull_request_label_updated"),
        number=number,
        **{"repository.full_name": repo.full_name, "pull_request.number": number, "pull_request.labels": []},
    )
    processed = signed_post(stack, stale, "pull_request_label")
    assert processed["outcome"] == "received"
    eventually(
        lambda: f"delivery {processed['delivery_id']} (labels)" in requests.get(page, timeout=10).text,
        what="the stale label event processed",
    )
    assert "pinned" in requests.get(page, timeout=10).text
