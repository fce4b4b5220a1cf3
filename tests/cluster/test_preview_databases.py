"""The preview file and per-preview databases, end to end through the pipeline: the file
committed in the real Gitea, objects applied on the real control plane (KWOK runs the
pods), databases on real PostgreSQL and MariaDB servers.

KWOK simulates the containers' processes, so what a migrate or seed command would write
into its database is written here, with the credentials from the Secret its Job reads:
the `play_processes` fixture does it right after the Job completes, before the pipeline
goes on (the same order the real process would give).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import psycopg2
import pymysql
import pytest
from kubernetes import client as k8s

from app.adapters.gitea import Gitea
from app.adapters.sql_admin import MysqlAdmin, PostgresAdmin, SqlAdminError, admins
from app.db import database, utcnow
from app.domain import databases
from app.domain.k8s import database as database_objects
from app.domain.k8s.labels import LABEL_PREVIEW_ID
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview
from app.usecases.deploy import pipeline, preview_database, teardown
from app.usecases.operations import previews, views
from tests.testbed.gitea_repo import create_repository
from tests.testbed.helpers import deliver, run, the_preview
from tests.testbed.servers import free_port

pytestmark = [pytest.mark.kube, pytest.mark.gitea]

IMAGE = "registry.example.test/acme/app@sha256:" + "d" * 64


@pytest.fixture
def database_url(postgres_server):
    return postgres_server.create_database(f"dbfile_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def repo(gitea, tmp_path):
    return create_repository(gitea, f"dbs-{uuid.uuid4().hex[:6]}", tmp_path / "work")


@pytest.fixture
def with_gitea(services, gitea):
    services.gitea = Gitea(gitea.url, gitea.bot_token)
    # Each test its own names on the shared servers: the orphan sweep of one never sees another's.
    services.settings = services.settings.replace(
        database_prefix=f"t{uuid.uuid4().hex[:6]}_", allowed_images=(IMAGE.split("/", 1)[0] + "/",)
    )
    return services


def sweep(services, now, dry_run=False):
    """The scheduler's database sweep with the shared servers the settings name."""
    return preview_database.collect_orphans(services.settings, admins(services.settings), now, dry_run)


def push(client, repo, branch, files, message="change"):
    sha = repo.commit(branch, files, message)
    changes = {"repository.full_name": repo.full_name, "ref": f"refs/heads/{branch}", "after": sha}
    return sha, deliver(client, "push_task_branch", "push", **changes)["delivery_id"]


def open_pr(client, repo, branch, files):
    sha = repo.commit(branch, files, "change")
    number = repo.open_pr(branch)
    changes = {
        "repository.full_name": repo.full_name,
        "number": number,
        "pull_request.number": number,
        "pull_request.head.sha": sha,
        "pull_request.head.ref": branch,
        "pull_request.base.ref": "main",
        "pull_request.html_url": f"{repo.gitea.url}/{repo.full_name}/pulls/{number}",
    }
    return sha, deliver(client, "pull_request_opened", "pull_request", **changes)["delivery_id"]


def preview_file(built: bool = False, **database) -> dict[str, str]:
    lines = ([] if built else [f"image: {IMAGE}"]) + ["port: 3000", "database:"]
    lines += [f"  {key}: {value}" for key, value in database.items()]
    return {".gitea/preview.yml": "\n".join(lines) + "\n"}


def app_deployment(kube_api, preview):
    name = preview.repository.full_name.split("/")[1] + "-preview"
    return k8s.AppsV1Api(kube_api).read_namespaced_deployment(name, preview.namespace)


def container(kube_api, preview):
    return app_deployment(kube_api, preview).spec.template.spec.containers[0]


def jobs_in(kube_api, namespace):
    return {j.metadata.name: j for j in k8s.BatchV1Api(kube_api).list_namespaced_job(namespace).items}


def secret_env(services, namespace, name=database_objects.SECRET):
    return services.kube.read_secret_data(namespace, name)


@pytest.fixture
def play_processes(monkeypatch, services):
    """After each migrate or seed Job completes, do what its process would have: the seed inserts
    rows (named by its env's SEED_NAME, as a seed script reads its inputs), the migrate creates the
    table (IF NOT EXISTS, as migration tools skip what is done)."""
    real = pipeline._run_job
    played: list[tuple[str, str]] = []

    def run_job(run, namespace, job, phase):
        real(run, namespace, job, phase)
        process = job["spec"]["template"]["spec"]["containers"][0]
        url = secret_env(services, namespace, process["envFrom"][0]["secretRef"]["name"])["DATABASE_URL"]
        played.append((phase, urlsplit(url).path.lstrip("/")))
        seed_name = {e["name"]: e.get("value") for e in process["env"]}.get("SEED_NAME", "seeded")
        assert seed_name.isalnum()
        statement = {
            "migrate": "CREATE TABLE IF NOT EXISTS products (id INT PRIMARY KEY, name TEXT)",
            "seed": f"INSERT INTO products VALUES (1, '{seed_name}'), (2, '{seed_name}')",
        }[phase.removeprefix("template-")]
        execute(url, statement)

    monkeypatch.setattr(pipeline, "_run_job", run_job)
    return played


def execute(url: str, statement: str) -> list[tuple]:
    parts = urlsplit(url)
    if parts.scheme == "postgresql":
        with psycopg2.connect(url) as conn, conn.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else []
    conn = pymysql.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        database=parts.path.lstrip("/"),
        autocommit=True,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
            return list(cursor.fetchall())
    finally:
        conn.close()


# --- the preview file ---------------------------------------------------------------


def test_the_file_at_the_head_commit_drives_the_preview(client, with_gitea, repo, kube_api):
    services = with_gitea
    first = (
        "build:\n  dockerfile: Dockerfile.preview\n  target: runtime\nport: 3000\nhealth_path: /healthz\n"
        # Room in the quota for two replicas, a third while rolling out, and redis.
        "env:\n  GREETING: hello\nreplicas: 2\nresources:\n  requests: {cpu: 100m}\n  limits: {cpu: 150m}\n"
        "services:\n  - {name: redis, image: 'redis:7', port: 6379}\n"
    )
    _, delivery = push(client, repo, "task/file", {".gitea/preview.yml": first})
    assert run(services, delivery) == "ready"
    preview = the_preview()
    app = container(kube_api, preview)
    assert app.ports[0].container_port == 3000
    assert app.readiness_probe.http_get.path == "/healthz"
    assert {e.name: e.value for e in app.env}["GREETING"] == "hello"
    build = jobs_in(kube_api, services.settings.build_namespace)
    kaniko_args = next(iter(build.values())).spec.template.spec.containers[0].args
    assert "--dockerfile=/workspace/Dockerfile.preview" in kaniko_args
    assert "--target=runtime" in kaniko_args
    deployed = app_deployment(kube_api, preview)
    assert deployed.spec.replicas == 2
    assert app.resources.limits["cpu"] == "150m"
    redis = k8s.AppsV1Api(kube_api).read_namespaced_deployment("redis", preview.namespace)
    assert redis.spec.template.spec.containers[0].image == "redis:7"
    assert k8s.CoreV1Api(kube_api).read_namespaced_service("redis", preview.namespace).spec.ports[0].port == 6379

    # A push that changes the file changes the preview.
    sha2, delivery = push(client, repo, "task/file", {".gitea/preview.yml": first.replace("3000", "4000")})
    assert run(services, delivery) == "ready"
    assert container(kube_api, preview).ports[0].container_port == 4000

    # An invalid file fails the preview with field and line, and nothing is applied.
    sha3, delivery = push(client, repo, "task/file", {".gitea/preview.yml": "port: 4000\nreplicas: lots\n"})
    assert run(services, delivery) == "failed"
    status = repo.latest_status(sha3)
    assert status["status"] == "failure"
    assert ".gitea/preview.yml line 2: replicas: must be a whole number" in status["description"]
    deployed = app_deployment(kube_api, preview)
    assert deployed.spec.template.metadata.annotations["previews.gitea.io/head-sha"] == sha2
    assert not any(sha3[:12] in name for name in jobs_in(kube_api, services.settings.build_namespace))
    with database.connection_context():
        assert "replicas" in Deployment.get(Deployment.head_sha == sha3).failure_reason


def test_a_file_may_name_an_image_only_under_the_operators_prefixes(client, with_gitea, repo, kube_api):
    """Its migrate and seed would run in that image with the database's password."""
    _, delivery = push(client, repo, "task/image", {".gitea/preview.yml": "image: docker.io/someone/tool:1\n"})
    assert run(with_gitea, delivery) == "failed"
    with database.connection_context():
        reason = Deployment.get().failure_reason
    assert "docker.io/someone/tool:1 is not under the allowed prefixes (registry.example.test/)" in reason


def test_a_file_that_turns_branch_previews_off_removes_the_preview(client, with_gitea, repo, kube_api):
    services = with_gitea
    _, delivery = push(client, repo, "task/off", {".gitea/preview.yml": f"image: {IMAGE}\n"})
    assert run(services, delivery) == "ready"
    namespace = the_preview().namespace
    _, delivery = push(client, repo, "task/off", {".gitea/preview.yml": "previews:\n  branches: [demo/*]\n"})
    assert run(services, delivery) == "deleted"
    assert the_preview().state == PreviewState.DELETED
    assert k8s.CoreV1Api(kube_api).read_namespace(namespace).status.phase == "Terminating"


# --- databases on shared servers --------------------------------------------------------


@pytest.fixture(params=["postgres", "mysql"])
def shared(request, with_gitea, postgres_server):
    """The operator's shared server of each engine, with the admin URL the service is given."""
    services = with_gitea
    if request.param == "postgres":
        services.settings = services.settings.replace(postgres_admin_url=postgres_server.url())
        admin = PostgresAdmin(postgres_server.url())
    else:
        server = request.getfixturevalue("mariadb_server")
        services.settings = services.settings.replace(mysql_admin_url=server.admin_url)
        admin = MysqlAdmin(server.admin_url)
    return request.param, admin


def test_a_mysql_preview_user_reaches_its_own_database_and_no_lookalike(with_gitea, mariadb_server):
    """In a MySQL GRANT `_` matches any character: `t1_7`'s user must not get into `t1X7`."""
    admin = MysqlAdmin(mariadb_server.admin_url)
    name = f"{with_gitea.settings.database_prefix}7"
    lookalike = name[: name.rindex("_")] + "X7"  # not of our names' shape: no sweep touches it
    password = preview_database.new_password()
    admin.ensure(name, password)
    execute(mariadb_server.admin_url.rsplit("/", 1)[0] + "/mysql", f"CREATE DATABASE `{lookalike}`")
    try:
        own = admin.connection(name, password).url()
        assert execute(own, "SELECT 1") == [(1,)]
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            execute(own.rsplit("/", 1)[0] + f"/{lookalike}", "SELECT 1")
    finally:
        admin.drop(name)
        execute(mariadb_server.admin_url.rsplit("/", 1)[0] + "/mysql", f"DROP DATABASE `{lookalike}`")


def test_a_shared_server_gives_each_preview_its_database_and_drops_it_at_teardown(
    client, with_gitea, shared, repo, kube_api, play_processes
):
    services, (engine, admin) = with_gitea, shared
    files = preview_file(engine=engine, migrate="'npm run migrate'", seed="[node, seed.js]")
    sha1, delivery = push(client, repo, "task/db", files)
    assert run(services, delivery) == "ready"
    preview = the_preview()
    name = databases.database_name(services.settings.database_prefix, preview.id)
    assert (preview.database_engine, preview.database_mode, preview.database_name) == (engine, "shared", name)
    assert name in admin.names(services.settings.database_prefix)

    # The app reads the URL from the Secret, never from plain env; the URL works.
    app = container(kube_api, preview)
    assert [source.secret_ref.name for source in app.env_from] == [database_objects.SECRET]
    assert not any(e.name == "DATABASE_URL" or "PASSWORD" in e.name for e in app.env)
    env = secret_env(services, preview.namespace)
    assert execute(env["DATABASE_URL"], "SELECT name FROM products ORDER BY id") == [("seeded",), ("seeded",)]
    assert (
        {"PGHOST", "PGPASSWORD"} <= set(env) if engine == "postgres" else {"MYSQL_HOST", "MYSQL_PASSWORD"} <= set(env)
    )

    # Migrate, then seed: Jobs with the app's image and the file's commands.
    jobs = jobs_in(kube_api, preview.namespace)
    migrate, seed = jobs[f"migrate-{sha1[:12]}"], jobs[f"seed-{sha1[:12]}"]
    assert migrate.spec.template.spec.containers[0].image == IMAGE
    assert migrate.spec.template.spec.containers[0].command == ["/bin/sh", "-c", "npm run migrate"]
    assert seed.spec.template.spec.containers[0].command == ["node", "seed.js"]
    assert migrate.metadata.creation_timestamp <= seed.metadata.creation_timestamp
    assert [phase for phase, _ in play_processes] == ["migrate", "seed"]

    # The API shows the database, not its password.
    with database.connection_context():
        shown = views.details(Preview.get_by_id(preview.id))["database"]
    assert shown["engine"] == engine
    assert shown["mode"] == "shared"
    assert shown["name"] == name
    assert shown["size_bytes"]
    assert env["DATABASE_URL"] not in str(shown)

    # Another push migrates again and seeds nothing: the seed ran once.
    sha2, delivery = push(client, repo, "task/db", {"more.txt": "x"})
    assert run(services, delivery) == "ready"
    jobs = jobs_in(kube_api, preview.namespace)
    assert f"migrate-{sha2[:12]}" in jobs
    assert f"seed-{sha2[:12]}" not in jobs
    assert secret_env(services, preview.namespace)["DATABASE_URL"] == env["DATABASE_URL"]  # same password

    with database.connection_context():
        previews.delete_preview(services.queue, Preview.get_by_id(preview.id))
        assert teardown.teardown(services, preview.id) == "deleted"
    assert name not in admin.names(services.settings.database_prefix)  # database and role
    with database.connection_context():
        assert Preview.get_by_id(preview.id).database_name is None


def test_a_push_during_a_teardown_gets_a_new_seeded_database(
    client, with_gitea, shared, repo, kube_api, play_processes, monkeypatch
):
    """The push lands right after the teardown dropped the database: the teardown stops before
    its next destructive step, and the drop is on record, so the next deploy seeds again."""
    services, (engine, admin) = with_gitea, shared
    files = preview_file(engine=engine, migrate="[migrate]", seed="[seed]")
    _, delivery = push(client, repo, "task/again", files)
    assert run(services, delivery) == "ready"
    preview = the_preview()
    pushed_meanwhile = []
    real_release = preview_database.release

    def release_then_push(servers, dropping):
        real_release(servers, dropping)
        pushed_meanwhile.append(push(client, repo, "task/again", {"later.txt": "x"}))

    monkeypatch.setattr(preview_database, "release", release_then_push)
    with database.connection_context():
        previews.delete_preview(services.queue, Preview.get_by_id(preview.id))
        assert teardown.teardown(services, preview.id) == "superseded"
    kept = the_preview()
    assert kept.state == PreviewState.QUEUED
    assert kept.database_name is None
    assert kept.database_seeded_at is None
    assert services.kube.namespace_labels(preview.namespace) is not None  # stopped before the namespace
    assert preview.database_name not in admin.names(services.settings.database_prefix)  # what it did drop

    play_processes.clear()
    [(sha, delivery)] = pushed_meanwhile
    assert run(services, delivery) == "ready"
    again = the_preview()
    assert again.deployed_sha == sha
    assert again.database_seeded_at is not None
    assert [phase for phase, _ in play_processes] == ["migrate", "seed"]
    url = secret_env(services, again.namespace)["DATABASE_URL"]
    assert execute(url, "SELECT name FROM products ORDER BY id") == [("seeded",), ("seeded",)]


def test_the_orphan_sweep_drops_only_databases_no_live_preview_owns(client, with_gitea, shared, repo, play_processes):
    services, (engine, admin) = with_gitea, shared
    prefix = services.settings.database_prefix
    _, delivery = push(client, repo, "task/live", preview_file(engine=engine))
    assert run(services, delivery) == "ready"
    live = databases.database_name(prefix, the_preview().id)
    orphan = databases.database_name(prefix, 987654)
    admin.ensure(orphan, "orphan-password")
    admin.ensure("someone_else_db", "other-password")
    try:
        with database.connection_context():
            assert sweep(services, utcnow(), dry_run=True) == [orphan]
            assert orphan in admin.names(prefix)
            assert sweep(services, utcnow()) == [orphan]
        assert admin.names(prefix) == {live}
        assert "someone_else_db" in admin.names("someone_")
    finally:
        admin.drop("someone_else_db")


def test_an_unreachable_admin_connection_deletes_nothing(client, with_gitea, repo, kube_api, postgres_server):
    services = with_gitea
    services.settings = services.settings.replace(postgres_admin_url=postgres_server.url())
    admin = PostgresAdmin(postgres_server.url())
    _, delivery = push(client, repo, "task/down", preview_file(engine="postgres"))
    assert run(services, delivery) == "ready"
    preview = the_preview()
    services.settings = services.settings.replace(postgres_admin_url=f"postgresql://x@127.0.0.1:{free_port()}/x")
    with database.connection_context():
        with pytest.raises(SqlAdminError):
            sweep(services, utcnow())
        previews.delete_preview(services.queue, Preview.get_by_id(preview.id))
        with pytest.raises(SqlAdminError):
            teardown.teardown(services, preview.id)
        assert Preview.get_by_id(preview.id).state == PreviewState.DELETING  # retried later
    assert k8s.CoreV1Api(kube_api).read_namespace(preview.namespace).status.phase == "Active"
    assert preview.database_name in admin.names(services.settings.database_prefix)
    services.settings = services.settings.replace(postgres_admin_url=postgres_server.url())
    with database.connection_context():
        assert teardown.teardown(services, preview.id) == "deleted"
    assert preview.database_name not in admin.names(services.settings.database_prefix)


# --- migrate failures ---------------------------------------------------------------------


def test_a_failing_migrate_keeps_the_previous_version_and_says_why(client, with_gitea, repo, kube_api, postgres_server):
    services = with_gitea
    services.settings = services.settings.replace(postgres_admin_url=postgres_server.url())
    sha1, delivery = push(client, repo, "task/mig", preview_file(engine="postgres", migrate="[true]"))
    assert run(services, delivery) == "ready"
    broken = preview_file(engine="postgres", migrate="[testbed-fail, 'relation users already exists']")
    sha2, delivery = push(client, repo, "task/mig", broken)
    assert run(services, delivery) == "failed"
    preview = the_preview()
    deployed = app_deployment(kube_api, preview)
    assert deployed.spec.template.metadata.annotations["previews.gitea.io/head-sha"] == sha1
    assert preview.deployed_sha == sha1
    status = repo.latest_status(sha2)
    assert status["status"] == "failure"
    assert "the migrate command failed: testbed-fail relation users already exists failed" in status["description"]
    with database.connection_context():
        failed = Deployment.get(Deployment.head_sha == sha2)
        assert failed.failure_reason.startswith("migrate: ")
        assert "relation users" in failed.build_log_tail


# --- template clones ------------------------------------------------------------------------


def test_a_pr_database_is_a_clone_of_its_base_commits_seeded_template(
    client, with_gitea, repo, kube_api, postgres_server, play_processes
):
    services = with_gitea
    services.settings = services.settings.replace(postgres_admin_url=postgres_server.url())
    prefix = services.settings.database_prefix
    admin = PostgresAdmin(postgres_server.url())
    file = preview_file(built=True, engine="postgres", migrate="[migrate]", seed="[seed]")
    base = repo.commit("main", file, "the preview file on main")

    # The PR asks for other commands: they are its own migrate's, never the shared template's.
    pr_file = preview_file(built=True, engine="postgres", migrate="[pr-migrate]", seed="[pr-seed]")
    _, delivery = open_pr(client, repo, "feature/one", {"one.txt": "1", **pr_file})
    assert run(services, delivery) == "ready"
    first = the_preview()
    template = databases.template_name(prefix, repo.full_name, base)
    assert first.database_template == template
    assert first.database_seeded_at is not None
    assert admin.is_ready_template(template)
    # The template was migrated and seeded once, with the base commit's image; the PR only migrated.
    assert [phase for phase, _ in play_processes] == ["template-migrate", "template-seed", "migrate"]
    builds = jobs_in(kube_api, services.settings.build_namespace)
    base_build = next(job for name, job in builds.items() if name.endswith(base[:12]))
    fetch_env = {e.name: e.value for e in base_build.spec.template.spec.init_containers[0].env}
    assert (fetch_env["SOURCE_SHA"], fetch_env["SOURCE_REF"]) == (base, "refs/heads/main")
    template_jobs = jobs_in(kube_api, first.namespace)
    commands = {
        name.rsplit("-", 1)[0]: job.spec.template.spec.containers[0].command for name, job in template_jobs.items()
    }
    assert commands == {"template-migrate": ["migrate"], "template-seed": ["seed"], "migrate": ["pr-migrate"]}
    base_image = template_jobs[f"template-seed-{base[:12]}"].spec.template.spec.containers[0].image
    assert "@sha256:" in base_image
    assert container(kube_api, first).image != base_image
    url = secret_env(services, first.namespace)["DATABASE_URL"]
    assert execute(url, "SELECT count(*) FROM products") == [(2,)]
    # The clone belongs to the preview's role alone.
    assert execute(url, "SELECT tableowner FROM pg_tables WHERE tablename = 'products'") == [(first.database_name,)]

    # A second PR of the same base is cloned, not seeded again.
    play_processes.clear()
    _, delivery = open_pr(client, repo, "feature/two", {"two.txt": "2"})
    assert run(services, delivery) == "ready"
    with database.connection_context():
        second = Preview.select().where(Preview.id != first.id).get()
        assert Event.select().where((Event.preview == second) & Event.message.startswith("cloning")).exists()
        assert not Event.select().where((Event.preview == second) & Event.message.startswith("making")).exists()
    assert second.database_template == template
    assert [phase for phase, _ in play_processes] == ["migrate"]
    assert execute(secret_env(services, second.namespace)["DATABASE_URL"], "SELECT count(*) FROM products") == [(2,)]

    # Templates go when no live preview was cloned from them.
    with database.connection_context():
        for preview in Preview.select():
            previews.delete_preview(services.queue, preview)
            assert teardown.teardown(services, preview.id) == "deleted"
        assert sweep(services, utcnow()) == [template]
    assert admin.names(prefix) == set()


def test_a_clone_interrupted_before_it_was_recorded_is_made_again_not_seeded_on_top(
    client, with_gitea, repo, kube_api, postgres_server, play_processes
):
    services = with_gitea
    services.settings = services.settings.replace(postgres_admin_url=postgres_server.url())
    file = preview_file(built=True, engine="postgres", migrate="[migrate]", seed="[seed]")
    repo.commit("main", file, "the preview file on main")
    _, delivery = open_pr(client, repo, "feature/crash", {"c.txt": "1"})
    assert run(services, delivery) == "ready"
    cloned = the_preview()
    with database.connection_context():
        # The worker died after the copy and before recording it done (and the rows are there).
        Preview.change(cloned.id, state=PreviewState.DEPLOYING, database_seeded_at=None)
    play_processes.clear()
    with database.connection_context():
        assert pipeline.deploy(services, cloned.id, cloned.head_sha) == "ready"
    again = the_preview()
    assert again.database_template == cloned.database_template
    assert again.database_seeded_at is not None
    assert "seed" not in [phase for phase, _ in play_processes]
    url = secret_env(services, again.namespace)["DATABASE_URL"]
    assert execute(url, "SELECT count(*) FROM products") == [(2,)]  # the template's rows, once


def test_a_prs_env_never_reaches_the_template_every_later_clone_copies(
    client, with_gitea, repo, kube_api, postgres_server, play_processes
):
    services = with_gitea
    services.settings = services.settings.replace(postgres_admin_url=postgres_server.url())
    admin_url = postgres_server.url()
    base_file = preview_file(built=True, engine="postgres", migrate="[migrate]", seed="[seed]")
    base_file[".gitea/preview.yml"] += "env:\n  SEED_NAME: fromthebase\n"
    base = repo.commit("main", base_file, "the preview file on main")

    # The first PR, which makes the template, sets the seed's input to its own value.
    pr_file = {".gitea/preview.yml": base_file[".gitea/preview.yml"].replace("fromthebase", "poisoned")}
    _, delivery = open_pr(client, repo, "feature/poison", pr_file)
    assert run(services, delivery) == "ready"
    first = the_preview()
    template = databases.template_name(services.settings.database_prefix, repo.full_name, base)
    assert first.database_template == template
    seeded = execute(secret_env(services, first.namespace)["DATABASE_URL"], "SELECT DISTINCT name FROM products")
    assert seeded == [("fromthebase",)]
    # Frozen: the admin owns it, its role cannot log in, and its Secret is gone from the namespace.
    owner, can_login = execute(
        admin_url,
        "SELECT pg_get_userbyid(d.datdba), r.rolcanlogin FROM pg_database d, pg_roles r"
        f" WHERE d.datname = '{template}' AND r.rolname = '{template}'",
    )[0]
    assert owner != template
    assert can_login is False
    assert secret_env(services, first.namespace, preview_database.TEMPLATE_SECRET) is None

    # A second PR's clone has the base's data, not the first PR's.
    _, delivery = open_pr(client, repo, "feature/innocent", {"innocent.txt": "1"})
    assert run(services, delivery) == "ready"
    with database.connection_context():
        second = Preview.select().where(Preview.id != first.id).get()
    assert second.database_template == template
    cloned = execute(secret_env(services, second.namespace)["DATABASE_URL"], "SELECT DISTINCT name FROM products")
    assert cloned == [("fromthebase",)]


# --- a server in the namespace -----------------------------------------------------------------


def test_without_an_admin_url_the_database_runs_in_the_namespace(client, with_gitea, repo, kube_api):
    services = with_gitea
    storage_class = f"test-{uuid.uuid4().hex[:6]}"
    # The quota the service had before the real node showed it short: app + database + migrate
    # Job are 1.5 CPUs of limits at the defaults.
    services.settings = services.settings.replace(database_storage_class=storage_class, quota_limits_cpu="1")
    core = k8s.CoreV1Api(kube_api)
    # What a provisioner would do: a volume of the class the claim asks for.
    core.create_persistent_volume(
        {
            "metadata": {"name": storage_class},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": storage_class,
                "hostPath": {"path": f"/tmp/{storage_class}"},
            },
        }
    )
    try:
        files = preview_file(engine="postgres", version="16", migrate="[migrate]")
        sha, delivery = push(client, repo, "task/inns", files)
        assert run(services, delivery) == "ready"
        preview = the_preview()
        assert preview.database_mode == "in-namespace"
        server = k8s.AppsV1Api(kube_api).read_namespaced_stateful_set(database_objects.SERVER, preview.namespace)
        assert server.spec.template.spec.containers[0].image == "postgres:16"
        password_from = server.spec.template.spec.containers[0].env[2].value_from.secret_key_ref
        assert (password_from.name, password_from.key) == (database_objects.SECRET, "PGPASSWORD")
        claim = server.spec.volume_claim_templates[0]
        assert claim.spec.storage_class_name == storage_class
        assert core.read_namespaced_service(database_objects.SERVER, preview.namespace).spec.ports[0].port == 5432
        env = secret_env(services, preview.namespace)
        assert env["DATABASE_URL"] == f"postgresql://app:{env['PGPASSWORD']}@database:5432/app"
        labels = server.metadata.labels
        assert labels[LABEL_PREVIEW_ID] == str(preview.id)

        # A second push: beside the running app and database the migrate Job's pod does not fit.
        # It fails at once, saying so, and its Job is not left to run later.
        sha2, delivery = push(client, repo, "task/inns", {"more.txt": "1"})
        assert run(services, delivery) == "failed"
        with database.connection_context():
            reason = Deployment.select().order_by(Deployment.id.desc()).get().failure_reason
        assert "the namespace quota refuses the migrate Job's pod" in reason
        assert "limits.cpu" in reason
        jobs = [j.metadata.name for j in k8s.BatchV1Api(kube_api).list_namespaced_job(preview.namespace).items]
        assert f"migrate-{sha[:12]}" in jobs
        assert f"migrate-{sha2[:12]}" not in jobs
    finally:
        core.delete_persistent_volume(storage_class)
