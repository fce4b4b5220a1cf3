def test_healthz_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_checks_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready"}


def test_readyz_names_an_unreachable_database(settings, tmp_path):
    from app import create_app

    broken = settings.replace(database_url="postgresql://nobody@127.0.0.1:1/none")
    response = create_app(broken).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "failing": ["database"]}
