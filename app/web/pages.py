"""The page a preview's commit status links to. Public: it shows no secrets, no logs, no cluster
details, and for a private repository nothing but the state."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue

from app.domain import gitea_links
from app.models import Deployment, Event, Preview
from app.web import context

blueprint = Blueprint("pages", __name__)

# What a failure at each phase means to a reviewer; the details are for the API and the operator.
FAILURE_SUMMARY = {
    "build": "the image could not be built",
    "deploy": "the preview could not be set up in the cluster",
    "rollout": "the app did not become available",
    "report": "the result could not be reported",
    "config": "the repository's .gitea/preview.yml is not valid",
    "database": "the preview's database could not be prepared",
    "migrate": "the database migration failed",
    "seed": "the database seed failed",
}
# Events whose messages say what happened without naming cluster objects.
PUBLIC_PHASES = frozenset({"queued", "approval", "slot", "resume", "ready", "teardown", "delivery"})


@blueprint.get("/previews/<public_id>")
def preview_page(public_id: str) -> ResponseReturnValue:
    preview = Preview.get_or_none(Preview.public_id == public_id)
    if preview is None:
        abort(404)
    if preview.repository.private:
        return render_template("preview_private.html", preview=preview)
    last = preview.deployments.order_by(Deployment.id.desc()).first()
    failure = None
    if last is not None and last.status == "failed":
        phase = (last.failure_reason or "").split(":", 1)[0]
        failure = FAILURE_SUMMARY.get(phase, "the preview failed")
    events = list(preview.events.order_by(Event.id.desc()).limit(50))
    gitea_url = context.settings().gitea_url
    pr_url = gitea_links.pull_request_url(gitea_url, preview.repository.full_name, preview.pr_number)
    return render_template(
        "preview.html", preview=preview, pr_url=pr_url, failure=failure, events=events, public=PUBLIC_PHASES
    )
