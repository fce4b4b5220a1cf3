# The README's commands. `make run` sets up and runs the service; `make test`
# sets up and runs every test. Both work as root on a new Debian 12 machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# python3-venv: Debian's python3 cannot make a virtualenv without it.
# mariadb-server: the tests' shared MySQL-compatible server for preview databases; chromium:
# the tests' browser (driven by playwright, which downloads no browser of its own); faketime:
# the tests run a scheduler and a worker whose clocks are off. libseccomp-dev, pkg-config:
# runc's build; iptables, nftables, iproute2, curl: the real node (tests/testbed/node); mmdebstrap:
# its images.
DEBIAN_PACKAGES := git redis-server postgresql mariadb-server nginx-light chromium util-linux procps python3-venv faketime libseccomp-dev pkg-config iptables nftables iproute2 mmdebstrap curl
# buildah: bench.push_to_page's baseline builder, for the benchmarks only.
BENCH_PACKAGES := buildah

.PHONY: run test bench deps venv tools migrate cluster node lint

run: deps venv tools
	$(BIN)/python -m tests.testbed.devstack

test: deps venv tools lint
	$(BIN)/python -m pytest

# Every benchmark under bench/, one after another (about an hour); README has the figures.
bench: deps venv tools
	@$(MAKE) --no-print-directory deps DEBIAN_PACKAGES="$(BENCH_PACKAGES)"
	$(BIN)/python -m bench all

# Debian packages the service and its tests need; installed only when missing.
deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt="apt-get -qq -o Acquire::Retries=3 -o Acquire::http::Timeout=60 -o Acquire::https::Timeout=60"; \
	  timeout 900 $$apt update && DEBIAN_FRONTEND=noninteractive timeout 1800 $$apt install -y --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed
# --clear: a changed setup.cfg rebuilds the venv from scratch, so a venv made by another
# python3 (pyenv, then Debian's from a plain login shell) is never left half of each.
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install -q --timeout 60 --retries 5 --upgrade pip
	$(BIN)/pip install -q --timeout 60 --retries 5 -e '.[test]'
	touch $@

# The test control plane, kubectl, KWOK, helm and Gitea, built from their Go modules (cached).
tools:
	tests/tools/build.sh

migrate: venv
	$(BIN)/flask --app app migrate

# A local Kubernetes control plane in the foreground; prints the KUBECONFIG to use.
cluster: venv tools
	$(BIN)/python -m tests.testbed.kube.controlplane

# The real node (kubelet, containerd, Traefik, registry) and its own control plane, in the foreground.
node: deps venv tools
	$(BIN)/python -m tests.testbed.node.node

lint: venv
	$(BIN)/ruff check app workers tests bench
	$(BIN)/ruff format --check app workers tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
