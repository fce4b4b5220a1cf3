"""The page a failed preview's commit status links to. Public, so it shows no secrets and no logs."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue

from app.models import Deployment, Event, Preview

blueprint = Blueprint("pages", __name__)


@blueprint.get("/previews/<int:preview_id>")
def preview_page(preview_id: int) -> ResponseReturnValue:
    preview = Preview.get_or_none(Preview.id == preview_id)
    if preview is None:
        abort(404)
    last = preview.deployments.order_by(Deployment.id.desc()).first()
    failure = last.failure_reason if last is not None and last.status == "failed" else None
    events = list(preview.events.order_by(Event.id.desc()).limit(50))
    return render_template("preview.html", preview=preview, failure=failure, events=events)
