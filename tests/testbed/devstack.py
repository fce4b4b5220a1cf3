"""`make run`: the service with whatever it needs that the environment does not name.

- no REDIS_URL: a private Redis on a free loopback port;
- no KUBECONFIG and not inside a cluster: the real node (tests/node: kaniko
  really builds, containerd runs, Traefik serves the preview on a loopback port)
  when this machine can run it, else the local test control plane where KWOK
  plays the kubelet (builds and rollouts simulated); and then, with no
  DATABASE_URL, a fresh SQLite file: the cluster is new on every run;
- no GITEA_URL: a local Gitea with a demo repository whose webhook points here,
  and a task branch already pushed, so a preview appears at once;
- no GITEA_WEBHOOK_SECRET or API_TOKENS: random ones, printed.

Then the migrations, and the Procfile's web, worker, scheduler and mcp under honcho,
until Ctrl-C; everything started here is stopped on the way out.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.testbed import servers

ROOT = Path(__file__).resolve().parents[2]


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _exit_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt


def _say(text: str) -> None:
    print(text, flush=True)


def _local_gitea(stack: contextlib.ExitStack, env: dict[str, str], bind: str, node=None):  # -> Repo
    from tests.testbed.gitea_repo import create_repository
    from tests.testbed.gitea_server import ADMIN, BOT, gitea_server

    gitea = stack.enter_context(gitea_server())
    env["GITEA_URL"], env["GITEA_TOKEN"] = gitea.url, gitea.bot_token
    files = None
    if node is not None:
        from tests.testbed.node.service import prepare_builds, sample_app

        # The build pods clone from Gitea too: one address that they and the service reach.
        host, port = node.expose(gitea.port)
        env["GITEA_URL"] = f"http://{host}:{port}"
        prepare_builds(node, BOT, gitea.bot_token)
        files = sample_app(node.image("base"), "Hello from the demo repository")
    # A clone of a Gitea that goes with the run: it goes too.
    folder = tempfile.mkdtemp(prefix="preview-demo-")
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    workdir = Path(folder) / "demo"
    repo = create_repository(
        gitea,
        "demo",
        workdir,
        webhook_url=f"http://{bind}/webhooks/gitea",
        secret=env["GITEA_WEBHOOK_SECRET"],
        files=files,
    )
    _say(f"local Gitea at {gitea.url}  (user {ADMIN}, password {gitea.admin_password})")
    _say(f"demo repository {gitea.url}/{repo.full_name}, checked out in {workdir}")
    _say("  push a branch there and open a pull request, or push a task/* branch, and watch the")
    _say("  'preview' status appear on the commit; a task/welcome branch is pushed once the service is up")
    return repo


def _real_node(stack: contextlib.ExitStack, env: dict[str, str]):  # -> RealNode | None
    """The real node, when this machine can run it (root, the tools and images built, network
    and mount namespaces allowed); None, having said why, when it cannot. DEMO_CLUSTER=kwok
    asks for the simulated cluster."""
    if env.get("DEMO_CLUSTER") == "kwok":
        return None
    if os.geteuid() != 0:
        _say("the real node needs root (network and mount namespaces, cgroups): using KWOK, which only simulates")
        return None
    from tests.testbed.node.node import real_node
    from tests.testbed.node.service import service_env

    _say("starting the real node (kubelet, containerd, Traefik, a registry) and its control plane ...")
    try:
        node = stack.enter_context(real_node())
    except Exception as error:  # any reason at all: the demo still runs, simulated
        _say(f"the real node did not start ({type(error).__name__}: {error}): using KWOK, which only simulates")
        return None
    port = node.publish_on_loopback()
    # The Gitea address is set once Gitea runs (_local_gitea); the rest is the node's.
    env.update(service_env(node))
    # The demo shows what a reviewer gets: the pages' screenshots in the PR comment too.
    env.update({"PREVIEW_SCHEME": "http", "PREVIEW_PORT": str(port), "SCREENSHOT_IMAGE": node.image("screenshot")})
    _say(
        f"real node ready: previews are built by kaniko and served by Traefik at http://<name>.preview.localhost:{port}"
    )
    _say("  (browsers resolve *.localhost to this machine; the preview's password is in its Secret and the API)")
    return node


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    env = dict(os.environ)
    bind = env.setdefault("BIND", "127.0.0.1:8000")
    if "MCP_BIND" not in env:
        # honcho stops every process when one exits: never let a busy 8001 stop the service.
        env["MCP_BIND"] = f"127.0.0.1:{servers.free_port()}"
    _say(f"MCP server (streamable HTTP): http://{env['MCP_BIND']}/mcp")
    env.setdefault("PUBLIC_URL", f"http://{bind}")
    env.setdefault("METRICS_OPEN", "true")  # a demo on loopback
    with contextlib.ExitStack() as stack:
        if not env.get("REDIS_URL"):
            redis = stack.enter_context(servers.redis_server())
            env["REDIS_URL"] = redis.url
            _say(f"started Redis on 127.0.0.1:{redis.port} (with a password, in REDIS_URL)")
        node = None
        if not env.get("KUBECONFIG") and not _in_cluster():
            from tests.testbed.kube.controlplane import binary, control_plane

            node = _real_node(stack, env)
            if node is None:
                _say("starting the local Kubernetes control plane (KWOK plays the kubelet) ...")
                plane = stack.enter_context(control_plane())
                env["KUBECONFIG"] = str(plane.kubeconfig)
                env.setdefault("PREVIEW_REGISTRY", "registry.preview.local:5000")
                env.setdefault("REGISTRY_SHARED_FALLBACK", "true")  # a demo: one registry account for all
            _say(f"cluster ready: export KUBECONFIG={env['KUBECONFIG']}; kubectl is {binary('kubectl')}")
            if not env.get("DATABASE_URL"):
                # The cluster is new on every run, so is the database that describes it.
                folder = tempfile.mkdtemp(prefix="preview-db-")
                stack.callback(shutil.rmtree, folder, ignore_errors=True)  # it dies with its cluster
                env["DATABASE_URL"] = f"sqlite:///{folder}/preview.db"
                _say(f"DATABASE_URL was not set; this run uses {env['DATABASE_URL']}")
        if not env.get("GITEA_WEBHOOK_SECRET"):
            env["GITEA_WEBHOOK_SECRET"] = secrets.token_urlsafe(24)
            _say(f"GITEA_WEBHOOK_SECRET was not set; this run uses: {env['GITEA_WEBHOOK_SECRET']}")
        if not env.get("API_TOKENS"):
            env["API_TOKENS"] = secrets.token_urlsafe(24)
            _say(f"API_TOKENS was not set; use: Authorization: Bearer {env['API_TOKENS']}")
        demo = _local_gitea(stack, env, bind, node) if not env.get("GITEA_URL") else None

        # The Procfile's commands (gunicorn, python) are looked up on PATH: put this
        # virtualenv first, so they are found from a plain login shell too.
        bin_dir = Path(sys.executable).parent
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"
        subprocess.run([str(bin_dir / "flask"), "--app", "app", "migrate"], env=env, cwd=ROOT, check=True)
        _say(f"service at http://{bind}  (API under /api/, metrics at /metrics; Ctrl-C stops everything)")
        honcho = subprocess.Popen([str(bin_dir / "honcho"), "-f", "Procfile", "start"], env=env, cwd=ROOT)
        try:
            if demo is not None:
                servers.wait_for_port(int(bind.rsplit(":", 1)[1]), honcho, timeout=60)
                demo.commit("task/welcome", {"welcome.txt": "hello\n"}, "A first preview")
            return honcho.wait()
        except KeyboardInterrupt:
            # Ctrl-C: the service stops first, then what it used (the ExitStack); a normal end.
            honcho.terminate()
            honcho.wait()
            return 0


if __name__ == "__main__":
    sys.exit(main())
