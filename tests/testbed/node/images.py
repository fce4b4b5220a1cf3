"""The real node's images, made from Debian packages and our own builds, as OCI layouts.

    pause    catatonit in pause mode: the pod sandbox (containerd's pinned `sandbox` image)
    base     busybox (static): a small runtime base for the sample apps, user 65532
    git      Debian minbase with git: SOURCE_IMAGE, which fetches a commit for a build; with
             curl, the tests' HTTP client inside the cluster (busybox's wget needs glibc's
             NSS modules, which a static busybox cannot load)
    kaniko   kaniko's executor, built by tests/tools/build.sh: BUILDER_IMAGE
    postgres Debian's PostgreSQL 15 with an entrypoint of ours: POSTGRES_IMAGE
    python   Debian's Python 3.11 with venv: the base the service's own image is built on
    screenshot Debian's Chromium (with its security updates) and a font: SCREENSHOT_IMAGE
    coredns  CoreDNS, built by build.sh: the cluster's DNS, a pod in kube-system
    traefik  Traefik, built by build.sh: the data plane, a pod in its own namespace

Each layout sits in the tools cache under a key made of what went into it
(package versions, the executor's hash), so a new Debian point release or a new
kaniko rebuilds that image and nothing else. Standard library only: build.sh
runs this with the machine's python3.

Usage: python3 tests/testbed/node/images.py CACHE_DIR [NAME ...]   (default: all)
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

SUITE = "bookworm"
EPOCH = 1767225600  # 2026-01-01: every file's mtime, so a layer is the same bytes each time
UNPRIVILEGED = "65532:65532"


def package_version(package: str) -> str:
    shown = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", package], check=True, capture_output=True, text=True
    ).stdout
    return next(line.split(":", 1)[1].strip() for line in shown.splitlines() if line.startswith("Version:"))


def unpack_packages(packages: list[str], into: Path) -> None:
    """The files of Debian packages (no scripts run): enough for static binaries."""
    with tempfile.TemporaryDirectory() as download:
        for attempt in range(3):
            fetched = subprocess.run(
                ["timeout", "300", "apt-get", "download", *packages], cwd=download, capture_output=True, text=True
            )
            if fetched.returncode == 0:
                break
            if attempt == 2:
                raise RuntimeError(f"apt-get download {packages}: {fetched.stderr.strip()}")
            # Package lists older than the mirror name versions it no longer has.
            subprocess.run(["timeout", "600", "apt-get", "-qq", "update"], capture_output=True)
        for deb in sorted(Path(download).glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)


def tar_directory(root: Path) -> bytes:
    """A layer: the tree under root, owned by root, with fixed times, in a stable order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = EPOCH
            if info.isfile():
                with open(path, "rb") as content:
                    tar.addfile(info, content)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def write_layout(folder: Path, layer: bytes | list[bytes], config: dict) -> None:
    """An OCI image layout (https://github.com/opencontainers/image-spec, image-layout.md)."""
    layers = layer if isinstance(layer, list) else [layer]
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(content: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(content).hexdigest()
        (blobs / digest).write_bytes(content)
        return f"sha256:{digest}", len(content)

    stored = [blob(gzip.compress(content, mtime=0)) for content in layers]
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(c).hexdigest()}" for c in layers]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "tests/testbed/node/images.py"} for _ in layers],
    }
    config_digest, config_size = blob(json.dumps(image_config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}
            for digest, size in stored
        ],
    }
    manifest_digest, manifest_size = blob(json.dumps(manifest, sort_keys=True).encode())
    (folder / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
            }
        ],
    }
    (folder / "index.json").write_text(json.dumps(index))


def _skeleton(root: Path) -> None:
    for directory in ("tmp", "etc", "workspace"):
        (root / directory).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532::/tmp:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nnonroot:x:65532:\n")


def pause_image(root: Path, _cache: Path) -> tuple[bytes, dict]:
    unpack_packages(["catatonit"], root)
    shutil.rmtree(root / "usr" / "share", ignore_errors=True)
    return tar_directory(root), {"Entrypoint": ["/usr/bin/catatonit", "-P"], "User": UNPRIVILEGED}


def base_image(root: Path, _cache: Path) -> tuple[bytes, dict]:
    unpack_packages(["busybox-static"], root)
    shutil.rmtree(root / "usr" / "share", ignore_errors=True)
    _skeleton(root)
    busybox = root / "bin" / "busybox"
    applets = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        if not (root / "bin" / applet).exists():
            (root / "bin" / applet).symlink_to("busybox")
    config = {"Env": ["PATH=/bin"], "User": UNPRIVILEGED, "WorkingDir": "/tmp"}
    return tar_directory(root), config


def git_image(root: Path, _cache: Path) -> tuple[bytes, dict]:
    layer = debian_tarball(["git", "ca-certificates", "curl"], root.parent / "git.tar")
    config = {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp"], "User": UNPRIVILEGED, "WorkingDir": "/tmp"}
    return layer, config


def debian_tarball(packages: list[str], tarball: Path, sources: tuple[str, ...] = ()) -> bytes:
    """A Debian minbase root with `packages`, as one layer (mmdebstrap; it fetches from Debian's
    mirror, so it gets a deadline and two more tries). `sources`: apt source lines in place of
    the suite's default mirror."""
    command = [
        "mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(packages)}",
        "--dpkgopt=path-exclude=/usr/share/{doc,man,locale,info}/*", SUITE, str(tarball), *sources,
    ]  # fmt: skip
    # Root's sbin folders too (dpkg runs ldconfig): a plain login shell's PATH lacks them.
    path = f"/usr/local/sbin:/usr/sbin:/sbin:{os.environ.get('PATH', os.defpath)}"
    environment = {**os.environ, "PATH": path, "SOURCE_DATE_EPOCH": str(EPOCH)}
    error = ""
    for _ in range(3):
        made = subprocess.run(["timeout", "900", *command], capture_output=True, text=True, env=environment)
        if made.returncode == 0:
            return tarball.read_bytes()
        error = made.stderr.strip()[-2000:]
    raise RuntimeError(f"mmdebstrap: {error}")


POSTGRES_ENTRYPOINT = Path(__file__).with_name("postgres-entrypoint.sh")


def postgres_image(root: Path, _cache: Path) -> tuple[list[bytes], dict]:
    """POSTGRES_IMAGE for in-namespace databases: Debian's PostgreSQL 15 behind an entrypoint
    that honours the official image's variables; busybox too, for the database sample app's
    web server (the app image is FROM this one, so its migrate and seed have psql)."""
    debian = debian_tarball(["postgresql-15", "busybox-static"], root.parent / "postgres.tar")
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    shutil.copy2(POSTGRES_ENTRYPOINT, root / "usr" / "local" / "bin" / "testbed-postgres")
    config = {
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
        "Entrypoint": ["/usr/local/bin/testbed-postgres"],
        "User": "0",
        "WorkingDir": "/tmp",
    }
    return [debian, tar_directory(root)], config


def python_image(root: Path, _cache: Path) -> tuple[bytes, dict]:
    """What `python:3.11-slim` gives the service's Dockerfile (BASE_IMAGE): python on PATH and
    venv with its bundled pip, so the image builds offline from a wheelhouse."""
    layer = debian_tarball(["python3", "python3-venv", "python-is-python3", "ca-certificates"], root.parent / "py.tar")
    config = {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["python3"]}
    return layer, config


# The suite and its security updates: a browser that renders previews' pages gets its fixes.
SECURITY_SOURCES = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)


def screenshot_image(root: Path, _cache: Path) -> tuple[bytes, dict]:
    """SCREENSHOT_IMAGE as an operator would make it: Debian's chromium (coreutils' base64
    and timeout come with minbase) and a font for the pages' text."""
    layer = debian_tarball(["chromium", "fonts-dejavu-core"], root.parent / "chromium.tar", SECURITY_SOURCES)
    config = {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp"], "User": UNPRIVILEGED, "WorkingDir": "/tmp"}
    return layer, config


def kaniko_image(root: Path, cache: Path) -> tuple[bytes, dict]:
    # The executor works on the container's own root: its image holds nothing but /kaniko.
    (root / "kaniko" / ".docker").mkdir(parents=True)
    shutil.copy2(cache / "bin" / "executor", root / "kaniko" / "executor")
    (root / "workspace").mkdir()
    config = {
        "Env": ["PATH=/usr/local/bin:/kaniko", "HOME=/root", "USER=root", "DOCKER_CONFIG=/kaniko/.docker/"],
        "Entrypoint": ["/kaniko/executor"],
        "WorkingDir": "/workspace",
    }
    return tar_directory(root), config


def binary_image(binary: str, entrypoint: list[str], user: str) -> Callable[[Path, Path], tuple[bytes, dict]]:
    """An image of one static binary of ours, in /usr/local/bin."""

    def make(root: Path, cache: Path) -> tuple[bytes, dict]:
        (root / "usr" / "local" / "bin").mkdir(parents=True)
        shutil.copy2(cache / "bin" / binary, root / "usr" / "local" / "bin" / binary)
        _skeleton(root)
        return tar_directory(root), {"Entrypoint": entrypoint, "User": user}

    return make


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.resolve().read_bytes()).hexdigest()


# name -> (how it is made, what its key is made of)
IMAGES: dict[str, tuple[Callable[[Path, Path], tuple[bytes | list[bytes], dict]], Callable[[Path], str]]] = {
    "pause": (pause_image, lambda cache: package_version("catatonit")),
    "base": (base_image, lambda cache: package_version("busybox-static")),
    "git": (git_image, lambda cache: " ".join([SUITE, *(package_version(p) for p in ("git", "curl", "libc6"))])),
    "kaniko": (kaniko_image, lambda cache: _file_hash(cache / "bin" / "executor")),
    "postgres": (
        postgres_image,
        lambda cache: " ".join(
            [SUITE, package_version("postgresql-15"), _file_hash(POSTGRES_ENTRYPOINT), package_version("libc6")]
        ),
    ),
    "python": (
        python_image,
        lambda cache: " ".join([SUITE, *(package_version(p) for p in ("python3.11", "python3-pip-whl", "libc6"))]),
    ),
    "screenshot": (
        screenshot_image,
        lambda cache: " ".join([SUITE, *(package_version(p) for p in ("chromium", "fonts-dejavu-core", "libc6"))]),
    ),
    "coredns": (
        binary_image("coredns", ["/usr/local/bin/coredns"], UNPRIVILEGED),
        lambda cache: _file_hash(cache / "bin" / "coredns"),
    ),
    "traefik": (
        binary_image("traefik", ["/usr/local/bin/traefik"], UNPRIVILEGED),
        lambda cache: _file_hash(cache / "bin" / "traefik"),
    ),
}
# Bumped when the helpers (tar_directory, write_layout, debian_tarball) change what they write.
LAYOUT_VERSION = 1


def layout_path(cache: Path, name: str) -> Path:
    make, key_of = IMAGES[name]
    recipe = inspect.getsource(make)  # a changed recipe rebuilds its image, and only that one
    key = hashlib.sha256(f"{LAYOUT_VERSION} {recipe} {key_of(cache)}".encode()).hexdigest()[:16]
    return cache / "images" / f"{name}-{key}"


def build(cache: Path, name: str) -> Path:
    folder = layout_path(cache, name)
    if (folder / "index.json").exists():
        return folder
    make, _ = IMAGES[name]
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "root"
        root.mkdir()
        layer, config = make(root, cache)
        staging = Path(work) / "layout"
        write_layout(staging, layer, config)
        for old in folder.parent.glob(f"{name}-*"):
            shutil.rmtree(old)
        shutil.move(str(staging), str(folder))
    print(f"image {name}: {folder}", file=sys.stderr)
    return folder


def main() -> None:
    cache = Path(sys.argv[1])
    for name in sys.argv[2:] or IMAGES:
        build(cache, name)


if __name__ == "__main__":
    main()
