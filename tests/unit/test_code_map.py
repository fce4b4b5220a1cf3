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


def test_the_readme_s_code_map_names_every_package():
    readme = (ROOT / "README.md").read_text()
    code_map = re.search(r"## Where the code is\n\n```\n(.*?)```", readme, re.S).group(1)
    named = set(re.findall(r"^(\S+/)", code_map, re.M))
    packages = {
        f"{path.parent.relative_to(ROOT)}/"
        for path in [*ROOT.glob("app/*/__init__.py"), *ROOT.glob("*/__init__.py")]
        if path.parent.name not in ("tests", "migrations")
    }
    assert packages - named == set(), "packages the README's 'Where the code is' does not name"
