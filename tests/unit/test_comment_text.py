"""PR-controlled text in the bot's comment (a failure's detail: an author, a branch, a command's
output) is shown as text: no link, image, HTML or table row of its own."""

import re

from app.usecases.deploy.reporting import markdown_text


def test_markup_in_a_detail_is_escaped():
    shown = markdown_text("seed failed: ![x](https://evil.test/p.png) <img src=x> | stolen | row\nnext")
    # Every character Markdown or HTML would act on comes with its backslash.
    assert not re.search(r"(?<!\\)[!\[\]()<>|`*_]", shown), shown
    assert "\n" not in shown
    assert shown.startswith("seed failed: \\!\\[x\\]")


def test_plain_words_stay_readable():
    assert markdown_text("it comes from an AGit push by ana") == "it comes from an AGit push by ana"
