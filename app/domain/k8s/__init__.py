"""The Kubernetes objects of a preview, as plain dicts from pure functions, one module per
concern: labels, isolation, workload, build, routing, database, and the diagnosis of a rollout
from what the cluster shows. Each builder takes the preview's spec and a narrow policy (made
from the settings in app/usecases/deploy/policies.py); nothing here talks to a cluster."""
