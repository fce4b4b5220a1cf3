"""The service's own image, built on the real node the way the service builds a preview:
our kaniko build Job (app/domain/k8s/build.build_job) fetches a commit of the test
Gitea, builds charts/gitea-previews/image/Dockerfile on the test bed's Debian Python
base, and pushes to the node's registry.

The commit holds the repository's files as they are in the working tree (tracked, and
new ones git does not ignore), so the image is the code under test, committed or not.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from app.adapters.kube import Kube
from app.domain.k8s.build import BuildSpec, build_job
from app.domain.k8s.labels import PreviewSpec
from app.domain.naming import image_repository, preview_names
from app.settings import Settings
from app.usecases.deploy import policies
from tests.testbed.gitea_repo import Repo, create_repository
from tests.testbed.gitea_server import GiteaServer
from tests.testbed.node.node import RealNode
from tests.testbed.node.service import BUILD_NAMESPACE, DOMAIN, service_env
from tests.testbed.service_processes import ROOT

DOCKERFILE = "charts/gitea-previews/image/Dockerfile"
# What the Dockerfile's context needs, and the chart (so the repository reads as ours).
SOURCE_PATHS = ("app", "workers", "charts", "setup.cfg", "pyproject.toml", "README.md", "Procfile", ".dockerignore")
REPOSITORY = "testbed/gitea-previews"


def source_files() -> dict[str, str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *SOURCE_PATHS],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    return {name: (ROOT / name).read_text() for name in listed if name and (ROOT / name).is_file()}


@dataclass
class ServiceImageBuilder:
    """Builds commits of one Gitea repository holding the service's source."""

    node: RealNode
    repo: Repo
    settings: Settings
    wheels_url: str

    def build(self, sha: str) -> str:
        """The image of commit `sha`, as `<registry>/<path>@<digest>`."""
        now = datetime.now()
        names = preview_names(REPOSITORY, f"{REPOSITORY}@main", None, "main", DOMAIN)
        spec = PreviewSpec(0, names, REPOSITORY, "main", sha, now, now + timedelta(hours=1), timedelta(hours=1))
        repository = image_repository(self.settings.preview_registry or "", REPOSITORY)
        build = BuildSpec(
            job_name=f"service-image-{sha[:12]}",
            namespace=self.settings.build_namespace,
            clone_url=f"{self.settings.gitea_url}/{self.repo.full_name}.git",
            git_ref="refs/heads/main",
            destination=f"{repository}:{sha[:12]}",
            cache_repository=f"{repository}/cache",
            dockerfile=DOCKERFILE,
            build_args={
                "BASE_IMAGE": self.node.image("python"),
                "PIP_NO_INDEX": "1",
                "PIP_FIND_LINKS": self.wheels_url,
                "PIP_TRUSTED_HOST": urlsplit(self.wheels_url).hostname or "",
                "REVISION": sha,
            },
        )
        kube = Kube(self.node.plane.client_configuration())
        try:
            kube.replace_job(build_job(spec, build, policies.build(self.settings), sha))
            outcome = kube.wait_for_job(build.namespace, build.job_name, 900)
            if outcome.state != "complete":
                tail = kube.pod_log_tail(build.namespace, f"job-name={build.job_name}", lines=60)
                raise RuntimeError(f"the service image did not build ({outcome.state}): {outcome.message}\n{tail}")
        finally:
            kube.close()
        return f"{repository}@{outcome.message}"

    def change(self) -> str:
        """A new commit whose image differs only in its revision label (its layers come from the cache)."""
        return self.repo.commit("main", {"docs/upgrade.md": f"revision {uuid.uuid4().hex}\n"}, "Another revision")


def service_image_builder(node: RealNode, gitea: GiteaServer, workdir: Path, wheels_url: str) -> ServiceImageBuilder:
    """A repository of the test Gitea with the service's source on `main`; the builds' settings
    are the ones the test bed's previews use."""
    repo = create_repository(gitea, f"gitea-previews-{uuid.uuid4().hex[:6]}", workdir, files=source_files())
    gitea_host, gitea_port = node.expose(gitea.port)
    settings = Settings.from_env(
        {**service_env(node), "GITEA_URL": f"http://{gitea_host}:{gitea_port}", "BUILD_NAMESPACE": BUILD_NAMESPACE}
    )
    return ServiceImageBuilder(node, repo, settings, wheels_url)
