"""A preview's namespace and its guards (our rights in it, its quota, limits and network
policy): all in place before anything of the PR runs there.

The deploy job may apply them ahead, on a thread of its own while it reads Gitea
(IsolationAhead): they hold nothing of the PR's code, only its names. It does so only
under the preview's lease, and only for a deploy the checks to come are expected to let
through (pipeline._expected_to_go_ahead), so that a stranger's PR gets no namespace
before a maintainer approves it. The deploy then applies only what its confirmed
commit and preview file change in them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.db import database
from app.domain.k8s import isolation
from app.domain.k8s.isolation import Opening
from app.domain.k8s.labels import PreviewSpec
from app.models import Preview
from app.usecases.deploy import lease, policies
from app.usecases.deploy.namespaces import owned_or_free
from app.usecases.deploy.runs import Run, StepFailed
from app.usecases.ports import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Isolated:
    """What an isolate() call applied: the namespace's name, the objects as meant, and whether
    the namespace was new (then nothing else of the preview's is in it yet)."""

    namespace: str
    objects: tuple[dict[str, Any], ...]
    new: bool


def isolate(
    services: Services,
    preview_id: int,
    spec: PreviewSpec,
    opening: Opening | None,
    check: Callable[[], object],
    before: Isolated | None = None,
) -> Isolated:
    """Apply the namespace, our rights in it, then its guards; `check()` raises when the work
    is no longer wanted. `before`: what was applied ahead in this job, of which only the
    objects that differ now are applied again."""
    settings, kube, namespace = services.settings, services.kube, spec.names.namespace
    policy = policies.isolation(settings)
    namespace_object, *bindings = isolation.access_objects(spec, policy)
    guards = isolation.guard_objects(spec, policy, opening)
    objects = (namespace_object, *bindings, *guards)
    if before is not None and before.namespace == namespace:
        check()
        kube.apply_all([found for found in objects if found not in before.objects])
        return Isolated(namespace, objects, before.new)
    labels = kube.settled_namespace_labels(namespace, timeout=180)
    if not owned_or_free(labels, preview_id):
        raise StepFailed("deploy", f"namespace {namespace} exists and is not this preview's: not touched")
    check()
    kube.apply(namespace_object)
    if bindings:
        kube.apply_all(bindings)
        # With the chart's roles our rights here come from the binding just made: wait until
        # the API server's authorizer knows it. (Without bindings they come from elsewhere.)
        if not kube.wait_until_allowed(namespace, "patch", "deployments", "apps"):
            raise StepFailed("deploy", f"no rights in {namespace}: is PREVIEW_CLUSTER_ROLE bound?")
    kube.apply_all(guards)
    return Isolated(namespace, objects, new=labels is None)


class IsolationAhead:
    """isolate() for `spec` (the commit the delivery names, the repository's default
    configuration) on a thread of its own, if `go_ahead()` says so. The caller holds the
    preview's lease and waits for result() before it lets the lease go.

    A failure here is only logged: the deploy then isolates the preview itself, and meets
    the same failure in its own way (a step that fails, a job retried)."""

    def __init__(
        self, services: Services, held: lease.Lease, spec: PreviewSpec, made_at: datetime, go_ahead: Callable[[], bool]
    ) -> None:
        self.spec, self.made_at = spec, made_at  # made_at: the `now` spec's expiry counts from
        self._isolated: Isolated | None = None
        self._thread = threading.Thread(
            target=self._isolate, args=(services, held, go_ahead), name="isolation-ahead", daemon=True
        )
        self._thread.start()

    def _isolate(self, services: Services, held: lease.Lease, go_ahead: Callable[[], bool]) -> None:
        spec = self.spec
        with database.connection_context():  # the thread's own connection: peewee's are per thread
            try:
                if not go_ahead():
                    return
                # From now on the orphan sweep knows the namespace as this preview's.
                namespace = spec.names.namespace
                if not Preview.change(spec.preview_id, sha=spec.head_sha, owner=held.owner, namespace=namespace):
                    return
                run = Run(services, held, spec.preview_id, spec.head_sha)
                self._isolated = isolate(services, spec.preview_id, spec, None, run.check)
            except Exception as error:  # the deploy's own isolate() is the one that counts
                log.info("isolating ahead stopped preview_id=%s error=%r", spec.preview_id, error)

    def result(self) -> Isolated | None:
        """What was applied ahead, once it has ended; None when nothing was, or not all."""
        self._thread.join()
        return self._isolated
