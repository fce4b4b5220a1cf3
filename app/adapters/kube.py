"""The Kubernetes adapter: the only module that imports the `kubernetes` client.

Objects are applied with server-side apply under one field manager, so every
step can be re-run after a crash. Waiting uses watches with timeouts. Client
errors become `KubeError`; every call has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from app.domain.k8s import diagnosis
from app.usecases.ports import JobInfo, JobOutcome, KubeError, NamespaceInfo, RolloutOutcome

log = logging.getLogger(__name__)

FIELD_MANAGER = "gitea-previews"
REQUEST_TIMEOUT = 30
# Namespaces per list request (the API server's pages: limit and continue).
NAMESPACE_PAGE = 500
# The label the Job controller puts on a Job's pods: the Job's uid (since Kubernetes 1.27).
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
# Objects of one batch applied at once (apply_all); the client's pool holds more connections.
APPLY_CONCURRENCY = 4

# (apiVersion, kind) -> (path prefix, plural, namespaced)
_RESOURCES = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "Secret"): ("/api/v1", "secrets", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "ResourceQuota"): ("/api/v1", "resourcequotas", True),
    ("v1", "LimitRange"): ("/api/v1", "limitranges", True),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
    ("apps/v1", "StatefulSet"): ("/apis/apps/v1", "statefulsets", True),
    ("batch/v1", "Job"): ("/apis/batch/v1", "jobs", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    ("networking.k8s.io/v1", "Ingress"): ("/apis/networking.k8s.io/v1", "ingresses", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    # Gateway API routing (app/domain/k8s/routing.py) and each controller's auth object.
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("/apis/gateway.networking.k8s.io/v1", "httproutes", True),
    ("gateway.nginx.org/v1alpha1", "AuthenticationFilter"): (
        "/apis/gateway.nginx.org/v1alpha1",
        "authenticationfilters",
        True,
    ),
    ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"): (
        "/apis/gateway.envoyproxy.io/v1alpha1",
        "securitypolicies",
        True,
    ),
    ("traefik.io/v1alpha1", "Middleware"): ("/apis/traefik.io/v1alpha1", "middlewares", True),
    # A sleeping preview's way to the wake page (app/domain/k8s/wake.py).
    ("discovery.k8s.io/v1", "EndpointSlice"): ("/apis/discovery.k8s.io/v1", "endpointslices", True),
}
# The workloads a preview sleeps by scaling to zero: its app, extra services, in-namespace database.
_SCALED = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"))


def _error(action: str, error: Exception) -> KubeError:
    if isinstance(error, ApiException):
        reason = error.reason
        with contextlib.suppress(ValueError, AttributeError):
            reason = json.loads(error.body or "{}").get("message") or reason
        return KubeError(f"{action}: {reason}", error.status)
    return KubeError(f"{action}: {error}")


_CLIENT_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


# How often a wait asks its caller whether to stop (a newer commit, a lost lease).
STOP_CHECK_SECONDS = 5


def load_configuration(kubeconfig: str | None) -> client.Configuration:
    """From KUBECONFIG, else the in-cluster service account."""
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return configuration


def _telling_container(pod: Any) -> str:
    """The container whose log explains the pod: a failed init container, else the main one."""
    for status in pod.status.init_container_statuses or [] if pod.status else []:
        terminated = status.state.terminated if status.state else None
        if terminated and terminated.exit_code:
            return str(status.name)
    return str(pod.spec.containers[0].name)


class Kube:
    def __init__(self, configuration: client.Configuration, timeout: int = REQUEST_TIMEOUT) -> None:
        self.api = client.ApiClient(configuration)
        self.timeout = timeout
        # Typed as Any: the client's models make every field Optional, which says nothing useful here.
        self.core: Any = client.CoreV1Api(self.api)
        self.apps: Any = client.AppsV1Api(self.api)
        self.batch: Any = client.BatchV1Api(self.api)
        self._appliers: ThreadPoolExecutor | None = None  # made on first use, in the process that uses it

    def close(self) -> None:
        if self._appliers is not None:
            self._appliers.shutdown()
        self.api.close()

    # --- generic -----------------------------------------------------------------

    def _list_named(self, list_call: Any, name: str, namespace: str | None = None) -> Any:
        """List the one object called `name` (empty when it does not exist), for its resourceVersion."""
        scope = (namespace,) if namespace else ()
        return list_call(*scope, field_selector=f"metadata.name={name}", _request_timeout=self.timeout)

    def _watch_named(
        self, list_call: Any, name: str, version: str, seconds: float, namespace: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Watch the object called `name` from its resourceVersion `version`, for at most `seconds`.

        A version the API server no longer has (410 Gone: it restarted, or compacted its
        history) ends the window early instead of failing: callers read the object again
        and watch from there, which is what a re-list is."""
        scope = (namespace,) if namespace else ()
        seconds = max(1, int(seconds))
        try:
            yield from watch.Watch().stream(
                list_call,
                *scope,
                field_selector=f"metadata.name={name}",
                resource_version=version,
                timeout_seconds=seconds,
                _request_timeout=self.timeout + seconds,
            )
        except ApiException as error:
            if error.status != 410:
                raise
            log.info("watch of %s expired (410 Gone): reading it again", name)

    def _path(self, obj: dict[str, Any]) -> str:
        key = (obj["apiVersion"], obj["kind"])
        if key not in _RESOURCES:
            raise KubeError(f"no route for {key}")
        prefix, plural, namespaced = _RESOURCES[key]
        name = obj["metadata"]["name"]
        if namespaced:
            return f"{prefix}/namespaces/{obj['metadata']['namespace']}/{plural}/{name}"
        return f"{prefix}/{plural}/{name}"

    def _send(self, what: str, method: str, path: str, body: dict[str, Any] | None, **options: Any) -> dict[str, Any]:
        """One request with a JSON answer, read as plain JSON: the client's model classes are
        imported lazily in every forked work horse, tens of milliseconds for each new kind."""
        try:
            method, url, headers, payload, post = self.api.param_serialize(
                method, path, body=body, auth_settings=["BearerToken"], **options
            )
            response = self.api.call_api(method, url, headers, payload, post, _request_timeout=self.timeout)
            data = response.read()
        except _CLIENT_ERRORS as error:
            raise _error(what, error) from error
        if not 200 <= response.status < 300:
            try:
                message = json.loads(data).get("message", "")
            except ValueError:
                message = data[:200].decode(errors="replace")
            raise KubeError(f"{what}: {message}", response.status)
        return json.loads(data)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply `obj` under our field manager; returns the object as stored."""
        path = self._path(obj)
        return self._send(
            f"apply {obj['kind']} {path}",
            "PATCH",
            path,
            obj,
            query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        )

    def apply_all(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply objects that do not depend on each other side by side: one batch costs about
        one round trip instead of one per object. Returns them as stored, in order; the first
        error is raised once every apply has ended."""
        if len(objects) <= 1:
            return [self.apply(obj) for obj in objects]
        if self._appliers is None:
            self._appliers = ThreadPoolExecutor(APPLY_CONCURRENCY, thread_name_prefix="kube-apply")
        futures = [self._appliers.submit(self.apply, obj) for obj in objects]
        wait(futures)  # every apply ends before an error is raised: none is left running behind it
        return [future.result() for future in futures]

    def wait_until_allowed(
        self, namespace: str, verb: str, resource: str, group: str = "", timeout: float = 15
    ) -> bool:
        """Wait until this client may `verb` `resource` in `namespace`: a RoleBinding just
        created takes a moment to reach the API server's authorizer."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource, "group": group}
            },
        }
        deadline = time.monotonic() + timeout
        while True:
            answer = self._send(
                f"access review in {namespace}",
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                review,
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
            )
            if answer.get("status", {}).get("allowed"):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    # --- namespaces, secrets, jobs -----------------------------------------------

    def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        import base64

        try:
            secret = self.core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise _error(f"read secret {namespace}/{name}", error) from error
        except _CLIENT_ERRORS as error:
            raise _error(f"read secret {namespace}/{name}", error) from error
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}

    @staticmethod
    def _delete(what: str, call: Callable[[], Any]) -> bool:
        """Run a delete call. False when the object was already gone (a 404 is success)."""
        try:
            call()
        except ApiException as error:
            if error.status == 404:
                return False
            raise _error(what, error) from error
        except _CLIENT_ERRORS as error:
            raise _error(what, error) from error
        return True

    def delete_object(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete one namespaced object of a kind we apply. False when it was already gone."""
        path = self._path({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}})
        try:
            self._send(
                f"delete {kind} {namespace}/{name}", "DELETE", path, None, header_params={"Accept": "application/json"}
            )
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    def _workloads(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        found = []
        for api_version, kind in _SCALED:
            prefix, plural, _ = _RESOURCES[(api_version, kind)]
            listed = self._send(
                f"list {plural} in {namespace}",
                "GET",
                f"{prefix}/namespaces/{namespace}/{plural}",
                None,
                query_params=[("labelSelector", label_selector)],
                header_params={"Accept": "application/json"},
            )
            found += [{**item, "apiVersion": api_version, "kind": kind} for item in listed.get("items", [])]
        return found

    def _merge_patch(self, obj: dict[str, Any], patch: dict[str, Any]) -> None:
        self._send(
            f"patch {obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}",
            "PATCH",
            self._path(obj),
            patch,
            query_params=[("fieldManager", FIELD_MANAGER)],
            header_params={"Content-Type": "application/merge-patch+json", "Accept": "application/json"},
        )

    def scale_to_zero(self, namespace: str, label_selector: str, note: str) -> int:
        """Scale the Deployments and StatefulSets matching `label_selector` to zero, noting each
        one's replicas under the annotation `note`; returns how many were scaled."""
        scaled = 0
        for workload in self._workloads(namespace, label_selector):
            replicas = int(workload.get("spec", {}).get("replicas") or 0)
            if replicas == 0:
                continue  # asleep already (its note kept) or never running
            self._merge_patch(workload, {"metadata": {"annotations": {note: str(replicas)}}, "spec": {"replicas": 0}})
            scaled += 1
        return scaled

    def scale_back(self, namespace: str, label_selector: str, note: str) -> int:
        """Give the workloads scaled to zero by scale_to_zero their replicas back; returns how many."""
        scaled = 0
        for workload in self._workloads(namespace, label_selector):
            noted = (workload["metadata"].get("annotations") or {}).get(note)
            if noted is None:
                continue
            replicas = int(noted) if noted.isdigit() else 1
            self._merge_patch(workload, {"metadata": {"annotations": {note: None}}, "spec": {"replicas": replicas}})
            scaled += 1
        return scaled

    def delete_secret(self, namespace: str, name: str) -> bool:
        return self._delete(
            f"delete secret {namespace}/{name}",
            lambda: self.core.delete_namespaced_secret(name, namespace, _request_timeout=self.timeout),
        )

    def delete_namespace(self, name: str) -> bool:
        """Start deleting a namespace. False when it was already gone."""
        return self._delete(
            f"delete namespace {name}",
            lambda: self.core.delete_namespace(name, propagation_policy="Background", _request_timeout=self.timeout),
        )

    def settled_namespace_labels(self, name: str, timeout: float) -> dict[str, str] | None:
        """The namespace's labels, None when there is none; a namespace being deleted (a PR
        reopened right after closing) is waited for until it is gone. One read when it is not."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                found = self._list_named(self.core.list_namespace, name)
                if not found.items:
                    return None
                if not found.items[0].metadata.deletion_timestamp:
                    return dict(found.items[0].metadata.labels or {})
                version = found.metadata.resource_version
                for event in self._watch_named(self.core.list_namespace, name, version, 5):
                    if event["type"] == "DELETED":
                        return None
        except _CLIENT_ERRORS as error:
            raise _error(f"watch namespace {name}", error) from error
        raise KubeError(f"namespace {name} is still being deleted after {timeout:.0f} s")

    def namespace_labels(self, name: str) -> dict[str, str] | None:
        """The namespace's labels; None when there is no such namespace."""
        try:
            found = self.core.read_namespace(name, _request_timeout=self.timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise _error(f"read namespace {name}", error) from error
        except _CLIENT_ERRORS as error:
            raise _error(f"read namespace {name}", error) from error
        return dict(found.metadata.labels or {})

    def list_namespaces(self, label_selector: str) -> list[NamespaceInfo]:
        """Every namespace the selector matches, read a page at a time (limit and continue): one
        request per NAMESPACE_PAGE of them, each page read as plain JSON, so ten thousand
        previews cost a few requests and no model objects."""
        found: list[NamespaceInfo] = []
        token = ""
        while True:
            query: list[tuple[str, Any]] = [("labelSelector", label_selector), ("limit", NAMESPACE_PAGE)]
            page = self._send(
                "list namespaces",
                "GET",
                "/api/v1/namespaces",
                None,
                query_params=query + ([("continue", token)] if token else []),
            )
            found.extend(_namespace_info(item) for item in page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return found

    def list_jobs(self, namespace: str, label_selector: str) -> list[JobInfo]:
        try:
            found = self.batch.list_namespaced_job(
                namespace, label_selector=label_selector, _request_timeout=self.timeout
            ).items
            return [JobInfo(job.metadata.name, job.metadata.uid, diagnosis.job_state(self._json(job))) for job in found]
        except ApiException as error:
            if error.status == 404:
                return []
            raise _error(f"list jobs in {namespace}", error) from error
        except _CLIENT_ERRORS as error:
            raise _error(f"list jobs in {namespace}", error) from error

    def delete_job(self, namespace: str, name: str) -> bool:
        return self._delete(
            f"delete job {namespace}/{name}",
            lambda: self.batch.delete_namespaced_job(
                name, namespace, propagation_policy="Background", _request_timeout=self.timeout
            ),
        )

    def replace_job(self, job: dict[str, Any], recreate: bool = False, timeout: float = 60.0) -> None:
        """Apply a Job. With `recreate`, or when an older Job of that name differs (a Job's template
        is immutable), delete the old one first and wait until it is gone."""
        if not recreate:
            try:
                self.apply(job)
                return
            except KubeError as error:
                if error.status != 422:
                    raise
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        try:
            self.batch.delete_namespaced_job(
                name, namespace, propagation_policy="Foreground", _request_timeout=self.timeout
            )
        except ApiException as error:
            if error.status != 404:
                raise _error(f"delete job {namespace}/{name}", error) from error
        except _CLIENT_ERRORS as error:
            raise _error(f"delete job {namespace}/{name}", error) from error
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                found = self._list_named(self.batch.list_namespaced_job, name, namespace)
                if not found.items:
                    break
                for _ in self._watch_named(
                    self.batch.list_namespaced_job, name, found.metadata.resource_version, 5, namespace
                ):
                    pass
        except _CLIENT_ERRORS as error:
            raise _error(f"wait for job {namespace}/{name} to go", error) from error
        self.apply(job)

    def _job_pod(self, namespace: str, job_name: str) -> Any | None:
        pods = self.core.list_namespaced_pod(
            namespace, label_selector=f"job-name={job_name}", _request_timeout=self.timeout
        ).items
        return pods[-1] if pods else None

    def _termination(self, namespace: str, job_name: str) -> tuple[str, str]:
        pod = self._job_pod(namespace, job_name)
        for status in (pod.status.container_statuses or []) if pod else []:
            terminated = status.state.terminated if status.state else None
            if terminated:
                return (terminated.message or "").strip(), terminated.reason or ""
        return "", ""

    def _quota_refusal(self, namespace: str, job_name: str) -> str | None:
        """What the namespace's quota said when it refused the Job's pod, if it did."""
        events = self.core.list_namespaced_event(
            namespace,
            field_selector=f"involvedObject.kind=Job,involvedObject.name={job_name},reason=FailedCreate",
            _request_timeout=self.timeout,
        ).items
        refusals = [e.message for e in events if e.message and "exceeded quota" in e.message]
        return refusals[-1] if refusals else None

    def wait_for_job(
        self,
        namespace: str,
        name: str,
        timeout: float,
        should_stop: Callable[[], bool] | None = None,
        quota_refusal_is_final: bool = False,
        single_pod: bool = False,
    ) -> JobOutcome:
        """Watch a Job until it completes or fails, disappears, `timeout` seconds pass, or
        `should_stop()` (asked every few seconds) says the result is no longer wanted.

        `quota_refusal_is_final`: a pod the namespace's quota refuses fails the Job at once (in a
        preview's namespace the app and its database hold their share until the preview goes;
        builds, by contrast, wait their turn for the build namespace's quota).
        `single_pod`: the Job runs one pod and never retries it (backoffLimit 0, restartPolicy
        Never), so that pod's success is the Job's: the pod is watched, and its success taken at
        once instead of the Job controller's word on it, which comes seconds later."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return JobOutcome("timeout", reason="timeout")
                if should_stop is not None and should_stop():
                    return JobOutcome("stopped", reason="stopped")
                jobs = self._list_named(self.batch.list_namespaced_job, name, namespace)
                state = diagnosis.job_state(self._json(jobs.items[0])) if jobs.items else "missing"
                if state is None and quota_refusal_is_final and (refused := self._quota_refusal(namespace, name)):
                    return JobOutcome("failed", refused, reason="quota")
                if state is None and single_pod:
                    window = min(remaining, STOP_CHECK_SECONDS)
                    ended = self._watch_single_pod(namespace, jobs.items[0].metadata.uid, window)
                    if ended is None:
                        continue  # still running (or gone): the Job is read again
                    if ended == "Succeeded":
                        state = "complete"
                    # Failed: the Job controller's verdict is waited for, so that a retry of the
                    # same commit finds the Job failed and makes a new one.
                if state is None:
                    checks = should_stop is not None or quota_refusal_is_final
                    window = min(remaining, STOP_CHECK_SECONDS if checks else 60)
                    state = self._watch_job_state(namespace, name, jobs.metadata.resource_version, window)
                if state == "missing":
                    return JobOutcome("missing", reason="deleted")
                if state:
                    return self._job_ended(namespace, name, state)
        except _CLIENT_ERRORS as error:
            raise _error(f"watch job {namespace}/{name}", error) from error

    def _job_ended(self, namespace: str, name: str, state: str) -> JobOutcome:
        """How the Job ended: its pod's last words; for a Job no pod of which ended (the quota
        refused each until the deadline), the quota's refusal."""
        message, reason = self._termination(namespace, name)
        if state == "failed" and not (message or reason) and (refused := self._quota_refusal(namespace, name)):
            message, reason = refused, "quota"
        return JobOutcome(state, message, reason)

    def _watch_job_state(self, namespace: str, name: str, version: str, seconds: float) -> str | None:
        """complete, failed or missing (deleted) once the Job says so; None after `seconds`."""
        for event in self._watch_named(self.batch.list_namespaced_job, name, version, seconds, namespace):
            if event["type"] == "DELETED":
                return "missing"
            if state := diagnosis.job_state(self._json(event["object"])):
                return state
        return None

    def _watch_single_pod(self, namespace: str, job_uid: str, seconds: float) -> str | None:
        """The phase its pod ended in (Succeeded or Failed), found by the Job's uid (never an
        older Job's pod of the same name); None when it still runs after `seconds`."""
        selector = f"{JOB_UID_LABEL}={job_uid}"
        listed = self.core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=self.timeout)
        ended = ("Succeeded", "Failed")
        for pod in listed.items:
            if pod.status and pod.status.phase in ended:
                return str(pod.status.phase)
        try:
            stream = watch.Watch().stream(
                self.core.list_namespaced_pod,
                namespace,
                label_selector=selector,
                resource_version=listed.metadata.resource_version,
                timeout_seconds=max(1, int(seconds)),
                _request_timeout=self.timeout + seconds,
            )
            for event in stream:
                phase = event["object"].status.phase if event["object"].status else None
                if event["type"] != "DELETED" and phase in ended:
                    return str(phase)
        except ApiException as error:
            if error.status != 410:
                raise
        return None

    def pod_log_tail(self, namespace: str, label_selector: str, lines: int = 100) -> str:
        """The last lines of the newest matching pod's log; '' when there is none or it is unreadable."""
        return self._newest_pod_log(namespace, label_selector, tail_lines=lines)

    def pod_log(self, namespace: str, label_selector: str, limit_bytes: int) -> str:
        """The newest matching pod's log from its start, at most `limit_bytes` of it; '' when
        there is none or it is unreadable."""
        return self._newest_pod_log(namespace, label_selector, limit_bytes=limit_bytes)

    def _newest_pod_log(self, namespace: str, label_selector: str, **reading: Any) -> str:
        try:
            pods = self.core.list_namespaced_pod(
                namespace, label_selector=label_selector, _request_timeout=self.timeout
            ).items
            if not pods:
                return ""
            newest = max(pods, key=lambda p: p.metadata.creation_timestamp)
            return self.core.read_namespaced_pod_log(
                newest.metadata.name,
                namespace,
                container=_telling_container(newest),
                _request_timeout=self.timeout,
                **reading,
            )
        except _CLIENT_ERRORS as error:
            log.info("pod log unavailable namespace=%s selector=%s error=%s", namespace, label_selector, error)
            return ""

    # --- rollout -----------------------------------------------------------------

    def wait_for_rollout(
        self,
        namespace: str,
        name: str,
        timeout: float,
        should_stop: Callable[[], bool] | None = None,
        applied: dict[str, Any] | None = None,
    ) -> RolloutOutcome:
        """Watch a Deployment until its newest revision is available, or say why it is not.

        `applied`: the Deployment as apply just stored it; the first watch starts from its
        version at once (no read first, and no pods to diagnose yet). Between watch windows
        the pods are checked, so an image that cannot be pulled or a crash loop ends the
        wait early instead of at the deadline, and `should_stop()` is asked whether the
        rollout still matters.
        """
        deadline = time.monotonic() + timeout
        found = applied
        try:
            while True:
                if should_stop is not None and should_stop():
                    return RolloutOutcome(False, "stopped", "no longer wanted")
                stuck = None
                if found is None:
                    found = self._json(
                        self.apps.read_namespaced_deployment(name, namespace, _request_timeout=self.timeout)
                    )
                    stuck = None if diagnosis.rolled_out(found) else self._rollout_problem(namespace, found)
                if diagnosis.rolled_out(found):
                    return RolloutOutcome(True)
                if stuck and stuck.reason != "pending":
                    return stuck
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return stuck if stuck else RolloutOutcome(False, "timeout", f"not available after {timeout:.0f} s")
                # Short windows: the pods are diagnosed between them.
                window = min(remaining, STOP_CHECK_SECONDS)
                version = found["metadata"]["resourceVersion"]
                stream = self._watch_named(self.apps.list_namespaced_deployment, name, version, window, namespace)
                for event in stream:
                    if event["type"] != "DELETED" and diagnosis.rolled_out(self._json(event["object"])):
                        return RolloutOutcome(True)
                found = None  # read again, with its pods
        except _CLIENT_ERRORS as error:
            raise _error(f"watch deployment {namespace}/{name}", error) from error

    def wait_for_statefulset(
        self, namespace: str, name: str, timeout: float, should_stop: Callable[[], bool] | None = None
    ) -> bool:
        """Poll until the StatefulSet's current revision has a ready pod; False at the deadline."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if should_stop is not None and should_stop():
                    return False
                found = self.apps.read_namespaced_stateful_set(name, namespace, _request_timeout=self.timeout)
                status = found.status
                if (
                    status is not None
                    and (status.observed_generation or 0) >= (found.metadata.generation or 0)
                    and (status.ready_replicas or 0) >= 1
                    and status.current_revision == status.update_revision
                ):
                    return True
                time.sleep(1)
            return False
        except _CLIENT_ERRORS as error:
            raise _error(f"watch statefulset {namespace}/{name}", error) from error

    def _rollout_problem(self, namespace: str, deployment: dict[str, Any]) -> RolloutOutcome | None:
        selector = diagnosis.pod_selector(deployment)
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=self.timeout).items
        return diagnosis.rollout_problem(deployment, [self._json(pod) for pod in pods])

    def _json(self, obj: Any) -> dict[str, Any]:
        """An object as the API server wrote it (what app/domain/k8s/diagnosis.py reads)."""
        found: dict[str, Any] = self.api.sanitize_for_serialization(obj)
        return found


def _namespace_info(item: dict[str, Any]) -> NamespaceInfo:
    metadata = item.get("metadata") or {}
    created = metadata.get("creationTimestamp")
    return NamespaceInfo(
        name=metadata["name"],
        labels=dict(metadata.get("labels") or {}),
        created_at=_naive_utc(datetime.fromisoformat(created)) if created else None,
        terminating=metadata.get("deletionTimestamp") is not None,
    )


def _naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
