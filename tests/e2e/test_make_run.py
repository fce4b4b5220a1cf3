"""The README's run command, as a newcomer types it: `make run` from a plain login shell.

No virtualenv on PATH, nothing configured: it must start Redis, the cluster
(the real node on this machine), Gitea with the demo repository and the service,
get the demo's task branch to a `success` status whose "Details" link opens the
demo's app in Chromium, and leave no process behind after Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from tests.testbed.helpers import descendants, process_stat
from tests.testbed.kube.waiting import eventually
from tests.testbed.servers import free_port

pytestmark = [pytest.mark.kube, pytest.mark.gitea, pytest.mark.node, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"
GITEA_LINE = re.compile(r"local Gitea at (http://\S+)\s+\(user (\S+), password (\S+)\)")


def _alive(processes: dict[int, int]) -> list[str]:
    left = []
    for pid, started in processes.items():
        stat = process_stat(pid)
        if stat and stat[1] == started:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            left.append(f"{pid} {command[:120]!r}")
    return left


def open_the_details_link(browser, link: str, output: str, service: str) -> None:
    """What a reviewer does: the "Details" link in a browser, with the preview's password (read
    from the API with the token `make run` printed). The page is the demo's own app."""
    assert re.match(r"http://[a-z0-9-]+\.preview\.localhost:\d+$", link), link
    token = re.search(r"Authorization: Bearer (\S+)", output).group(1)
    bearer = {"Authorization": f"Bearer {token}"}
    [preview] = requests.get(f"{service}/api/previews", headers=bearer, timeout=10).json()["items"]
    access = requests.get(f"{service}/api/previews/{preview['id']}/credentials", headers=bearer, timeout=10).json()
    context = browser.new_context(http_credentials={"username": access["username"], "password": access["password"]})
    page = context.new_page()
    answer = page.goto(link)
    assert answer.status == 200
    assert page.content().count(f"commit {preview['head_sha']}") == 1
    assert "Hello from the demo" in page.content()
    context.close()


def test_make_run_from_a_plain_shell_reaches_a_ready_preview_and_ctrl_c_stops_everything(browser):
    env = {"PATH": PLAIN_PATH, "HOME": os.environ["HOME"], "LANG": "C.UTF-8", "BIND": f"127.0.0.1:{free_port()}"}
    if "PREVIEW_TOOLS_CACHE" in os.environ:
        env["PREVIEW_TOOLS_CACHE"] = os.environ["PREVIEW_TOOLS_CACHE"]
    make = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job has
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(make.stdout), daemon=True)
    reader.start()
    try:

        def gitea_announced():
            assert make.poll() is None, "make run exited early:\n" + "".join(output[-40:])
            return next((m for m in map(GITEA_LINE.search, output) if m), None)

        url, user, password = eventually(gitea_announced, timeout=600, interval=0.5, what="Gitea announced").groups()

        def demo_status():
            assert make.poll() is None, "make run exited early:\n" + "".join(output[-40:])
            answer = requests.get(
                f"{url}/api/v1/repos/{user}/demo/commits/task%2Fwelcome/status", auth=(user, password), timeout=10
            )
            statuses = answer.json().get("statuses") or [] if answer.ok else []
            preview = next((s for s in statuses if s["context"] == "preview"), None)
            return preview if preview and preview["status"] == "success" else None

        # On the real node the demo is really built (under a minute here).
        status = eventually(demo_status, timeout=300, interval=1, what="the demo preview's success status")
        assert status["target_url"].startswith("http")
        # This machine can run the real node (the `node` tests do): the demo must have used it.
        said = "".join(output)
        assert "real node ready" in said, [line for line in output if "real node" in line]
        open_the_details_link(browser, status["target_url"], said, f"http://{env['BIND']}")

        started = descendants(make.pid)
        assert any(b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in started)
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        make.wait(timeout=90)
        left = eventually(lambda: not _alive(started), timeout=30, what="every started process gone", interval=0.5)
        assert left, _alive(started)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        reader.join(timeout=5)
        make.stdout.close()
    text = "".join(output)
    assert "not found" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    # The run's throwaway folders (its SQLite database, the demo's checkout) went with it.
    databases = re.findall(r"sqlite:///(\S+)/preview\.db", text)
    folders = databases + [str(Path(clone).parent) for clone in re.findall(r"checked out in (\S+)", text)]
    assert len(folders) == 2, folders
    assert [folder for folder in folders if Path(folder).exists()] == []
