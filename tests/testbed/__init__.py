"""The test bed: the real servers the specs run against (Redis, PostgreSQL, MariaDB, Gitea, the
Kubernetes control plane, the real node) and the helpers that drive them. `make run` and
bench/ use it too."""
