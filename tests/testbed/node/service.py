"""What the service needs to run its previews on the real node: the operator's part of the
build namespace, the settings, and a sample app to deploy. Shared by the tests and `make run`."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import yaml

from tests.testbed.node import addons
from tests.testbed.node.node import RealNode

BUILD_NAMESPACE = "preview-builds"
DOMAIN = "preview.localhost"  # Chromium resolves every *.localhost name to loopback


def sample_app(base_image: str, message: str) -> dict[str, str]:
    """A tiny app on the test bed's busybox base: its page shows the commit it runs and a file
    of the commit, so a page can only be right if the build used that commit."""
    return {
        "Dockerfile": (
            f"FROM {base_image}\n"
            "COPY --chown=65532:65532 site /site\n"
            "RUN chmod 755 /site/cgi-bin/index.cgi\n"
            'CMD ["httpd", "-f", "-p", "8080", "-h", "/site"]\n'
        ),
        "site/cgi-bin/index.cgi": (
            "#!/bin/sh\n"
            "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
            'echo "commit $PREVIEW_COMMIT"\n'
            "cat /site/message.txt\n"
        ),
        "site/message.txt": message + "\n",
    }


def prepare_builds(node: RealNode, git_user: str, git_token: str, namespace: str = BUILD_NAMESPACE) -> None:
    """The operator's part: the build namespace with the registry push credentials (kaniko
    pushes with them) and the git credentials fetch-source clones private repositories with.
    Applied, so a second caller in the same session changes nothing. A `namespace` of the
    chart's is made by `helm install`, before this."""
    docker_config = json.dumps(node.docker_config()).encode()
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "registry-credentials", "namespace": namespace},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(docker_config).decode()},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "git-credentials", "namespace": namespace},
            "stringData": {"username": git_user, "password": git_token},
        },
    ]
    node.plane.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))


def hooked_service_env(
    node: RealNode, gitea: Any, redis_url: str, database_url: str, port: int, secret: str, name: str
) -> dict[str, str]:
    """service_env, and what a service of its own needs besides: the session's Gitea (as the
    node reaches it), Redis and a database, a queue named after `name`, the webhook secret,
    and its web on 127.0.0.1:port."""
    gitea_host, gitea_port = node.expose(gitea.port)
    return {
        **service_env(node),
        "GITEA_URL": f"http://{gitea_host}:{gitea_port}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PREVIEW_QUEUE": f"{name}-{uuid.uuid4().hex[:8]}",
        "GITEA_TOKEN": gitea.bot_token,
        "GITEA_WEBHOOK_SECRET": secret,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }


def service_env(node: RealNode) -> dict[str, str]:
    """Settings for previews built and served on the node. GITEA_URL is the caller's: an address
    the service and the build pods both reach (RealNode.expose)."""
    network = node.network
    return {
        "KUBECONFIG": str(node.plane.kubeconfig),
        "PREVIEW_REGISTRY": f"{node.registry}/previews",
        "PREVIEW_REGISTRY_INSECURE": "true",
        "REGISTRY_SHARED_FALLBACK": "true",
        "SOURCE_IMAGE": node.image("git"),
        "BUILDER_IMAGE": node.image("kaniko"),
        "BUILD_EGRESS_ALLOWED_CIDRS": f"{network.host_ip}/32,{network.node_ip}/32",
        "PREVIEW_ROUTING": "gateway-traefik",
        "PREVIEW_GATEWAY": node.gateway,
        "INGRESS_CONTROLLER_NAMESPACE": addons.TRAEFIK_NAMESPACE,
        "TRAFFIC_METRICS_URL": f"http://{network.node_ip}:{addons.METRICS_PORT}/metrics",
        "PREVIEW_INGRESS_URL": node.ingress_url,
        "PREVIEW_DOMAIN": DOMAIN,
        # In-namespace databases: the test bed's PostgreSQL image, on the node's local volumes.
        "POSTGRES_IMAGE": node.image("postgres"),
        "DATABASE_STORAGE_CLASS": addons.STORAGE_CLASS,
    }
