"""The build's fetch-source step, run with real git against the real test Gitea.

In the cluster the script runs in the build Job's init container; here it runs
in a shell with the same environment and user, so what it fetches and leaves
behind can be checked file by file.
"""

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from app.domain.k8s.build import FETCH_SOURCE_SCRIPT
from tests.testbed.gitea_repo import create_repository
from tests.testbed.gitea_server import BOT

pytestmark = pytest.mark.gitea


@pytest.fixture
def private_repo(gitea, tmp_path):
    repo = create_repository(gitea, f"src-{uuid.uuid4().hex[:6]}", tmp_path / "work")
    gitea.api("PATCH", f"/repos/{repo.full_name}", json={"private": True})
    return repo


@pytest.fixture
def open_tmp():
    """A folder the unprivileged user can reach (pytest's own sit below a root-only one)."""
    folder = Path(tempfile.mkdtemp(prefix="preview-fetch-"))
    yield folder
    shutil.rmtree(folder)


def fetch_source(gitea, repo, workspace, sha, ref, password):
    """Run the script as the build pod does: as uid 65532, into a root-owned, world-writable
    folder (the kubelet's emptyDir), with HOME where that user may write."""
    workspace.mkdir()
    home = workspace.parent / "home"
    home.mkdir()
    for folder in (workspace.parent, workspace, home):
        folder.chmod(0o777)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "WORKSPACE": str(workspace),
        "SOURCE_URL": f"{gitea.url}/{repo.full_name}.git",
        "SOURCE_REF": ref,
        "SOURCE_SHA": sha,
        "GIT_USERNAME": BOT,
        "GIT_PASSWORD": password,
    }
    unprivileged = ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups"]
    return subprocess.run(
        [*unprivileged, "sh", "-c", FETCH_SOURCE_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )


def test_it_checks_out_the_exact_commit_and_leaves_no_git_behind(gitea, private_repo, open_tmp):
    first = private_repo.commit("feature/x", {"version.txt": "one"}, "one")
    private_repo.commit("feature/x", {"version.txt": "two"}, "two")  # the branch has moved on since
    result = fetch_source(gitea, private_repo, open_tmp / "ws", first, "refs/heads/feature/x", gitea.bot_token)
    assert result.returncode == 0, result.stderr
    workspace = open_tmp / "ws"
    assert (workspace / "version.txt").read_text() == "one"
    assert (workspace / "Dockerfile").exists()
    assert not (workspace / ".git").exists()  # nothing of the fetch (its URL, its config) reaches the build


def test_a_private_repository_is_not_fetched_without_the_credentials(gitea, private_repo, open_tmp):
    sha = private_repo.commit("feature/y", {"a.txt": "a"}, "a")
    result = fetch_source(gitea, private_repo, open_tmp / "ws", sha, "refs/heads/feature/y", "not-the-token")
    assert result.returncode != 0
    assert not (open_tmp / "ws" / "a.txt").exists()


def test_a_commit_the_ref_does_not_hold_fails(gitea, private_repo, open_tmp):
    private_repo.commit("feature/z", {"a.txt": "a"}, "a")
    result = fetch_source(gitea, private_repo, open_tmp / "ws", "f" * 40, "refs/heads/feature/z", gitea.bot_token)
    assert result.returncode != 0


def test_a_hash_in_the_branch_name_changes_nothing_that_is_built(gitea, private_repo, open_tmp):
    """kaniko's git context once split on '#': the ref now travels as a value of its own."""
    sha = private_repo.commit("fix#1", {"version.txt": "hash"}, "hash")
    result = fetch_source(gitea, private_repo, open_tmp / "ws", sha, "refs/heads/fix#1", gitea.bot_token)
    assert result.returncode == 0, result.stderr
    assert (open_tmp / "ws" / "version.txt").read_text() == "hash"
