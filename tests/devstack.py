"""`make run`: the service with whatever it needs that the environment does not name.

- no REDIS_URL: a private Redis on a free loopback port;
- no KUBECONFIG and not inside a cluster: the local test control plane;
- no GITEA_WEBHOOK_SECRET: a random one, printed so it can be pasted into Gitea.

Then the migrations, and the Procfile's web, worker and scheduler under honcho,
until Ctrl-C; everything started here is stopped on the way out.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from tests import servers

ROOT = Path(__file__).resolve().parent.parent


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _exit_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("REDIS_URL"):
            redis = stack.enter_context(servers.redis_server())
            env["REDIS_URL"] = redis.url
            print(f"started Redis at {redis.url}", flush=True)
        if not env.get("KUBECONFIG") and not _in_cluster():
            from tests.kube.controlplane import control_plane

            print("starting the local Kubernetes control plane ...", flush=True)
            plane = stack.enter_context(control_plane())
            env["KUBECONFIG"] = str(plane.kubeconfig)
            print(f"control plane ready: export KUBECONFIG={plane.kubeconfig}", flush=True)
        if not env.get("GITEA_WEBHOOK_SECRET"):
            env["GITEA_WEBHOOK_SECRET"] = secrets.token_urlsafe(24)
            print(f"GITEA_WEBHOOK_SECRET was not set; this run uses: {env['GITEA_WEBHOOK_SECRET']}", flush=True)
        bin_dir = Path(sys.executable).parent
        subprocess.run([str(bin_dir / "flask"), "--app", "app", "migrate"], env=env, cwd=ROOT, check=True)
        print(f"web at http://{env.get('BIND', '127.0.0.1:8000')}  (Ctrl-C stops everything)", flush=True)
        honcho = subprocess.Popen([str(bin_dir / "honcho"), "-f", "Procfile", "start"], env=env, cwd=ROOT)
        try:
            return honcho.wait()
        except KeyboardInterrupt:
            honcho.terminate()
            return honcho.wait()


if __name__ == "__main__":
    sys.exit(main())
