import pytest

from app.domain.git_refs import branch_name_problem


@pytest.mark.parametrize("name", ["main", "task/add-login", "feature/a_b.c", "release-1.2", "a#b", "üñí/cödé"])
def test_valid_branch_names(name):
    assert branch_name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "@",
        "../..",
        "a/../b",
        "a..b",
        "/a",
        "a/",
        "a.",
        "-a",
        "a//b",
        "a b",
        "a\nb",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        ".hidden",
        "a/.b",
        "x.lock",
        "a/b.lock/c",
        "a@{1}",
        "x" * 256,
    ],
)
def test_invalid_branch_names(name):
    assert branch_name_problem(name)
