"""Copy the CustomResourceDefinitions the routing tests install out of their Go modules.

`crds/go.sum` pins each module's version and zip hash; `go mod download` fetches the
module from the Go module proxy (checking it against the checksum database too), and
this script refuses a module whose hash is not the pinned one. The files named in
`crds/files` land in <cache>/crds-<key>/, linked from <cache>/crds.

    python3 tests/tools/fetch_crds.py <cache>
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "crds"


def pinned() -> dict[str, tuple[str, str]]:
    found = {}
    for line in (HERE / "go.sum").read_text().splitlines():
        module, version, checksum = line.split()
        found[module] = (version, checksum)
    return found


def wanted_files() -> list[tuple[str, str]]:
    lines = (HERE / "files").read_text().splitlines()
    return [tuple(line.split(None, 1)) for line in lines if line.strip() and not line.startswith("#")]  # type: ignore[misc]


def download(module: str, version: str) -> dict:
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod")
    with tempfile.TemporaryDirectory() as outside_any_module:
        result = subprocess.run(
            ["go", "mod", "download", "-json", f"{module}@{version}"],
            cwd=outside_any_module,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    answer = json.loads(result.stdout or "{}")
    if result.returncode != 0 or answer.get("Error"):
        raise SystemExit(f"go mod download {module}@{version}: {answer.get('Error') or result.stderr.strip()}")
    return answer


def main(cache: Path) -> None:
    key_source = (HERE / "go.sum").read_bytes() + (HERE / "files").read_bytes() + Path(__file__).read_bytes()
    out = cache / f"crds-{hashlib.sha256(key_source).hexdigest()[:16]}"
    if not (out / ".complete").exists():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        versions = pinned()
        for module, pattern in wanted_files():
            version, checksum = versions[module]
            answer = download(module, version)
            if answer.get("Sum") != checksum:
                raise SystemExit(f"{module}@{version}: hash {answer.get('Sum')}, pinned {checksum}: refusing it")
            matches = sorted(glob.glob(os.path.join(answer["Dir"], pattern)))
            if not matches:
                raise SystemExit(f"{module}@{version}: no file matches {pattern}")
            for path in matches:
                target = out / Path(path).name
                shutil.copyfile(path, target)
                target.chmod(0o644)
            print(f"crds: {len(matches)} file(s) from {module}@{version}", file=sys.stderr)
        (out / ".complete").touch()
    link = cache / "crds"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
