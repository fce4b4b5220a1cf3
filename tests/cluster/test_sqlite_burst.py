"""The default `make run` configuration (SQLite, a web and two workers, a scheduler) under a
burst of deliveries: every transaction that writes takes SQLite's write lock first and waits
for it, so no delivery is answered with a server error while the workers write."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.db import database
from app.domain.states import DeliveryOutcome
from app.models import WebhookDelivery
from tests.testbed.factories import payload, webhook_request, with_changes
from tests.testbed.helpers import register, service_env
from tests.testbed.kube.waiting import eventually
from tests.testbed.servers import free_port
from tests.testbed.service_processes import service_processes

pytestmark = [pytest.mark.kube, pytest.mark.slow]

BURST = 200


@pytest.fixture
def database_url(tmp_path):
    return f"sqlite:///{tmp_path}/preview.db"


def opened(number: int) -> dict:
    sha = f"{number:040x}"
    return with_changes(
        payload("pull_request_opened"),
        **{"number": number, "pull_request.number": number, "pull_request.head.sha": sha},
    )


def test_a_burst_of_deliveries_on_sqlite_gets_no_server_error(app, kube_settings, kube_api, tmp_path):
    port = free_port()
    # A cap keeps the cluster's work small; the workers still write for every delivery.
    env = service_env(kube_settings, port, MAX_ACTIVE_PREVIEWS="3")
    register("acme/shop")
    with service_processes(env, tmp_path, port, workers=2):
        url = f"http://127.0.0.1:{port}/webhooks/gitea"

        def send(number: int) -> int:
            return requests.post(url, timeout=30, **webhook_request(opened(number), "pull_request")).status_code

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(1, BURST + 1)))
        assert [code for code in answers if code >= 500] == []
        assert answers.count(202) == BURST

        def all_processed() -> bool:
            with database.connection_context():
                accepted = WebhookDelivery.select().where(WebhookDelivery.outcome == DeliveryOutcome.ACCEPTED)
                return accepted.count() == BURST and not accepted.where(WebhookDelivery.processed_at.is_null()).exists()

        eventually(all_processed, timeout=300, interval=2, what="every delivery carried out")
