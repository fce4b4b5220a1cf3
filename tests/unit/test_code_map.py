"""Names the code relies on by text: the jobs RQ imports by dotted path, and the README's map
of the packages. A rename that forgets either fails here, not in a worker or a reader."""

from __future__ import annotations

import importlib
import re

import pytest

from app.usecases import jobs
from tests.testbed.service_processes import ROOT

JOB_PATHS = [value for name, value in vars(jobs).items() if name.endswith("_JOB")]


def test_the_jobs_module_names_the_jobs():
    assert len(JOB_PATHS) >= 4


@pytest.mark.parametrize("path", JOB_PATHS)
def test_every_job_s_dotted_path_imports_to_a_function(path):
    module, _, name = path.rpartition(".")
    assert module == "workers.jobs"  # KnownJob resolves nothing else
    assert callable(getattr(importlib.import_module(module), name))


def named_in(code_map: str) -> set[str]:
    """The paths the map names: a line's first word ending in / or .py; a word indented by two
    spaces is inside the last one above it (wrapped descriptions are indented further)."""
    named, parent = set(), ""
    for line in code_map.splitlines():
        words = line.split()
        if not words or not words[0].endswith(("/", ".py")):
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            parent = words[0]
            named.add(words[0])
        elif indent == 2:
            named.add(parent + words[0])
    return named


def test_the_readme_s_code_map_names_every_package():
    readme = (ROOT / "README.md").read_text()
    code_map = re.search(r"## Where the code is\n.*?```\n(.*?)```", readme, re.S).group(1)
    packages = {
        f"{path.parent.relative_to(ROOT)}/"
        for path in [*ROOT.glob("app/*/**/__init__.py"), *ROOT.glob("*/__init__.py")]
        if path.parent.name not in ("tests", "migrations") and path.parent != ROOT / "app"
    }
    assert packages - named_in(code_map) == set(), "packages the README's 'Where the code is' does not name"


def test_the_code_map_reads_nested_names_and_skips_wrapped_descriptions():
    code_map = "app/x/    one\n  inner/  two\n          wrapped words/ here\napp/y.py  three\n"
    assert named_in(code_map) == {"app/x/", "app/x/inner/", "app/y.py"}
