"""The page a preview's commit status links to. Public: it shows no secrets, no logs, no cluster
details, and for a private repository nothing but the state."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue

from app.domain import gitea_links
from app.usecases.operations import public_page
from app.web import context

blueprint = Blueprint("pages", __name__)


@blueprint.get("/previews/<public_id>")
def preview_page(public_id: str) -> ResponseReturnValue:
    preview = public_page.find(public_id)
    if preview is None:
        abort(404)
    if preview.private:
        return render_template("preview_private.html", preview=preview)
    pr_url = gitea_links.pull_request_url(context.settings().gitea_url, preview.repository, preview.pr_number)
    events = public_page.events(preview.id)
    return render_template(
        "preview.html", preview=preview, pr_url=pr_url, events=events, public=public_page.PUBLIC_PHASES
    )
