"""The bot's one comment is found however long the PR's thread: the real Gitea, paging."""

import uuid

import pytest

from app.adapters.gitea import Gitea
from tests.testbed.gitea_repo import create_repository

pytestmark = pytest.mark.gitea


def test_the_bots_comment_is_found_below_many_others(gitea, tmp_path):
    repo = create_repository(gitea, f"thread-{uuid.uuid4().hex[:6]}", tmp_path / "work")
    repo.commit("feature/long", {"x.txt": "x"}, "A change")
    number = repo.open_pr("feature/long")
    bot = Gitea(gitea.url, gitea.bot_token)
    marker = f"<!-- preview:{repo.full_name}#{number} -->"
    first = bot.upsert_comment(repo.full_name, number, marker, f"{marker}\nfirst")
    for n in range(60):
        repo.comment(number, f"comment {n}")
    # A small page, so the bot's comment is three pages back.
    assert len(bot.comments(repo.full_name, number, page_size=20)) == 61
    again = bot.upsert_comment(repo.full_name, number, marker, f"{marker}\nsecond")
    assert again == first
    assert [c["body"] for c in repo.bot_comments(number)] == [f"{marker}\nsecond"]
