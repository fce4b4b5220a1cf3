"""A request for a sleeping preview's host, as the web receives it through the preview's own
route (app/domain/k8s/wake.py): what to answer, and whether it wakes the preview.

The route's auth stays in front, but the web is reachable without it too (a client can send
any Host header), so the credentials are checked again here: only the preview's password
wakes a password-protected preview.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from app.db import utcnow
from app.domain import credentials, visitors
from app.domain.naming import AUTH_SECRET
from app.domain.states import PreviewState
from app.models import Event, Preview
from app.settings import Settings
from app.usecases.deploy import sleeping
from app.usecases.ports import ClusterNotConfigured, KubeError, Services

# How often the page reloads itself: while the preview wakes, and while it waits for other
# work (a deploy, a free slot), which takes longer and needs no quick look.
WAKING_RELOAD_SECONDS = 1
WAITING_RELOAD_SECONDS = 5


@dataclass(frozen=True)
class WakePage:
    status: int
    title: str
    message: str
    reload_seconds: int | None = None  # the page reloads itself after this long


def preview_slug(settings: Settings, host: str) -> str | None:
    """The slug of a preview host (`<slug>.<PREVIEW_DOMAIN>`), None for any other host (the
    service's own included). Only while previews may sleep: otherwise no host is a preview's."""
    if not settings.sleeping_on:
        return None
    name = host.rsplit(":", 1)[0].lower().rstrip(".") if not host.startswith("[") else host
    suffix = "." + settings.preview_domain
    if not name.endswith(suffix) or name == urlsplit(settings.public_url).hostname:
        return None
    slug = name[: -len(suffix)]
    return slug if slug and "." not in slug else None


def _allowed(services: Services, preview: Preview, authorization: str | None) -> bool:
    if services.settings.access == "public":
        return True
    try:
        secret = services.kube.read_secret_data(preview.namespace, AUTH_SECRET) or {}
    except (KubeError, ClusterNotConfigured):
        return False  # cannot be checked: not let in
    given = visitors.basic_credentials(authorization)
    return visitors.credentials_match(given, secret.get("username", credentials.USERNAME), secret.get("password", ""))


def _latest_wake_news(preview: Preview) -> str | None:
    event = (
        Event.select(Event.message)
        .where((Event.preview == preview.id) & (Event.phase == "wake"))
        .order_by(Event.id.desc())
        .first()
    )
    return event.message if event else None


def visit(
    services: Services,
    slug: str,
    method: str,
    authorization: str | None,
    user_agent: str | None,
    purpose: str | None,
) -> WakePage:
    preview = Preview.get_or_none((Preview.slug == slug) & Preview.state.in_(PreviewState.ACTIVE))
    if preview is None or not preview.namespace:
        return WakePage(404, "No preview here", "There is no preview at this address.")
    if not _allowed(services, preview, authorization):
        return WakePage(401, "Credentials needed", "This preview needs its password.")
    if preview.state == PreviewState.READY:
        # Awake: its own pods answer from now on; this was a request on its way.
        return WakePage(503, "Awake", "The preview is up: reloading.", WAKING_RELOAD_SECONDS)
    if preview.state in PreviewState.DEPLOYING_STATES:
        state = preview.state.replace("_", " ")
        return WakePage(503, "Deploying", f"The preview is {state}: this page reloads.", WAITING_RELOAD_SECONDS)
    if preview.state != PreviewState.SLEEPING:
        state = preview.state.replace("_", " ")
        return WakePage(503, "Not running", f"The preview is {state}: see its page in Gitea's pull request.")
    if not visitors.may_wake(method, user_agent, purpose):
        return WakePage(503, "Asleep", "This preview is asleep; opening it in a browser wakes it.")
    queued = sleeping.ask_to_wake(services.queue, preview, utcnow())
    news = _latest_wake_news(preview) if preview.wake_requested_at else None
    if not queued:
        news = "the queue cannot be reached: the wake is asked for again shortly"
    return WakePage(503, "Waking up", f"This preview is waking up{': ' + news if news else '.'}", WAKING_RELOAD_SECONDS)
