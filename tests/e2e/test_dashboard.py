"""The dashboard in a real browser: headless Chromium (Debian's, driven by playwright) against
the service, with the real Gitea as OAuth2 provider and previews deployed by the pipeline on
the test control plane. Screenshots land in the test's folder, and in $SCREENSHOTS_DIR when
it is set (the README's come from there)."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from app import create_app
from app.db import database, utcnow
from app.domain.states import PreviewState
from app.models import Event, Preview
from app.usecases.access.dashboard import SESSION_COOKIE
from app.usecases.deploy import namespaces, teardown
from tests.testbed.browser import sign_in_through_gitea
from tests.testbed.gitea_server import ADMIN
from tests.testbed.helpers import deliver, run
from tests.testbed.servers import free_port, quiet_request_log

pytestmark = [pytest.mark.kube, pytest.mark.gitea, pytest.mark.slow]


@pytest.fixture
def database_url(postgres_server):
    return postgres_server.create_database(f"dashboard_{uuid.uuid4().hex[:8]}")


def deploy(client, services, repository: str, number: int, **more) -> Preview:
    changes = {"repository.full_name": repository, "number": number, "pull_request.number": number, **more}
    changes["pull_request.head.repo.full_name"] = repository  # not a fork
    changes["pull_request.head.sha"] = uuid.uuid4().hex + "abcd1234"
    assert run(services, deliver(client, "pull_request_opened", "pull_request", **changes)["delivery_id"]) == "ready"
    with database.connection_context():
        return Preview.select().order_by(Preview.id.desc()).get()


@pytest.fixture
def world(client, services, gitea):
    suffix = uuid.uuid4().hex[:6]
    shared, hidden = f"{ADMIN}/dash-a-{suffix}", f"{ADMIN}/dash-b-{suffix}"
    for full_name in (shared, hidden):
        gitea.api("POST", "/user/repos", json={"name": full_name.split("/")[1], "private": True})
    writer, viewer = f"writer{suffix}", f"viewer{suffix}"
    passwords = {writer: gitea.create_user(writer), viewer: gitea.create_user(viewer)}
    gitea.api("PUT", f"/repos/{shared}/collaborators/{writer}", json={"permission": "write"})
    gitea.api("PUT", f"/repos/{shared}/collaborators/{viewer}", json={"permission": "read"})

    # A delivery signed with the right secret can still carry a script as the PR's address.
    script = "javascript:document.title='pwned'"
    ready = deploy(client, services, shared, 1, **{"pull_request.html_url": script, "repository.html_url": script})
    other = deploy(client, services, hidden, 2)
    with database.connection_context():
        building = Preview.create(
            repository=ready.repository,
            target_key=f"{shared}#3",
            pr_number=3,
            branch="feature-three",
            head_sha="b" * 40,
            state=PreviewState.BUILDING,
        )
        Event.record(building, "build", "building", progress=20)

    port = free_port()
    service = f"http://127.0.0.1:{port}"
    oauth_app = gitea.api(
        "POST",
        "/user/applications/oauth2",
        json={"name": f"dash-{suffix}", "redirect_uris": [f"{service}/signin/callback"], "confidential_client": True},
    )
    configured = services.settings.replace(
        gitea_url=gitea.url,
        gitea_token=gitea.bot_token,
        public_url=service,
        oauth_client_id=oauth_app["client_id"],
        oauth_client_secret=oauth_app["client_secret"],
        session_secret="session-" + uuid.uuid4().hex,
    )
    quiet_request_log()
    server = make_server("127.0.0.1", port, create_app(configured), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {
            "service": service,
            "gitea_url": gitea.url,
            "ready": ready,
            "other": other,
            "building": building,
            "writer": (writer, passwords[writer]),
            "viewer": (viewer, passwords[viewer]),
            "services": services,
        }
    finally:
        server.shutdown()
        server.server_close()


def screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if folder := os.environ.get("SCREENSHOTS_DIR"):
        shutil.copyfile(path, Path(folder) / f"{name}.png")


def sign_in(browser, world, who: str, width: int = 1280):
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=world["service"])
    page = context.new_page()
    page.goto(world["service"] + "/")
    sign_in_through_gitea(page, *world[who])
    page.wait_for_selector("h1:has-text('Previews')")
    return context, page


def card(page, preview):
    return page.locator(f'[data-preview="{preview.id}"]')


def test_a_writer_watches_a_preview_become_ready_reveals_its_password_and_deletes_another(world, browser, tmp_path):
    context, page = sign_in(browser, world, "writer")
    ready, building, other = world["ready"], world["building"], world["other"]
    # Only the repository the writer can read.
    assert card(page, ready).count() == 1
    assert card(page, building).count() == 1
    assert card(page, other).count() == 0
    assert card(page, building).locator('[data-field="state"]').inner_text() == "building"
    screenshot(page, tmp_path, "dashboard-list")

    # The deploy moves on; the page follows without a reload.
    with database.connection_context():
        Preview.update(state=PreviewState.READY, url="https://three.preview.localhost").where(
            Preview.id == building.id
        ).execute()
        Event.record(building, "ready", "ready", progress=100)
    # (A locator, not wait_for_function: the page's CSP allows no eval, which that uses.)
    card(page, building).locator('[data-field="state"]:text-is("ready")').wait_for(timeout=15000)
    assert card(page, building).locator("progress").get_attribute("value") == "100"
    assert (
        card(page, building).locator('[data-field="open"]').get_attribute("href") == "https://three.preview.localhost"
    )

    # Credentials: revealed on click, copied with the button.
    card(page, ready).locator("button.reveal").click()
    password_field = card(page, ready).locator('[data-field="password"]')
    password_field.wait_for()
    names = namespaces.names_for(world["services"].settings, ready)
    secret = world["services"].kube.read_secret_data(ready.namespace, names.auth_secret)
    assert password_field.inner_text() == secret["password"]
    card(page, ready).locator("button.copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret["password"]
    screenshot(page, tmp_path, "dashboard-credentials")

    # Delete, confirmed; the card goes once the teardown is done.
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    card(page, ready).locator("button.danger").click()
    page.wait_for_load_state()
    assert questions
    assert questions[0].startswith("Delete the preview")
    with database.connection_context():
        assert Preview.get_by_id(ready.id).state == PreviewState.DELETING
        assert teardown.teardown(world["services"], ready.id) == "deleted"
    card(page, ready).wait_for(state="detached", timeout=15000)

    page.goto(f"{world['service']}/p/{building.id}")
    page.wait_for_selector("h2:has-text('Actions')")
    screenshot(page, tmp_path, "dashboard-preview")
    # Pin and extend, each confirmed.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Pin')")
    page.wait_for_selector("button:has-text('Unpin')")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Extend by 24 h')")
    page.wait_for_selector("button:has-text('Unpin')")
    with database.connection_context():
        changed = Preview.get_by_id(building.id)
    assert changed.pinned
    assert changed.expires_at > utcnow() + timedelta(hours=23)
    page.goto(f"{world['service']}/stats")
    assert page.locator("svg[role=img]").count() == 3
    spend = page.locator("svg[aria-label^='Spend per repository']")
    assert "this month" in spend.text_content()
    screenshot(page, tmp_path, "dashboard-stats")
    context.close()


def test_a_reader_sees_no_actions_and_a_forged_post_is_refused(world, browser, tmp_path):
    context, page = sign_in(browser, world, "viewer", width=390)  # a phone's width
    ready = world["ready"]
    assert card(page, ready).count() == 1
    assert page.locator("button.danger").count() == 0
    assert card(page, ready).locator("button.reveal").count() == 0  # no password for readers
    page.goto(f"{world['service']}/p/{ready.id}")
    assert page.locator("h2:has-text('Actions')").count() == 0
    history = page.locator("h2:has-text('Webhook deliveries') + table").inner_text()
    assert "pull_request opened" in history
    assert "accepted" in history  # what the worker made of the delivery
    assert page.locator("#build-log").count() == 0
    screenshot(page, tmp_path, "dashboard-phone")
    session = next(c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    cookies = {SESSION_COOKIE: session}
    # The secrets the API keeps for writers stay with writers here too.
    revealed = requests.post(
        f"{world['service']}/p/{ready.id}/credentials", cookies=cookies, headers={"X-CSRF-Token": csrf}, timeout=10
    )
    assert revealed.status_code == 403
    assert "password" not in revealed.json()
    logs = requests.get(f"{world['service']}/p/{ready.id}/logs.json", cookies=cookies, timeout=10)
    assert logs.status_code == 403
    assert "build" not in logs.json()
    url = f"{world['service']}/p/{ready.id}/delete"
    assert requests.post(url, cookies=cookies, data={}, allow_redirects=False, timeout=10).status_code == 400
    forged = requests.post(url, cookies=cookies, data={"csrf": csrf}, allow_redirects=False, timeout=10)
    assert forged.status_code == 403
    with database.connection_context():
        assert Preview.get_by_id(ready.id).state == PreviewState.READY
    # Not signed in: nothing.
    assert requests.post(url, data={"csrf": csrf}, allow_redirects=False, timeout=10).status_code == 302
    context.close()


def test_a_script_in_a_payloads_url_never_runs(world, browser):
    """The delivery that made `ready` said `javascript:` for the PR's address: the link is
    Gitea's own, and the page's policy would not run an injected script anyway."""
    context, page = sign_in(browser, world, "writer")
    answer = page.goto(world["service"] + "/")
    assert answer is not None
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    link = card(page, world["ready"]).locator("a", has_text="pull request #1")
    href = link.get_attribute("href")
    assert href is not None
    assert href.endswith("/pulls/1")
    assert not href.startswith("javascript:")
    with page.expect_navigation():
        link.click()  # to Gitea's page of the PR: nothing of the payload's runs
    assert page.url.startswith(world["gitea_url"])
    assert page.title() != "pwned"
    context.close()


def test_after_sign_in_the_browser_stays_on_the_dashboards_host(world, browser):
    """`next` is a path of ours as a browser reads it: a tab or a backslash makes no other host of it."""
    for sneaky in ("/%09/evil.test/", "/%5Cevil.test/", "//evil.test/"):
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{world['service']}/signin?next={sneaky}")
        sign_in_through_gitea(page, *world["writer"])
        page.wait_for_selector("h1:has-text('Previews')")
        assert page.url == world["service"] + "/"
        context.close()


def test_an_approval_is_of_the_commit_the_page_showed_and_gitea_still_has(world, browser):
    ready = world["ready"]
    with database.connection_context():
        waiting = Preview.create(
            repository=ready.repository,
            target_key=f"{ready.repository.full_name}#4",
            pr_number=4,
            branch="fork-four",
            head_sha="c" * 40,
            state=PreviewState.PENDING_APPROVAL,
        )
    context, page = sign_in(browser, world, "writer")
    page.goto(f"{world['service']}/p/{waiting.id}")
    assert page.locator("input[name=sha]").get_attribute("value") == "c" * 40
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    # A force-push lands between the page and the click.
    with database.connection_context():
        Preview.update(head_sha="d" * 40).where(Preview.id == waiting.id).execute()
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("button:has-text('Approve this commit')")
    assert "Nothing approved" in page.content()
    # The current head, but Gitea has no such open PR at that commit: still nothing.
    session = next(c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE)
    answer = requests.post(
        f"{world['service']}/p/{waiting.id}/approve",
        cookies={SESSION_COOKIE: session},
        data={"csrf": csrf, "sha": "d" * 40},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 409
    with database.connection_context():
        unchanged = Preview.get_by_id(waiting.id)
    assert unchanged.state == PreviewState.PENDING_APPROVAL
    assert unchanged.approved_sha is None
    context.close()
