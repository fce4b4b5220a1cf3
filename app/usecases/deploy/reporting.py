"""What Gitea shows for a preview: the `preview` commit status and one PR comment."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import timedelta

from app.db import utcnow
from app.domain.planning import APPROVAL_COMMAND, APPROVAL_LABEL
from app.domain.states import PreviewState
from app.models import Preview, Screenshot
from app.settings import Settings
from app.usecases.deploy import lease, usage
from app.usecases.deploy.namespaces import names_for
from app.usecases.ports import DESCRIPTION_MAX, GiteaApi, GiteaError, Services

log = logging.getLogger(__name__)

_STATUS = {
    PreviewState.QUEUED: ("pending", "Preview queued"),
    PreviewState.PENDING_APPROVAL: ("pending", "Preview waiting for approval"),
    PreviewState.BUILDING: ("pending", "Preview building"),
    PreviewState.DEPLOYING: ("pending", "Preview deploying"),
    PreviewState.READY: ("success", "Preview ready"),
    PreviewState.SLEEPING: ("success", "Preview asleep: wakes on first visit"),
    PreviewState.FAILED: ("failure", "Preview failed"),
}


def comment_marker(preview: Preview) -> str:
    return f"<!-- preview:{preview.target_key} -->"


def service_page(settings: Settings, preview: Preview) -> str:
    return f"{settings.public_url}/previews/{preview.public_id}"


def status_for(settings: Settings, preview: Preview, detail: str | None = None) -> tuple[str, str, str] | None:
    """(state, description, target_url) for the preview's current state, None when there is nothing to say."""
    if preview.state not in _STATUS:
        return None
    state, description = _STATUS[preview.state]
    if preview.state == PreviewState.PENDING_APPROVAL:
        # The why is in the PR comment; a status description holds 140 characters: say how.
        if settings.untrusted_prs == "never":
            description = "Preview not built: untrusted pull requests are not previewed here"
        else:
            description = f"Preview waiting for approval: label {APPROVAL_LABEL} or comment {APPROVAL_COMMAND}"
    elif detail:
        description = f"{description}: {detail}"
    target = preview.url if preview.state in PreviewState.SERVING else service_page(settings, preview)
    return state, description, target


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def markdown_text(text: str) -> str:
    """`text` shown as itself in a Markdown table cell: a PR's author, branch, file or command
    output (in a failure's detail) must not become a link, an image, HTML or a new row."""
    return _MARKDOWN.sub(r"\\\1", " ".join(text.split()))


def money(settings: Settings, amount: float) -> str:
    """An estimate's amount: cents once it is worth them, else the fractions a new preview has."""
    return f"{amount:.2f} {settings.cost_currency}" if amount >= 1 else f"{amount:.4f} {settings.cost_currency}"


def comment_body(
    settings: Settings,
    preview: Preview,
    password: str | None,
    detail: str | None = None,
    cost: usage.Cost | None = None,
    screenshots: Sequence[Screenshot] = (),
) -> str:
    """`cost`: what the preview spent so far and spends an hour now, if known; `screenshots`:
    the pictures attached to the comment (shown_screenshots)."""
    detail = markdown_text(detail) if detail else None
    lines = [comment_marker(preview), "### Preview environment", ""]
    spent = cost.so_far if cost else 0.0
    if preview.state == PreviewState.DELETED:
        lines.append(f"The preview was removed{': ' + detail if detail else ''}.")
        lines.append(f"Last commit: `{(preview.deployed_sha or preview.head_sha)[:12]}`")
        if spent:
            lines.append(f"It cost {money(settings, spent)} in all.")
        return "\n".join(lines) + "\n"
    state = preview.state.replace("_", " ")
    lines.append("| | |")
    lines.append("|---|---|")
    if preview.url and preview.state in PreviewState.SERVING:
        lines.append(f"| URL | {preview.url} |")
    if preview.state == PreviewState.SLEEPING:
        detail = "asleep, wakes on first visit"
    lines.append(f"| State | {state}{' (' + detail + ')' if detail else ''} |")
    lines.append(f"| Commit | `{preview.head_sha[:12]}` |")
    if settings.access == "basic":
        lines.append("| User | `preview` |")
        if password:
            lines.append(f"| Password | `{password}` |")
        else:
            lines.append(
                f"| Password | `GET /api/previews/{preview.id}/credentials` on {settings.public_url}"
                f" ([details]({service_page(settings, preview)})) |"
            )
    else:
        lines.append("| Access | anyone with the URL |")
    if preview.expires_at:
        lines.append(f"| Expires | {preview.expires_at.replace(microsecond=0).isoformat()} UTC |")
    if cost and (cost.so_far or cost.per_hour):
        per_day = money(settings, cost.per_hour * 24)
        lines.append(f"| Cost | {money(settings, cost.so_far)} so far, {per_day} a day while it runs |")
    if preview.state in PreviewState.SERVING:
        lines.extend(screenshot_lines(screenshots))
    lines.append("")
    lines.append(f"Updated {utcnow().replace(microsecond=0).isoformat()} UTC.")
    return "\n".join(lines) + "\n"


def _change(row: Screenshot) -> str:
    if row.changed_share is None:
        return ""
    if not row.changed_share:
        return "no change"
    share = f"{100 * row.changed_share:.1f}%" if row.changed_share >= 0.001 else "<0.1%"
    return f"{share} changed ([highlighted]({row.overlay_url}))" if row.overlay_url else f"{share} changed"


def shown_screenshots(preview: Preview) -> list[Screenshot]:
    """The screenshots of the commit it serves attached to its comment, and the pages that gave
    no picture."""
    if preview.state not in PreviewState.SERVING or preview.pr_number is None:
        return []
    return list(
        Screenshot.select(Screenshot.id, Screenshot.page, Screenshot.viewport, Screenshot.attachment_url,
                          Screenshot.overlay_url, Screenshot.changed_share, Screenshot.compared_sha,
                          Screenshot.compared_with)
        .where(
            (Screenshot.preview == preview.id)
            & (Screenshot.sha == preview.deployed_sha)
            & (Screenshot.attachment_url.is_null(False) | Screenshot.png.is_null())
        )
        .order_by(Screenshot.id)
    )  # fmt: skip


def screenshot_lines(rows: Sequence[Screenshot]) -> list[str]:
    """A table of pages by viewport, each picture with what changed since the set it was
    compared with."""
    if not any(row.attachment_url for row in rows):
        return []
    viewports = list(dict.fromkeys(row.viewport for row in rows))
    pages = list(dict.fromkeys(row.page for row in rows))
    found = {(row.page, row.viewport): row for row in rows}
    lines = ["", "#### Screenshots", "", f"| Page | {' | '.join(v.capitalize() for v in viewports)} |"]
    lines.append("|---" * (len(viewports) + 1) + "|")
    for page in pages:
        cells = []
        for viewport in viewports:
            row = found.get((page, viewport))
            if row is None or not row.attachment_url:
                cells.append("no picture")
                continue
            change = _change(row)
            cells.append(f"![{viewport}]({row.attachment_url})" + (f"<br>{change}" if change else ""))
        lines.append(f"| `{page}` | {' | '.join(cells)} |")
    compared = next((row for row in rows if row.compared_sha), None)
    if compared is not None:
        lines.append("")
        what = markdown_text(compared.compared_with or "the set before")
        lines.append(f"Compared with {what} at `{compared.compared_sha[:12]}`.")
    return lines


def _set_status(gitea: GiteaApi, repository: str, preview: Preview, status: tuple[str, str, str], again: bool) -> None:
    """Post the status; when trying `again` after a failure, not if Gitea shows it already (a
    status whose answer was lost may have been stored all the same)."""
    state, description, target = status
    if again:
        shown = gitea.latest_status(repository, preview.head_sha)
        if shown is not None and (shown.get("status"), shown.get("description"), shown.get("target_url")) == (
            state,
            description[:DESCRIPTION_MAX],
            target,
        ):
            return
    gitea.set_status(repository, preview.head_sha, state, target, description)


def report(
    gitea: GiteaApi,
    settings: Settings,
    preview: Preview,
    password: str | None = None,
    detail: str | None = None,
    cost: usage.Cost | None = None,
    screenshots: Sequence[Screenshot] = (),
) -> None:
    """Publish the preview's state (and its `cost` and `screenshots`, for the comment) to
    Gitea. Raises GiteaError; the caller decides to retry."""
    repository = preview.repository.full_name
    status = status_for(settings, preview, detail)
    # The status first and alone: it is what the PR shows and what agents poll. Sent beside
    # it, the comment's two requests slowed Gitea's answer to it (p50 47 ms, 27 ms alone).
    if status is not None:
        _set_status(gitea, repository, preview, status, preview.report_attempts > 0)
    if preview.pr_number is not None:
        shown = password if settings.comment_password and preview.repository.private else None
        body = comment_body(settings, preview, shown, detail, cost, screenshots)
        gitea.upsert_comment(repository, preview.pr_number, comment_marker(preview), body)


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """How long after its `attempts`-th failure a report is tried again: doubling, capped."""
    backoff: timedelta = settings.report_retry_min * 2 ** min(attempts, 20)
    return min(settings.report_retry_max, backoff)


def publish(gitea: GiteaApi, settings: Settings, preview: Preview, password: str | None = None) -> bool:
    """Send the report due for `preview` as read (its state, and the why recorded with it) and
    record the outcome in the outbox; True when Gitea has it.

    Recorded only against the version it was made for: a state that changed meanwhile is
    due in its own right. A failure is tried again later (the scheduler's `reported` step).
    """
    version = preview.report_version
    same = (Preview.id == preview.id) & (Preview.report_version == version)
    told = Preview.update(reported_version=version, report_attempts=0, report_next_at=None).where(same)
    try:
        cost = usage.cost_of(settings, preview.id, utcnow()) if preview.pr_number is not None else None
        report(gitea, settings, preview, password, preview.report_detail, cost, shown_screenshots(preview))
    except GiteaError as error:
        if error.status == 404:
            # The repository, the PR or the commit is gone from Gitea: nobody is left to tell.
            log.info("nothing to report to: Gitea says 404 preview_id=%s error=%s", preview.id, error)
            told.execute()
            return True
        delay = retry_delay(settings, preview.report_attempts)
        Preview.update(report_attempts=Preview.report_attempts + 1, report_next_at=utcnow() + delay).where(
            same
        ).execute()
        log.warning("gitea report failed, tried again in %ss preview_id=%s error=%s", delay.seconds, preview.id, error)
        return False
    told.execute()
    return True


def tell(services: Services, preview: Preview, password: str | None = None) -> None:
    """Tell Gitea the state `preview` was read in. Never fails the deploy: a report Gitea did
    not take stays due in the outbox, and the scheduler has it sent again."""
    if services.gitea.configured:
        publish(services.gitea, services.settings, preview, password)


def report_due(services: Services, preview_id: int) -> str:
    """The outbox's report job: tell Gitea the preview's state if it has not been told yet.

    It holds the lease too, so a report never overtakes the deploy of a newer commit, and
    a report already sent is not sent again."""
    if not services.gitea.configured:
        return "skipped"
    try:
        with lease.hold(preview_id, services.settings.lease_ttl):
            preview = Preview.get_or_none(Preview.id == preview_id)
            if preview is None or preview.reported_version >= preview.report_version:
                return "already reported"
            password = None
            if (
                services.settings.comment_password
                and preview.repository.private
                and preview.state == PreviewState.READY
            ):
                names = names_for(services.settings, preview)
                password = (services.kube.read_secret_data(names.namespace, names.auth_secret) or {}).get("password")
            return "reported" if publish(services.gitea, services.settings, preview, password) else "failed"
    except lease.LeaseHeld:
        return "deferred"  # its holder reports, or the scheduler comes back when the lease is free
