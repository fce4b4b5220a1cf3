"""Monthly budgets per repository: over its budget, a repository's new previews wait.

A preview that holds its slot already keeps running and takes new commits: a budget stops
new spending, it does not take down what reviewers are looking at. A held preview is out
of the line for a slot (Preview.waiting) and not stuck (Preview.stuck); each scheduler
pass lets go those whose repository's budget allows them again (raised, or a new month).
"""

from __future__ import annotations

from datetime import datetime

import peewee

from app.domain import costs
from app.domain.states import PreviewState
from app.models import Preview, Repository
from app.settings import Settings
from app.usecases.deploy import usage
from app.usecases.errors import Invalid, NotFound
from app.usecases.jobs import enqueue_deploy
from app.usecases.ports import Queue

RELEASE_WINDOW_SECONDS = 5


def budget_of(settings: Settings, repository: Repository) -> float | None:
    """The repository's monthly budget: its own (`flask repos budget`), else the default."""
    return repository.monthly_budget if repository.monthly_budget is not None else settings.budget_per_repository


def set_budget(full_name: str, amount: float | None) -> Repository:
    """Give owner/name its own monthly budget (None: the default again). Raising it lets held
    previews go at the scheduler's next pass."""
    repository = Repository.named(full_name)
    if repository is None:
        raise NotFound(f"no repository {full_name} is known here")
    if amount is not None and amount < 0:
        raise Invalid("a budget must not be negative")
    Repository.update(monthly_budget=amount).where(Repository.id == repository.id).execute()
    repository.monthly_budget = amount
    return repository


def over_budget(settings: Settings, repository: Repository, now: datetime) -> str | None:
    """Why the repository may not start another preview this month, or None."""
    budget = budget_of(settings, repository)
    if budget is None:
        return None
    spent = usage.spent_by_repository(settings, costs.month_start(now), now, [repository.id]).get(repository.id, 0.0)
    if spent < budget:
        return None
    currency = settings.cost_currency
    return f"{repository.full_name} spent {spent:.2f} of its {budget:.2f} {currency} budget this month"


def hold_back(settings: Settings, preview: Preview, now: datetime) -> str | None:
    """Hold a new preview back while its repository is over budget: the why, or None to go on."""
    if preview.holds_slot:
        return None
    why = over_budget(settings, preview.repository, now)
    if why is not None:
        Preview.update(
            budget_held_since=peewee.fn.COALESCE(Preview.budget_held_since, now),
            waiting_since=peewee.fn.COALESCE(Preview.waiting_since, now),
        ).where(Preview.id == preview.id).execute()
    elif preview.budget_held_since is not None:
        Preview.update(budget_held_since=None).where(Preview.id == preview.id).execute()
    return why


def held() -> peewee.ModelSelect:
    return (
        Preview.select(Preview, Repository)
        .join(Repository)
        .where(
            (Preview.state == PreviewState.QUEUED)
            & (Preview.holds_slot == False)  # noqa: E712
            & Preview.budget_held_since.is_null(False)
        )
    )


def release(queue: Queue, settings: Settings, now: datetime, dry_run: bool = False) -> list[int]:
    """Queue the deploys of held previews whose repository's budget allows them now; each
    looks at the budget again when it runs (and under MAX_ACTIVE_PREVIEWS takes its place
    in line, which it kept)."""
    waiting = list(held())
    verdicts: dict[int, bool] = {}
    released = []
    for preview in waiting:
        repository = preview.repository
        if repository.id not in verdicts:
            verdicts[repository.id] = over_budget(settings, repository, now) is None
        if verdicts[repository.id]:
            released.append(preview)
    if not dry_run:
        window = int(now.timestamp()) // RELEASE_WINDOW_SECONDS
        for preview in released:
            enqueue_deploy(queue, preview.id, preview.head_sha, f"budget-{window}", keep_result=False)
    return [p.id for p in released]
