"""The preview pipeline against the real test control plane (KWOK plays the kubelet)."""

import dataclasses
import threading
import uuid
from datetime import timedelta

import pytest
from kubernetes import client as k8s
from passlib.hash import apr_md5_crypt

from app.db import database
from app.domain.k8s import build as builds
from app.domain.k8s.isolation import Opening
from app.domain.k8s.labels import LABEL_PREVIEW_ID
from app.domain.naming import image_repository, registry_secret
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview, WebhookDelivery
from app.usecases.deploy import isolating, lease, namespaces, pipeline, policies, reporting, teardown
from app.usecases.deploy.runs import Run
from tests.testbed.factories import payload
from tests.testbed.helpers import (
    AUTH,
    TOKEN,
    configure_repository,
    deliver,
    kill_worker,
    run,
    run_worker,
    signal_worker,
    start_busy_worker,
    the_preview,
)
from tests.testbed.kube.controlplane import BEHAVIOUR_LABEL
from tests.testbed.kube.waiting import eventually, namespace_gone

pytestmark = pytest.mark.kube


@pytest.fixture
def database_url(postgres_server):
    """The pipeline runs on PostgreSQL here; the database layer itself is tested on both."""
    return postgres_server.create_database(f"pipeline_{uuid.uuid4().hex[:8]}")


SHA_B = "9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"


def test_pr_opened_becomes_a_ready_protected_preview(client, services, kube_api):
    """Accepted and available: every object the pipeline applies is taken by the API server, the
    app's Deployment becomes available at the built digest, and the password works. What each
    object holds is tests/test_k8s_objects.py's."""
    accepted = deliver(client, "pull_request_opened", "pull_request")
    assert run(services, accepted["delivery_id"]) == "ready"

    preview = the_preview()
    assert preview.state == PreviewState.READY
    assert preview.deployed_sha == preview.head_sha
    assert preview.namespace.startswith("preview-shop-pr-12-")
    assert preview.expires_at is not None
    assert preview.url == f"https://{preview.slug}.preview.localhost"

    core, apps, networking = k8s.CoreV1Api(kube_api), k8s.AppsV1Api(kube_api), k8s.NetworkingV1Api(kube_api)
    assert core.read_namespace(preview.namespace).metadata.labels[LABEL_PREVIEW_ID] == str(preview.id)
    for read, name in (
        (core.read_namespaced_resource_quota, "preview-quota"),
        (core.read_namespaced_limit_range, "preview-limits"),
        (networking.read_namespaced_network_policy, "preview-isolation"),
        (networking.read_namespaced_ingress, "shop-preview"),
        (core.read_namespaced_service, "shop-preview"),
    ):
        assert read(name, preview.namespace).metadata.labels[LABEL_PREVIEW_ID] == str(preview.id)
    # The quota is the API server's to enforce: its usage is counted.
    assert eventually(lambda: core.read_namespaced_resource_quota("preview-quota", preview.namespace).status.used)

    deployment = apps.read_namespaced_deployment("shop-preview", preview.namespace)
    image = deployment.spec.template.spec.containers[0].image
    assert image.startswith(f"{image_repository('registry.preview.test:5000', 'acme/shop')}@sha256:")
    assert deployment.status.available_replicas == 1

    auth = services.kube.read_secret_data(preview.namespace, "preview-basic-auth")
    user, hashed = auth["auth"].strip().split(":", 1)
    assert user == "preview"
    assert apr_md5_crypt.verify(auth["password"], hashed)
    assert not apr_md5_crypt.verify("wrong", hashed)

    with database.connection_context():
        [row] = Deployment.select()
        assert row.status == "ready"
        assert image.endswith(row.digest)
        assert set(row.timings) >= {"build", "deploy", "rollout", "report"}
        progress = [e.progress for e in Event.select().order_by(Event.id) if e.progress is not None]
        assert progress == [0, 20, 40, 60, 70, 90, 100]


def _secrets_of(container, volumes):
    """The Secrets a container can read: through its env and through its mounts."""
    from_env = {
        e.value_from.secret_key_ref.name for e in container.env or [] if e.value_from and e.value_from.secret_key_ref
    }
    from_env |= {source.secret_ref.name for source in container.env_from or [] if source.secret_ref}
    mounted = {m.name for m in container.volume_mounts or []}
    return from_env | {v.secret.secret_name for v in volumes if v.name in mounted and v.secret}


def test_the_container_that_runs_the_dockerfile_holds_no_git_credential(client, services, kube_api):
    """A fork's `RUN` step runs in the kaniko container: it must find nothing to read the repositories with."""
    build_namespace = services.settings.build_namespace
    core = k8s.CoreV1Api(kube_api)
    own = registry_secret("acme/shop")
    services.kube.apply(builds.build_namespace(policies.build(services.settings)))  # the operator's Secret lives there
    core.create_namespaced_secret(
        build_namespace,
        k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=own),
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": '{"auths": {}}'},
        ),
    )
    try:
        assert run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"]) == "ready"
    finally:
        core.delete_namespaced_secret(own, build_namespace)
    preview = the_preview()
    [job] = k8s.BatchV1Api(kube_api).list_namespaced_job(build_namespace).items
    pod = job.spec.template.spec
    [kaniko] = pod.containers
    [fetch] = pod.init_containers
    # The source is fetched by the init container, at the exact commit, into a volume kaniko builds.
    fetch_env = {e.name: e.value for e in fetch.env}
    assert fetch_env["SOURCE_SHA"] == preview.head_sha
    assert fetch_env["SOURCE_REF"] == "refs/pull/12/head"
    assert _secrets_of(fetch, pod.volumes) == {"git-credentials"}
    assert fetch.security_context.run_as_non_root
    assert not fetch.security_context.allow_privilege_escalation
    # kaniko: the source directory and this repository's own push credentials, nothing else.
    assert _secrets_of(kaniko, pod.volumes) == {own}
    assert not kaniko.env
    assert not kaniko.env_from
    assert not any("git" in arg.lower() for arg in kaniko.args)
    assert {m.mount_path for m in kaniko.volume_mounts} == {"/workspace", "/kaniko/.docker"}
    assert pod.automount_service_account_token is False
    assert pod.enable_service_links is False


def test_a_repository_without_its_own_registry_secret_pushes_with_the_shared_one(client, services, kube_api):
    assert run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"]) == "ready"
    [job] = k8s.BatchV1Api(kube_api).list_namespaced_job(services.settings.build_namespace).items
    pod = job.spec.template.spec
    assert _secrets_of(pod.containers[0], pod.volumes) == {"registry-credentials"}


def test_without_its_own_registry_secret_a_repository_is_not_built_unless_the_operator_shares_one(
    client, services, kube_api
):
    services.settings = services.settings.replace(registry_shared_fallback=False)
    assert run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"]) == "failed"
    assert not k8s.BatchV1Api(kube_api).list_namespaced_job(services.settings.build_namespace).items
    with database.connection_context():
        reason = Deployment.get().failure_reason
    assert "no registry credentials for acme/shop" in reason
    assert "REGISTRY_SHARED_FALLBACK" in reason


def test_the_api_hands_out_the_credentials_of_a_live_preview(client, app, services):

    services.settings = services.settings.replace(api_tokens=(TOKEN,))
    app.extensions["previews"].services = services
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    preview = the_preview()
    answer = client.get(f"/api/previews/{preview.id}/credentials", headers=AUTH)
    assert answer.status_code == 200
    stored = services.kube.read_secret_data(preview.namespace, "preview-basic-auth")
    assert answer.json == {"url": preview.url, "username": "preview", "password": stored["password"]}


def test_a_push_redeploys_at_the_same_url_with_the_same_password(client, services, kube_api):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    first = the_preview()
    password = services.kube.read_secret_data(first.namespace, "preview-basic-auth")["password"]

    sync = deliver(client, "pull_request_synchronized", "pull_request_sync")
    assert run(services, sync["delivery_id"]) == "ready"
    second = the_preview()
    assert (second.url, second.namespace, second.deployed_sha) == (first.url, first.namespace, SHA_B)
    assert services.kube.read_secret_data(second.namespace, "preview-basic-auth")["password"] == password
    with database.connection_context():
        digests = [d.digest for d in Deployment.select().order_by(Deployment.id)]
    assert len(set(digests)) == 2
    image = (
        k8s.AppsV1Api(kube_api)
        .read_namespaced_deployment("shop-preview", second.namespace)
        .spec.template.spec.containers[0]
        .image
    )
    assert image.endswith(digests[1])


def test_closing_the_pr_deletes_everything(client, services, kube_api):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    preview = the_preview()
    closed = deliver(client, "pull_request_closed_merged", "pull_request")
    assert run(services, closed["delivery_id"]) == "deleted"
    assert the_preview().state == PreviewState.DELETED
    eventually(lambda: namespace_gone(kube_api, preview.namespace), timeout=90, what="namespace deleted")
    jobs = (
        k8s.BatchV1Api(kube_api)
        .list_namespaced_job(services.settings.build_namespace, label_selector=f"{LABEL_PREVIEW_ID}={preview.id}")
        .items
    )
    assert all(job.metadata.deletion_timestamp for job in jobs)


def test_reopening_right_after_closing_brings_a_fresh_preview(client, services, kube_api):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    run(services, deliver(client, "pull_request_closed", "pull_request")["delivery_id"])
    core = k8s.CoreV1Api(kube_api)
    # No waiting: the old namespace may still be terminating, and the deploy waits for it to go.
    assert run(services, deliver(client, "pull_request_reopened", "pull_request")["delivery_id"]) == "ready"
    assert the_preview().state == PreviewState.READY
    assert core.read_namespace(the_preview().namespace).status.phase == "Active"


def test_a_failing_build_is_reported_with_its_reason(client, services):
    accepted = deliver(client, "pull_request_opened", "pull_request")
    configure_repository(build_pod_labels={BEHAVIOUR_LABEL: "fail"})
    assert run(services, accepted["delivery_id"]) == "failed"
    assert the_preview().state == PreviewState.FAILED
    with database.connection_context():
        row = Deployment.get()
        assert row.status == "failed"
        assert row.failure_reason.startswith("build: the build failed")
        assert Event.select().where(Event.message.startswith("failed: the build failed")).exists()

    # Asked again for the same commit (say the registry had been down), it builds again: a new Job,
    # not the old failed one.
    preview = the_preview()
    selector = f"{LABEL_PREVIEW_ID}={preview.id}"
    [first_job] = services.kube.list_jobs(services.settings.build_namespace, selector)
    with database.connection_context():
        Preview.change(preview.id, state=PreviewState.QUEUED)
        assert pipeline.deploy(services, preview.id, preview.head_sha) == "failed"
    [second_job] = services.kube.list_jobs(services.settings.build_namespace, selector)
    assert second_job.uid != first_job.uid


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("never-ready", "not available after 3 s"),
        ("crash-loop", "keeps crashing on start (exit code 1)"),
        ("oom", "more memory than its limit"),
        ("image-pull", "the image cannot be pulled"),
    ],
)
def test_a_rollout_that_does_not_become_ready_says_why(client, services, behaviour, reason):
    from datetime import timedelta

    services.settings = services.settings.replace(rollout_timeout=timedelta(seconds=3))
    accepted = deliver(client, "pull_request_opened", "pull_request")
    configure_repository(pod_labels={BEHAVIOUR_LABEL: behaviour})
    assert run(services, accepted["delivery_id"]) == "failed"
    with database.connection_context():
        row = Deployment.get()
    assert row.failure_reason.startswith("rollout: ")
    assert reason in row.failure_reason


def test_a_quota_that_rejects_the_pods_is_named(client, services):
    from datetime import timedelta

    services.settings = services.settings.replace(quota_requests_cpu="50m", rollout_timeout=timedelta(seconds=20))
    accepted = deliver(client, "pull_request_opened", "pull_request")
    assert run(services, accepted["delivery_id"]) == "failed"
    with database.connection_context():
        assert "the namespace quota rejects the pods" in Deployment.get().failure_reason


def test_a_newer_push_supersedes_a_build_still_running(client, services, app):
    accepted = deliver(client, "pull_request_opened", "pull_request")
    configure_repository(build_pod_labels={BEHAVIOUR_LABEL: "never-ready"})  # the build runs until told otherwise
    results = {}

    def first_deploy():
        results["first"] = run(services, accepted["delivery_id"])

    worker = threading.Thread(target=first_deploy)
    worker.start()
    preview_id = the_preview().id
    eventually(
        lambda: services.kube.list_jobs(services.settings.build_namespace, f"{LABEL_PREVIEW_ID}={preview_id}"),
        what="first build job",
    )

    configure_repository(build_pod_labels={})
    sync = deliver(client, "pull_request_synchronized", "pull_request_sync")
    # The first run holds the preview: the newer commit's job comes back later instead of racing it...
    assert run(services, sync["delivery_id"]) == "deferred"
    assert [job for job in services.queue.queue.scheduled_job_registry.get_job_ids() if "-deferred-" in job]
    # ...and the first run sees within seconds that its commit is no longer wanted, and lets go.
    worker.join(timeout=30)
    assert results["first"] == "superseded"
    with database.connection_context():
        assert pipeline.deploy(services, preview_id, SHA_B) == "ready"  # what the deferred job does
    preview = the_preview()
    assert (preview.state, preview.deployed_sha) == (PreviewState.READY, SHA_B)
    with database.connection_context():
        statuses = {d.head_sha: d.status for d in Deployment.select()}
        assert statuses == {payload("pull_request_opened")["pull_request"]["head"]["sha"]: "superseded", SHA_B: "ready"}
        assert WebhookDelivery.get_by_id(accepted["delivery_id"]).processed_at is not None


def test_a_redeploy_after_a_crash_creates_no_duplicates(client, services, kube_api):
    accepted = deliver(client, "pull_request_opened", "pull_request")
    assert run(services, accepted["delivery_id"]) == "ready"
    preview = the_preview()
    # As if the worker had died after applying everything but before recording it.
    with database.connection_context():
        Preview.change(preview.id, state=PreviewState.DEPLOYING)
    assert pipeline.deploy(services, preview.id, preview.head_sha) == "ready"
    apps = k8s.AppsV1Api(kube_api)
    assert len(apps.list_namespaced_deployment(preview.namespace).items) == 1
    assert len(apps.list_namespaced_replica_set(preview.namespace).items) == 1
    assert len(k8s.NetworkingV1Api(kube_api).list_namespaced_ingress(preview.namespace).items) == 1
    with database.connection_context():
        assert Deployment.select().count() == 1


@pytest.mark.gitea
def test_a_report_gitea_refused_stays_due_until_gitea_takes_it(client, services, gitea, tmp_path):
    from app.adapters.gitea import Gitea
    from app.db import utcnow
    from app.usecases.operations import lifecycle
    from tests.testbed.gitea_repo import create_repository
    from tests.testbed.gitea_server import BOT

    repo = create_repository(gitea, f"reports-{uuid.uuid4().hex[:6]}", tmp_path / "work")
    sha = repo.commit("task/reports", {"r.txt": "r"}, "r")
    writer = Gitea(gitea.url, gitea.bot_token)
    # A token that can read (so the head is confirmed) but not write statuses or comments.
    services.gitea = Gitea(gitea.url, gitea.token_for(BOT, "read:repository,read:issue,read:user"))
    pushed = {"repository.full_name": repo.full_name, "ref": "refs/heads/task/reports", "after": sha}
    accepted = deliver(client, "push_task_branch", "push", **pushed)
    assert run(services, accepted["delivery_id"]) == "ready"  # the deploy never fails on a report
    preview = the_preview()
    assert preview.state == PreviewState.READY
    assert preview.deployed_sha == sha
    assert preview.reported_version < preview.report_version
    assert preview.report_attempts >= 1
    assert repo.latest_status(sha) is None

    # Gitea takes reports again; the scheduler's next pass after the backoff has it told.
    services.gitea = writer
    with database.connection_context():
        assert lifecycle.run_pass(services, now=utcnow())["reported"] == []  # still backing off
    summary = lifecycle.run_pass(services, now=utcnow() + services.settings.report_retry_max)
    assert summary["reported"] == [preview.id]
    assert [j for j in services.queue.job_ids if j.startswith("report-")] == [
        f"report-{preview.id}-v{preview.report_version}-a{preview.report_attempts}"
    ]
    with database.connection_context():  # the job the scheduler queued, run here: the worker has no Gitea
        assert reporting.report_due(services, preview.id) == "reported"
    assert repo.latest_status(sha)["status"] == "success"
    caught_up = the_preview()
    assert caught_up.reported_version == caught_up.report_version
    assert caught_up.report_next_at is None
    # Told once: a report job run again sends nothing.
    with database.connection_context():
        assert reporting.report_due(services, preview.id) == "already reported"
    assert len([s for s in repo.statuses(sha) if s["status"] == "success"]) == 1


@pytest.mark.parametrize(
    ("name", "kind"),
    [("push_task_branch", "push"), ("pull_request_opened", "pull_request")],  # the commit; also whose code it is
)
def test_nothing_is_built_while_gitea_cannot_confirm_the_delivery(client, services, kube_api, name, kind):
    from app.adapters.gitea import Gitea, GiteaError
    from tests.testbed.servers import free_port

    services.gitea = Gitea(f"http://127.0.0.1:{free_port()}", "token", timeout=2)  # nothing listens there
    accepted = deliver(client, name, kind)
    with pytest.raises(GiteaError):  # the job fails, and the queue retries it later
        run(services, accepted["delivery_id"])
    assert the_preview().state == PreviewState.QUEUED
    assert not k8s.BatchV1Api(kube_api).list_namespaced_job(services.settings.build_namespace).items


def test_a_repository_that_names_an_image_skips_the_build(client, services, kube_api):
    image = "registry.example.test/acme/shop@sha256:" + "c" * 64
    accepted = deliver(client, "pull_request_opened", "pull_request")
    configure_repository(image=image)
    assert run(services, accepted["delivery_id"]) == "ready"
    preview = the_preview()
    assert services.kube.list_jobs(services.settings.build_namespace, f"{LABEL_PREVIEW_ID}={preview.id}") == []
    deployed = k8s.AppsV1Api(kube_api).read_namespaced_deployment("shop-preview", preview.namespace)
    assert deployed.spec.template.spec.containers[0].image == image


def test_a_worker_paused_past_its_lease_writes_nothing_when_it_wakes(client, services, kube_api):
    """SIGSTOP (a paused VM, a long GC): its lease lapses, another worker deploys the newer
    push; woken, the first one notices it no longer holds the preview and stops."""
    import signal
    import time

    services.settings = services.settings.replace(lease_ttl=timedelta(seconds=3))
    worker, preview_id = start_busy_worker(client, services)  # building SHA A, hanging
    try:
        signal_worker(worker, signal.SIGSTOP)
        time.sleep(4)  # past its lease, by the database's clock
        configure_repository(build_pod_labels={})
        sync = deliver(client, "pull_request_synchronized", "pull_request_sync")
        assert run(services, sync["delivery_id"]) == "ready"
        deployed = the_preview()
        apps = k8s.AppsV1Api(kube_api)
        before = apps.read_namespaced_deployment("shop-preview", deployed.namespace)

        signal_worker(worker, signal.SIGCONT)

        def old_run_stopped():
            with database.connection_context():
                return Deployment.get(Deployment.preview == preview_id, Deployment.head_sha != SHA_B).status

        assert eventually(lambda: old_run_stopped() == "superseded", timeout=60, what="the woken worker stopped")
    finally:
        kill_worker(worker)
    after = the_preview()
    assert (after.state, after.deployed_sha, after.head_sha) == (PreviewState.READY, SHA_B, SHA_B)
    assert after.lease_owner is None
    now = apps.read_namespaced_deployment("shop-preview", after.namespace)
    assert now.metadata.resource_version == before.metadata.resource_version  # not applied again
    with database.connection_context():
        assert not Event.select().where((Event.preview == preview_id) & Event.message.contains("failed")).exists()


def test_a_worker_killed_mid_deploy_and_started_again_ends_ready_without_duplicates(client, services, kube_api):

    from app.db import utcnow
    from app.usecases.operations import lifecycle

    settings = services.settings
    worker, preview_id = start_busy_worker(client, services)  # its build hangs until we intervene
    try:
        assert the_preview().state == PreviewState.BUILDING
    finally:
        kill_worker(worker)  # the worker and the work horse it forked, as a crash would

    configure_repository(build_pod_labels={})
    resumed = lifecycle.run_pass(services, now=utcnow() + timedelta(hours=1))["resumed"]
    assert resumed == [preview_id]
    run_worker(settings)
    preview = the_preview()
    assert preview.state == PreviewState.READY
    apps = k8s.AppsV1Api(kube_api)
    assert len(apps.list_namespaced_deployment(preview.namespace).items) == 1
    assert len(k8s.CoreV1Api(kube_api).list_namespace(label_selector=f"{LABEL_PREVIEW_ID}={preview.id}").items) == 1
    assert len(services.kube.list_jobs(settings.build_namespace, f"{LABEL_PREVIEW_ID}={preview.id}")) == 1
    with database.connection_context():
        assert Deployment.select().count() == 1
        assert Deployment.get().status == "ready"


def test_a_namespace_that_is_not_this_previews_is_never_written_or_deleted(client, services, kube_api):
    accepted = deliver(client, "pull_request_opened", "pull_request")
    preview = the_preview()
    with database.connection_context():
        names = namespaces.names_for(services.settings, Preview.get_by_id(preview.id))
    core = k8s.CoreV1Api(kube_api)
    # Another preview's namespace under this preview's name (say, from a crafted branch name).
    squatter = {"app.kubernetes.io/managed-by": "gitea-previews", LABEL_PREVIEW_ID: str(preview.id + 1000)}
    core.create_namespace({"metadata": {"name": names.namespace, "labels": squatter}})

    assert run(services, accepted["delivery_id"]) == "failed"
    with database.connection_context():
        assert "is not this preview's" in Deployment.get().failure_reason
    assert core.read_namespace(names.namespace).metadata.labels == {
        **squatter,
        "kubernetes.io/metadata.name": names.namespace,  # the API server's own
    }
    assert k8s.AppsV1Api(kube_api).list_namespaced_deployment(names.namespace).items == []
    assert core.list_namespaced_secret(names.namespace, label_selector=LABEL_PREVIEW_ID).items == []

    closed = deliver(client, "pull_request_closed", "pull_request")
    assert run(services, closed["delivery_id"]) == "deleted"
    assert core.read_namespace(names.namespace).status.phase == "Active"  # left alone
    assert the_preview().state == PreviewState.DELETED


FORK = {"pull_request.head.repo.full_name": "stranger/shop"}


def test_a_fork_pr_is_not_built_until_approved_and_then_only_at_that_commit(client, services, kube_api):
    # No Gitea here: the payload's fork flag is all there is to go on, and it is enough to hold back.
    delivery = deliver(client, "pull_request_opened", "pull_request", **FORK)
    assert run(services, delivery["delivery_id"]) == "pending approval"
    preview = the_preview()
    assert preview.state == PreviewState.PENDING_APPROVAL
    assert preview.from_fork
    assert preview.waiting_since is None
    assert not preview.holds_slot
    assert not k8s.BatchV1Api(kube_api).list_namespaced_job(services.settings.build_namespace).items
    # Nor a namespace: a fork's delivery gets none made ahead of the trust check.
    assert not k8s.CoreV1Api(kube_api).list_namespace(label_selector=f"{LABEL_PREVIEW_ID}={preview.id}").items
    with database.connection_context():
        hint = Event.get(Event.phase == "approval").message
        assert "it comes from a fork" in hint
        assert "approves this commit with the label preview:approved" in hint
        # A maintainer's approval of this commit (recorded as trust.approve does once Gitea confirms it).
        assert Preview.change(
            preview.id, sha=preview.head_sha, state=PreviewState.QUEUED, approved_sha=preview.head_sha
        )
        assert pipeline.deploy(services, preview.id, preview.head_sha) == "ready"
    # A stranger's build neither reads nor writes the layer cache that trusted builds use.
    [build] = k8s.BatchV1Api(kube_api).list_namespaced_job(services.settings.build_namespace).items
    kaniko_args = build.spec.template.spec.containers[0].args
    assert "--cache=false" in kaniko_args
    assert not any(arg.startswith("--cache-repo") for arg in kaniko_args)
    # The next push to the fork waits again.
    pushed = deliver(client, "pull_request_synchronized", "pull_request", **FORK, **{"pull_request.head.sha": SHA_B})
    assert run(services, pushed["delivery_id"]) == "pending approval"
    assert the_preview().state == PreviewState.PENDING_APPROVAL
    assert the_preview().deployed_sha == preview.head_sha


def test_a_namespace_made_ahead_gets_what_the_confirmed_configuration_changes(client, services, kube_api):
    """Made while Gitea is read, from the repository's defaults; the deploy then applies what
    its preview file changes (here the TTL, and a database port through the egress policy)."""
    deliver(client, "pull_request_opened", "pull_request")
    preview = the_preview()
    core, policies_api = k8s.CoreV1Api(kube_api), k8s.NetworkingV1Api(kube_api)
    with database.connection_context(), lease.hold(preview.id, timedelta(minutes=1)) as held:
        ahead = pipeline.isolate_ahead(services, held, preview.id, preview.head_sha, None, None)
        assert ahead is not None
        before = ahead.result()
        assert before is not None
        assert before.new  # no password to keep in it: the deploy need not look for one
        namespace = before.namespace
        assert core.read_namespace(namespace).metadata.annotations["ttl"] == "604800s"
        assert Preview.get_by_id(preview.id).namespace == namespace  # the orphan sweep knows it as this preview's
        spec = dataclasses.replace(ahead.spec, ttl=timedelta(hours=2), expires_at=ahead.made_at + timedelta(hours=2))
        opening = Opening(("192.0.2.10/32",), (5432,))
        check = Run(services, held, preview.id, preview.head_sha).check
        after = isolating.isolate(services, preview.id, spec, opening, check, before)
    assert core.read_namespace(namespace).metadata.annotations["ttl"] == "7200s"
    [policy] = policies_api.list_namespaced_network_policy(namespace).items
    assert any(port.port == 5432 for rule in policy.spec.egress for port in rule.ports or [])
    assert len(after.objects) == len(before.objects)
    assert after.new


@pytest.mark.parametrize(("policy", "result"), [("build", "ready"), ("never", "pending approval")])
def test_untrusted_prs_setting(client, app, services, policy, result):
    services.settings = services.settings.replace(untrusted_prs=policy)
    delivery = deliver(client, "pull_request_opened", "pull_request", **FORK)
    assert run(services, delivery["delivery_id"]) == result


@pytest.mark.gitea
def test_a_renamed_repository_keeps_its_preview_and_a_deleted_one_loses_it(app, client, services, gitea, tmp_path):
    """Repositories are known by Gitea's id: after a rename the next push updates the same
    preview (same names, same URL); once Gitea deletes the repository, its previews go, pinned or not."""
    from app.adapters.gitea import Gitea
    from app.db import utcnow
    from app.models import Repository
    from app.usecases.operations import lifecycle
    from tests.testbed.gitea_repo import create_repository

    services.gitea = app.extensions["previews"].services.gitea = Gitea(gitea.url, gitea.bot_token)
    repo = create_repository(gitea, f"named-{uuid.uuid4().hex[:6]}", tmp_path / "work")
    gitea_id = gitea.api("GET", f"/repos/{repo.full_name}")["id"]

    def push(sha):
        changes = {
            "repository.full_name": repo.full_name,
            "repository.id": gitea_id,
            "ref": "refs/heads/task/named",
            "after": sha,
        }
        return deliver(client, "push_task_branch", "push", **changes)

    first = push(repo.commit("task/named", {"a.txt": "1"}, "one"))
    assert run(services, first["delivery_id"]) == "ready"
    before = the_preview()
    lifecycle.run_pass(services)  # learns the repository's id from Gitea
    with database.connection_context():
        assert Repository.get().gitea_id == gitea_id
        Preview.update(pinned=True).execute()

    renamed = f"{repo.full_name}-renamed"
    gitea.api("PATCH", f"/repos/{repo.full_name}", json={"name": renamed.split("/")[1]})
    repo.full_name = renamed
    repo.git("remote", "set-url", "origin", gitea.git_url(renamed))
    second = push(sha := repo.commit("task/named", {"a.txt": "2"}, "two"))
    assert second["preview_id"] == before.id
    assert run(services, second["delivery_id"]) == "ready"
    after = the_preview()
    assert (after.deployed_sha, after.namespace, after.url) == (sha, before.namespace, before.url)
    assert after.target_key == f"{renamed}@task/named"
    with database.connection_context():
        assert Repository.get().full_name == renamed
        assert Repository.select().count() == 1

    gitea.api("DELETE", f"/repos/{renamed}")
    assert lifecycle.run_pass(services)["repositories_gone"] == []  # asked a moment ago: not yet
    later = utcnow() + lifecycle.REPOSITORY_CHECK_EVERY + timedelta(seconds=1)
    # Gitea's 404 could as well be access lost: the previews stay for REPOSITORY_GONE_AFTER, and say so.
    assert lifecycle.run_pass(services, now=later)["repositories_gone"] == []
    with database.connection_context():
        assert Repository.get().missing_since is not None
        [why] = Event.select().where((Event.preview == before.id) & (Event.phase == "drift"))
        assert f"Gitea answers 404 for {renamed}" in why.message
    past = later + services.settings.repository_gone_after + lifecycle.REPOSITORY_CHECK_EVERY
    assert lifecycle.run_pass(services, now=past)["repositories_gone"] == [before.id]
    with database.connection_context():
        assert teardown.teardown(services, before.id, "Gitea no longer shows the repository") == "deleted"
    gone = the_preview()
    assert gone.state == PreviewState.DELETED
    assert gone.reported_version == gone.report_version  # nothing left in Gitea to tell: not retried forever


@pytest.mark.gitea
def test_a_private_repository_the_bot_stops_seeing_for_a_while_keeps_its_previews(
    app, client, services, gitea, tmp_path
):
    """Gitea answers 404 for a private repository whose collaborators no longer include the
    bot, as for a deleted one: nothing is torn down before REPOSITORY_GONE_AFTER, and once the
    access is back the count starts again from nothing."""
    from app.adapters.gitea import Gitea
    from app.db import utcnow
    from app.models import Repository
    from app.usecases.operations import lifecycle
    from tests.testbed.gitea_repo import create_repository
    from tests.testbed.gitea_server import BOT

    services.gitea = app.extensions["previews"].services.gitea = Gitea(gitea.url, gitea.bot_token)
    repo = create_repository(gitea, f"private-{uuid.uuid4().hex[:6]}", tmp_path / "work")
    gitea.api("PATCH", f"/repos/{repo.full_name}", json={"private": True})
    changes = {
        "repository.full_name": repo.full_name,
        "repository.id": gitea.api("GET", f"/repos/{repo.full_name}")["id"],
    }
    sha = repo.commit("task/private", {"a.txt": "1"}, "one")
    pushed = deliver(client, "push_task_branch", "push", **changes, ref="refs/heads/task/private", after=sha)
    assert run(services, pushed["delivery_id"]) == "ready"
    preview = the_preview()
    lifecycle.run_pass(services)  # learns the repository's id from Gitea

    gitea.api("DELETE", f"/repos/{repo.full_name}/collaborators/{BOT}")
    step = lifecycle.REPOSITORY_CHECK_EVERY + timedelta(seconds=1)
    lost = utcnow() + step
    assert lifecycle.run_pass(services, now=lost)["repositories_gone"] == []
    with database.connection_context():
        assert Repository.get().missing_since is not None

    gitea.api("PUT", f"/repos/{repo.full_name}/collaborators/{BOT}", json={"permission": "write"})
    back = lost + step
    assert lifecycle.run_pass(services, now=back)["repositories_gone"] == []
    with database.connection_context():
        assert Repository.get().missing_since is None
        said = [e.message for e in Event.select().where((Event.preview == preview.id) & (Event.phase == "drift"))]
        assert len(said) == 2
        assert "Gitea answers 404" in said[0]
        assert "again: its previews stay" in said[1]
    # A day after the access was lost, but it came back: the preview stays.
    past = lost + services.settings.repository_gone_after + step
    assert lifecycle.run_pass(services, now=past)["repositories_gone"] == []
    assert the_preview().state == PreviewState.READY
    assert the_preview().id == preview.id


@pytest.mark.gitea
def test_gitea_answering_500_to_every_report_for_a_while_gets_one_comment_and_the_status(
    client, services, gitea, tmp_path
):
    """Gitea's status and comment endpoints answer 500 (after acting: the worst case) for a
    while: the reports are tried again with backoff and no deadline; once Gitea is well, it
    shows the final status once and a single comment."""
    import time

    from app.adapters.gitea import Gitea
    from app.usecases.operations import lifecycle
    from tests.testbed.faulty_proxy import faulty_proxy
    from tests.testbed.gitea_repo import create_repository

    outage = threading.Event()
    outage.set()

    def failing(method, path):
        return outage.is_set() and method in ("POST", "PATCH") and ("/statuses/" in path or "/comments" in path)

    repo = create_repository(gitea, f"outage-{uuid.uuid4().hex[:6]}", tmp_path / "work")
    sha = repo.commit("feature/outage", {"o.txt": "o"}, "o")
    number = repo.open_pr("feature/outage")
    services.settings = services.settings.replace(
        report_retry_min=timedelta(seconds=1), report_retry_max=timedelta(seconds=2)
    )
    changes = {
        "repository.full_name": repo.full_name,
        "number": number,
        "pull_request.number": number,
        "pull_request.head.sha": sha,
        "pull_request.head.ref": "feature/outage",
        "pull_request.base.ref": "main",
    }
    with faulty_proxy(gitea.url, failing) as proxied:
        services.gitea = Gitea(proxied, gitea.bot_token)
        accepted = deliver(client, "pull_request_opened", "pull_request", **changes)
        assert run(services, accepted["delivery_id"]) == "ready"
        preview_id = accepted["preview_id"]
        for _ in range(4):  # the outage goes on: every try fails, none is the last
            time.sleep(2.1)
            assert lifecycle.run_pass(services)["reported"] == [preview_id]
            with database.connection_context():
                assert reporting.report_due(services, preview_id) == "failed"
        assert the_preview().report_attempts >= 5

        outage.clear()
        time.sleep(2.1)
        assert lifecycle.run_pass(services)["reported"] == [preview_id]
        with database.connection_context():
            assert reporting.report_due(services, preview_id) == "reported"
    assert repo.latest_status(sha)["status"] == "success"
    [comment] = repo.bot_comments(number)  # created during the outage (answer lost), edited since
    assert "| State | ready |" in comment["body"]
    assert [s["status"] for s in repo.statuses(sha)].count("success") == 1  # stored once, not once per try
