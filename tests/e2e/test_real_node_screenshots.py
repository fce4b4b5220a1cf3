"""Screenshots on the real node: once a PR's preview is ready, Debian's Chromium runs as a Job
in its namespace (SCREENSHOT_IMAGE, the test bed's `screenshot` image), and the pictures
appear in the PR comment as its attachments; the next commit's set says what changed: a new
background colour changes the page, a change nobody can see changes nothing."""

from __future__ import annotations

import io
import re
import uuid

import pytest
import requests
from kubernetes import client as k8s
from PIL import Image

from tests.testbed.gitea_repo import create_repository
from tests.testbed.gitea_server import BOT
from tests.testbed.kube.waiting import eventually, namespace_gone
from tests.testbed.node.checks import pod_logs, success_status
from tests.testbed.node.service import hooked_service_env, prepare_builds
from tests.testbed.servers import free_port
from tests.testbed.service_processes import service_processes

pytestmark = [pytest.mark.node, pytest.mark.gitea, pytest.mark.slow]

SECRET = "node-shots-secret-" + uuid.uuid4().hex[:8]


def static_site(base_image: str, background: str, note: str) -> dict[str, str]:
    """A page whose look is its background colour; `note` is in the page but never shown."""
    return {
        "Dockerfile": (
            f"FROM {base_image}\n"
            "COPY --chown=65532:65532 site /site\n"
            'CMD ["httpd", "-f", "-p", "8080", "-h", "/site"]\n'
        ),
        "site/index.html": (
            "<!doctype html><html><head><title>Shop</title></head>"
            f'<body style="margin:0;background:{background};font:24px sans-serif">'
            f"<h1>The shop</h1><!-- {note} --></body></html>\n"
        ),
    }


@pytest.fixture(scope="module")
def shots_stack(gitea, real_node, redis_server, postgres_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("node-shots")
    port = free_port()
    prepare_builds(real_node, BOT, gitea.bot_token)
    database = postgres_server.create_database(f"shots_{uuid.uuid4().hex[:8]}")
    env = {
        **hooked_service_env(real_node, gitea, redis_server.url, database, port, SECRET, "shots"),
        "SCREENSHOT_IMAGE": real_node.image("screenshot"),
    }
    with service_processes(env, folder, port):
        yield {"url": f"http://127.0.0.1:{port}", "folder": folder}


def shown_set(repo, number: int, sha: str, namespace: str, real_node, folder) -> tuple[str, dict[str, bytes]]:
    """The comment's body once it shows the set of `sha`, and the comment's attachments."""

    def listed():
        comments = repo.bot_comments(number)
        if not comments:
            return None
        path = f"/repos/{repo.full_name}/issues/comments/{comments[0]['id']}/assets"
        assets = repo.gitea.api("GET", path)
        desktop = next((a for a in assets if a["name"] == f"desktop-{sha[:12]}.png"), None)
        return desktop is not None and desktop["browser_download_url"] in comments[0]["body"] and (comments[0], assets)

    try:
        comment, assets = eventually(listed, timeout=240, interval=2, what=f"the screenshots of {sha[:12]}")
    except AssertionError:
        logs = "\n".join(p.read_text()[-3000:] for p in sorted(folder.glob("*.log")))
        pytest.fail(f"{repo.bot_comments(number)}\n{pod_logs(real_node, namespace)}\n{logs}")
    pictures = {a["name"]: requests.get(a["browser_download_url"], timeout=10).content for a in assets}
    return comment["body"], pictures


def test_screenshots_land_in_the_comment_and_the_next_commit_says_what_changed(real_node, shots_stack, gitea, tmp_path):
    base = real_node.image("base")
    repo = create_repository(
        gitea,
        f"node-shots-{uuid.uuid4().hex[:6]}",
        tmp_path / "work",
        webhook_url=f"{shots_stack['url']}/webhooks/gitea",
        secret=SECRET,
        files=static_site(base, "white", "main"),
    )
    sha1 = repo.commit("feature/look", static_site(base, "white", "first"), "A page")
    number = repo.open_pr("feature/look")
    host = success_status(repo, sha1, real_node)["target_url"].split("://", 1)[1].split("/", 1)[0]
    namespace = "preview-" + host.split(".", 1)[0]

    body, pictures = shown_set(repo, number, sha1, namespace, real_node, shots_stack["folder"])
    assert set(pictures) == {f"desktop-{sha1[:12]}.png", f"phone-{sha1[:12]}.png"}
    with Image.open(io.BytesIO(pictures[f"desktop-{sha1[:12]}.png"])) as desktop:
        assert desktop.size == (1280, 800)
        assert desktop.convert("RGB").getpixel((1270, 790)) == (255, 255, 255)  # the white page
    with Image.open(io.BytesIO(pictures[f"phone-{sha1[:12]}.png"])) as phone:
        assert phone.size == (390, 844)
    assert "#### Screenshots" in body
    assert "Compared with" not in body  # the first set: nothing before it
    # The Job ran in the preview's namespace, as one pod of a user that is not root.
    [pod] = (
        k8s.CoreV1Api(real_node.plane.api_client())
        .list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=screenshots")
        .items
    )
    assert pod.status.phase == "Succeeded"
    assert pod.spec.security_context.run_as_user == 65532

    # A new background colour: every pixel of the page's background changed.
    sha2 = repo.commit("feature/look", static_site(base, "rgb(20, 120, 200)", "first"), "Blue")
    success_status(repo, sha2, real_node)
    body, pictures = shown_set(repo, number, sha2, namespace, real_node, shots_stack["folder"])
    assert f"desktop-{sha2[:12]}-changes.png" in pictures
    shares = [float(share) for share in re.findall(r"([0-9.]+)% changed", body)]
    assert len(shares) == 2, body
    assert all(share > 50 for share in shares), body
    assert f"Compared with the previous commit at `{sha1[:12]}`." in body
    assert not any(sha1[:12] in name for name in pictures)  # the set before is gone

    # A change nobody can see: the same pixels.
    sha3 = repo.commit("feature/look", static_site(base, "rgb(20, 120, 200)", "second"), "Reword a comment")
    success_status(repo, sha3, real_node)
    body, pictures = shown_set(repo, number, sha3, namespace, real_node, shots_stack["folder"])
    assert body.count("no change") == 2, body
    assert "% changed" not in body
    assert not any(name.endswith("-changes.png") for name in pictures)

    repo.close_pr(number)
    api = real_node.plane.api_client()
    eventually(lambda: namespace_gone(api, namespace), timeout=180, what="namespace deleted after close")
