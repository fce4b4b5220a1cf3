"""On the real node: a pull request's preview is really built by kaniko, really pulled and
run by containerd, and really served by Traefik behind the preview's password.

The service runs as its Procfile processes against the node's own cluster
(tests/node/node.py); Gitea, PostgreSQL and Redis are the session's.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import requests
from kubernetes import client as k8s

from tests.gitea_repo import create_repository
from tests.kube.waiting import eventually, namespace_gone
from tests.servers import free_port
from tests.service_processes import SecretEnv, service_processes

pytestmark = [pytest.mark.node, pytest.mark.gitea, pytest.mark.slow]

SECRET = "node-webhook-secret-" + uuid.uuid4().hex[:8]
DOMAIN = "preview.localhost"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"


def sample_app(base_image: str, message: str) -> dict[str, str]:
    """A tiny app on the test bed's busybox base: its page shows the commit it runs and a
    file of the commit, so a page can only be right if the build used that commit."""
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


@pytest.fixture(scope="module")
def stack(gitea, real_node, redis_server, postgres_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("node")
    port = free_port()
    gitea_host, gitea_port = real_node.expose(gitea.port)
    api = real_node.plane.api_client()
    # The operator's part: the build namespace's registry credentials (kaniko pushes with them).
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "preview-builds"}})
    docker_config = json.dumps(real_node.docker_config()).encode()
    core.create_namespaced_secret(
        "preview-builds",
        {
            "metadata": {"name": "registry-credentials"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(docker_config).decode()},
        },
    )
    network = real_node.network
    env = {
        "DATABASE_URL": postgres_server.create_database(f"node_{uuid.uuid4().hex[:8]}"),
        "REDIS_URL": redis_server.url,
        "PREVIEW_QUEUE": f"node-{uuid.uuid4().hex[:8]}",
        # One address for Gitea that the service and the build pods both reach.
        "GITEA_URL": f"http://{gitea_host}:{gitea_port}",
        "GITEA_TOKEN": gitea.bot_token,
        "GITEA_WEBHOOK_SECRET": SECRET,
        "KUBECONFIG": str(real_node.plane.kubeconfig),
        "PREVIEW_REGISTRY": f"{real_node.registry}/previews",
        "PREVIEW_REGISTRY_INSECURE": "true",
        "REGISTRY_SHARED_FALLBACK": "true",
        "SOURCE_IMAGE": real_node.image("git"),
        "BUILDER_IMAGE": real_node.image("kaniko"),
        "BUILD_EGRESS_ALLOWED_CIDRS": f"{network.host_ip}/32,{network.node_ip}/32",
        "PREVIEW_ROUTING": "gateway-traefik",
        "PREVIEW_GATEWAY": real_node.gateway,
        "INGRESS_CONTROLLER_NAMESPACE": "traefik",
        "PREVIEW_DOMAIN": DOMAIN,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    with service_processes(env, folder, port):
        yield {"url": f"http://127.0.0.1:{port}", "folder": folder, "env": SecretEnv(env), "api": api}
    api.close()


@pytest.fixture
def repo(gitea, real_node, stack, tmp_path):
    return create_repository(
        gitea,
        f"node-app-{uuid.uuid4().hex[:6]}",
        tmp_path / "work",
        webhook_url=f"{stack['url']}/webhooks/gitea",
        secret=SECRET,
        files=sample_app(real_node.image("base"), "first version"),
    )


def pod_logs(real_node, namespace: str) -> str:
    """Every container's log in a namespace: what a failed build or rollout said."""
    api = real_node.plane.api_client()
    core, found = k8s.CoreV1Api(api), []
    for pod in core.list_namespaced_pod(namespace).items:
        for container in [*(pod.spec.init_containers or []), *pod.spec.containers]:
            try:
                log = core.read_namespaced_pod_log(pod.metadata.name, namespace, container=container.name)
            except k8s.ApiException as error:
                log = f"(no log: {error.reason})"
            found.append(f"--- {pod.metadata.name}/{container.name} ---\n{log[-3000:]}")
    api.close()
    return "\n".join(found)


def routing_state(real_node, namespace: str) -> str:
    """The preview's HTTPRoute as Traefik left it (its status), and what Traefik said."""
    routes = real_node.plane.kubectl(
        "get", "httproute,middleware,endpointslice,networkpolicy", "-n", namespace, "-o", "yaml", check=False
    )
    return f"{routes.stdout}{routes.stderr}\n{pod_logs(real_node, 'traefik')}"


def success_status(repo, sha, real_node, timeout=300):
    def probe():
        status = repo.latest_status(sha)
        if status and status["status"] == "failure":
            pytest.fail(f"{status['description']}\n{pod_logs(real_node, 'preview-builds')}")
        return status if status and status["status"] == "success" else None

    return eventually(probe, timeout=timeout, interval=1, what=f"success status on {sha[:12]}")


def page(real_node, host, auth=None):
    return requests.get(real_node.ingress_url, headers={"Host": host}, auth=auth, timeout=10)


def test_a_pr_is_built_run_and_served_behind_its_password_then_updated_then_gone(real_node, stack, repo):
    sha1 = repo.commit("feature/page", sample_app(real_node.image("base"), "hello reviewers"), "A page")
    number = repo.open_pr("feature/page")
    status = success_status(repo, sha1, real_node)
    host = status["target_url"].split("://", 1)[1].split("/", 1)[0]
    namespace = "preview-" + host.split(".", 1)[0]
    api = stack["api"]

    # The image the Deployment runs is the digest kaniko pushed, and the registry holds it.
    container = k8s.AppsV1Api(api).list_namespaced_deployment(namespace).items[0].spec.template.spec.containers[0]
    repository, digest = container.image.split("@")
    registry, path = repository.split("/", 1)
    manifest = requests.head(
        f"http://{registry}/v2/{path}/manifests/{digest}",
        auth=(real_node.registry_user, real_node.registry_password),
        headers={"Accept": MANIFEST_TYPES},
        timeout=10,
    )
    assert manifest.status_code == 200 and manifest.headers["Docker-Content-Digest"] == digest
    [pod] = k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=app").items
    assert pod.status.container_statuses[0].image_id.endswith(digest)

    # Through Traefik (which picks the route up within a few seconds): the password is asked
    # for, and with it the page of this very commit.
    try:
        eventually(lambda: page(real_node, host).status_code != 404, timeout=30, what="a route")
    except AssertionError:
        pytest.fail(routing_state(real_node, namespace))
    assert page(real_node, host).status_code == 401
    secret = k8s.CoreV1Api(api).read_namespaced_secret("preview-basic-auth", namespace).data
    credentials = tuple(base64.b64decode(secret[key]).decode() for key in ("username", "password"))
    assert page(real_node, host, auth=(credentials[0], "wrong")).status_code == 401
    try:
        answer = eventually(
            lambda: (found := page(real_node, host, auth=credentials)).status_code != 503 and found,
            timeout=30,
            what="Traefik to know the app's endpoints",
        )
    except AssertionError:
        pytest.fail(routing_state(real_node, namespace))
    assert answer.status_code == 200 and answer.text == f"commit {sha1}\nhello reviewers\n"

    # A push: the same address serves the new commit.
    sha2 = repo.commit("feature/page", {"site/message.txt": "second version\n"}, "Reword")
    assert success_status(repo, sha2, real_node)["target_url"] == status["target_url"]
    eventually(
        lambda: page(real_node, host, auth=credentials).text == f"commit {sha2}\nsecond version\n",
        timeout=60,
        what="the page of the second commit",
    )

    # Closed: the namespace goes, and the host is no longer routed.
    repo.close_pr(number)
    eventually(lambda: namespace_gone(api, namespace), timeout=180, what="namespace deleted after close")
    eventually(lambda: page(real_node, host).status_code == 404, timeout=30, what="host answers 404")
