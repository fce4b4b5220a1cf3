"""Sessions at rest in Redis are sealed with a key from PREVIEW_SESSION_SECRET."""

from app.domain.sealing import Sealer

SECRET = "s" * 40


def test_a_sealed_record_opens_with_its_key_only():
    sealer = Sealer(SECRET, "preview")
    sealed = sealer.seal({"login": "ana", "token": "gitea-oauth-token-1234"})
    assert b"gitea-oauth-token-1234" not in sealed
    assert b"ana" not in sealed
    assert sealer.open(sealed) == {"login": "ana", "token": "gitea-oauth-token-1234"}
    assert Sealer(SECRET, "dashboard").open(sealed) is None  # another purpose
    assert Sealer("t" * 40, "preview").open(sealed) is None  # another secret


def test_a_record_someone_wrote_into_redis_is_refused():
    sealer = Sealer(SECRET, "preview")
    assert sealer.open(b'{"login": "admin", "token": "x"}') is None
    sealed = bytearray(sealer.seal({"login": "ana"}))
    sealed[20] ^= 1
    assert sealer.open(bytes(sealed)) is None
    assert sealer.open(None) is None
