"""Adapters: one small module per external system (Kubernetes, Gitea, the job queue)."""
