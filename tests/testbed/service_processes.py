"""Run the service the way production does: the Procfile's processes, as separate processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.testbed.servers import die_with_parent, free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


class SecretEnv(dict):
    """The processes' environment (tokens, passwords in URLs), never shown in a failing test's output."""

    def __repr__(self) -> str:
        return f"<environment: {len(self)} variables>"


def procfile() -> dict[str, str]:
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            commands[name.strip()] = command.strip()
    return commands


def flask_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`flask --app app ARGS` as the operator runs it, against the service whose settings are
    `env` (its output captured; the caller checks the return code)."""
    environment = {**os.environ, **env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextlib.contextmanager
def service_processes(
    env: dict[str, str],
    folder: Path,
    port: int,
    workers: int = 1,
    web_only: bool = False,
    with_mcp: bool = False,
) -> Iterator[dict[str, subprocess.Popen]]:
    """Apply migrations, start web, `workers` workers and the scheduler with `env` (or, with
    `web_only`, the web alone; the MCP process only `with_mcp`); stop them on exit.

    Processes are named as in the Procfile (a second worker is `worker.2`). Logs go to `folder`.
    """
    env = {**env, "BIND": f"127.0.0.1:{port}", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.setdefault("MCP_BIND", f"127.0.0.1:{free_port()}")  # the MCP process: never a fixed port
    migrated = flask_command(env, "migrate")
    if migrated.returncode:
        raise RuntimeError(f"flask migrate failed: {migrated.stderr[-2000:]}")
    processes: dict[str, subprocess.Popen] = {}
    try:
        commands = procfile()
        if web_only:
            commands = {"web": commands["web"]}
        elif not with_mcp:
            commands.pop("mcp", None)
        elif workers == 0:
            del commands["worker"]  # the test runs its own
        for copy in range(2, workers + 1):
            commands[f"worker.{copy}"] = commands["worker"]
        for name, command in commands.items():
            with open(folder / f"{name}.log", "wb") as log:
                processes[name] = subprocess.Popen(
                    ["sh", "-c", f"exec {command}"],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                )
        wait_for_port(port, processes["web"], timeout=60)
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            stop_process(process, timeout=15)
