"""A preview's screenshots in its PR comment, against the real Gitea: attached to the bot's
comment, listed in it with what changed since the set before (the PR's previous commit, or
the base branch's preview), the set before's attachments removed. The Job that takes the
pictures runs on the real node (tests/e2e/test_real_node_screenshots.py)."""

from __future__ import annotations

import io
import uuid

import pytest
import requests
from PIL import Image

from app.adapters.gitea import Gitea
from app.bootstrap import bootstrap
from app.domain.k8s.screenshots import Shot
from app.domain.states import PreviewState
from app.models import Preview, Repository, Screenshot
from app.usecases.deploy import reporting, screenshots
from app.usecases.operations.views import details
from tests.testbed.gitea_repo import create_repository

pytestmark = pytest.mark.gitea


def png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


WHITE_DESKTOP, WHITE_PHONE = png((1280, 800), (255, 255, 255)), png((390, 844), (255, 255, 255))


@pytest.fixture
def pr(gitea, settings, db, tmp_path):
    repo = create_repository(gitea, f"shots-{uuid.uuid4().hex[:6]}", tmp_path / "work")
    sha = repo.commit("feature/look", {"x.txt": "x"}, "A change")
    number = repo.open_pr("feature/look")
    repository = Repository.create(full_name=repo.full_name, clone_url=gitea.git_url(repo.full_name))
    preview = Preview.create(
        repository=repository,
        target_key=f"{repo.full_name}#{number}",
        pr_number=number,
        branch="feature/look",
        head_sha=sha,
        deployed_sha=sha,
        state=PreviewState.READY,
        namespace="preview-shots",
        url="https://shots.preview.test",
    )
    services = bootstrap(settings, gitea=Gitea(gitea.url, gitea.bot_token))
    reporting.tell(services, preview)  # the comment the pictures are attached to
    return {"repo": repo, "number": number, "preview": preview, "services": services, "sha": sha}


def main_preview(pr_preview: Preview, sha: str) -> Preview:
    """A ready preview of the repository's `main` branch, at `sha`."""
    repository = pr_preview.repository
    return Preview.create(
        repository=repository,
        target_key=f"{repository.full_name}@main",
        branch="main",
        head_sha=sha,
        deployed_sha=sha,
        state=PreviewState.READY,
    )


def show(pr, sha: str, desktop: bytes, phone: bytes) -> str:
    preview = Preview.get_by_id(pr["preview"].id)
    Preview.update(head_sha=sha, deployed_sha=sha).where(Preview.id == preview.id).execute()
    preview = Preview.get_by_id(preview.id)
    shots = [Shot("/", "desktop", desktop), Shot("/", "phone", phone), Shot("/login", "desktop", None)]
    result = screenshots.keep_and_show(pr["services"], preview, sha, shots)
    assert reporting.report_due(pr["services"], preview.id) == "reported"
    return result


def comment(pr) -> tuple[str, list[dict]]:
    [found] = pr["repo"].bot_comments(pr["number"])
    assets = pr["repo"].gitea.api("GET", f"/repos/{pr['repo'].full_name}/issues/comments/{found['id']}/assets")
    return found["body"], assets


def test_a_set_is_attached_then_replaced_by_the_next_with_what_changed(pr):
    assert show(pr, pr["sha"], WHITE_DESKTOP, WHITE_PHONE) == "shown"
    body, assets = comment(pr)
    assert sorted(a["name"] for a in assets) == sorted([f"desktop-{pr['sha'][:12]}.png", f"phone-{pr['sha'][:12]}.png"])
    assert "#### Screenshots" in body
    assert "| Page | Desktop | Phone |" in body
    for asset in assets:
        assert f"]({asset['browser_download_url']})" in body
    assert requests.get(assets[0]["browser_download_url"], timeout=10).content in (WHITE_DESKTOP, WHITE_PHONE)
    assert "changed" not in body
    assert "Compared with" not in body
    assert "| `/login` | no picture | no picture |" in body

    # The next commit paints the desktop page blue; the phone page is as it was.
    sha2 = pr["repo"].commit("feature/look", {"x.txt": "y"}, "Blue")
    assert show(pr, sha2, png((1280, 800), (0, 0, 255)), WHITE_PHONE) == "shown"
    body, assets = comment(pr)
    names = sorted(a["name"] for a in assets)
    assert names == sorted([f"desktop-{sha2[:12]}.png", f"desktop-{sha2[:12]}-changes.png", f"phone-{sha2[:12]}.png"])
    assert "100.0% changed ([highlighted](" in body
    assert "no change" in body
    assert f"Compared with the previous commit at `{pr['sha'][:12]}`." in body
    kept = list(Screenshot.select().where(Screenshot.preview == pr["preview"].id))
    assert {row.sha for row in kept} == {sha2}
    [desktop] = [row for row in kept if row.viewport == "desktop" and row.page == "/"]
    assert desktop.changed_share == 1.0
    # The API says the same to an agent.
    listed = details(Preview.get_by_id(pr["preview"].id))["screenshots"]
    assert [(s["page"], s["viewport"], s["changed_share"]) for s in listed] == [
        ("/", "desktop", 1.0),
        ("/", "phone", 0.0),
        ("/login", "desktop", None),
    ]
    assert listed[0]["url"].startswith(pr["repo"].gitea.url)
    assert listed[0]["changes_url"]
    assert listed[2]["url"] is None


def test_a_pr_is_compared_with_its_base_branch_s_preview_when_that_has_screenshots(pr):
    preview = pr["preview"]
    main = main_preview(preview, "b" * 40)
    Screenshot.create(preview=main, sha="b" * 40, page="/", viewport="desktop", png=png((1280, 800), (0, 0, 0)))
    assert show(pr, pr["sha"], WHITE_DESKTOP, WHITE_PHONE) == "shown"
    body, _ = comment(pr)
    assert f"Compared with the main branch's preview at `{'b' * 12}`." in body
    assert "100.0% changed" in body
    # The phone page has no picture on main: nothing to say about it.
    assert body.count("changed") == 1


def test_a_branch_preview_s_set_is_kept_for_its_pull_requests_not_shown(pr, settings):
    preview = pr["preview"]
    main = main_preview(preview, "c" * 40)
    result = screenshots.keep_and_show(pr["services"], main, "c" * 40, [Shot("/", "desktop", WHITE_DESKTOP)])
    assert result == "taken"
    assert [row.attachment_url for row in Screenshot.select().where(Screenshot.preview == main)] == [None]
