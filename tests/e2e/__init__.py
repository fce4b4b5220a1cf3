"""Whole journeys: the real node (kubelet, containerd, Traefik, registry, kaniko), the installed
chart, a real Chromium, and the service's own processes driven by real git pushes."""
