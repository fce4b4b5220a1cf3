"""Specs against the test Kubernetes control plane (KWOK plays the kubelet), with Gitea where they need it."""
