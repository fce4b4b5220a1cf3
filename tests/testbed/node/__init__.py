"""The real node: kubelet, containerd and runc, a pod network, DNS, network policy,
a registry and Traefik, all inside network namespaces, a mount namespace and a
cgroup parent that the test bed creates and removes (see README, "The test bed")."""
