"""The preview file read on a thread beside the job's PR read (preview_config.FileRead)."""

from __future__ import annotations

import threading

import pytest

from app.domain.preview_file import PATH, PreviewFileError
from app.settings import Settings
from app.usecases.deploy.preview_config import FileRead
from app.usecases.ports import GiteaError


class GiteaFiles:
    """Answers file_at from a dict, once `opened` is set: the read must not block its caller."""

    configured = True

    def __init__(self, files: dict[tuple[str, str], bytes | Exception]) -> None:
        self.files = files
        self.opened = threading.Event()
        self.asked: list[tuple[str, str, str]] = []

    def file_at(self, repository: str, path: str, ref: str) -> bytes | None:
        self.opened.wait(5)
        self.asked.append((repository, path, ref))
        found = self.files.get((repository, ref))
        if isinstance(found, Exception):
            raise found
        return found


SETTINGS = Settings.from_env({})


def test_the_read_runs_beside_its_caller_and_answers_the_parsed_file():
    gitea = GiteaFiles({("o/r", "abc"): b"port: 3000\n"})
    read = FileRead(gitea, SETTINGS, "o/r", "abc")  # returns at once: Gitea has not answered yet
    assert gitea.asked == []
    gitea.opened.set()
    found = read.result()
    assert found is not None
    assert found.port == 3000
    assert gitea.asked == [("o/r", PATH, "abc")]
    assert (read.repository, read.sha) == ("o/r", "abc")


def test_no_file_at_the_commit_is_none():
    gitea = GiteaFiles({})
    gitea.opened.set()
    assert FileRead(gitea, SETTINGS, "o/r", "abc").result() is None


@pytest.mark.parametrize(
    ("answer", "raised"),
    [(GiteaError("gitea is down"), GiteaError), (b"port: [not a port]\n", PreviewFileError)],
)
def test_the_reads_error_is_raised_to_whoever_asks_for_the_result(answer, raised):
    gitea = GiteaFiles({("o/r", "abc"): answer})
    gitea.opened.set()
    read = FileRead(gitea, SETTINGS, "o/r", "abc")
    with pytest.raises(raised):
        read.result()
    with pytest.raises(raised):  # and again: the outcome is kept
        read.result()
