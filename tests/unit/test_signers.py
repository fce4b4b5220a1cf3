"""The webhook secrets each web process keeps in memory: a new or rotated secret is heard at
once, the database is not read for every delivery, and a flood of bad signatures cannot make
it read the secrets more than twice a second."""

import hashlib
import hmac

from app.usecases.intake.signers import Signer, Signers

BODY = b'{"repository": {"full_name": "acme/shop"}}'


def signed(secret: str, body: bytes = BODY) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Registry:
    """The registered repositories as the database would answer, counting the reads."""

    def __init__(self, *signers: Signer) -> None:
        self.signers = list(signers)
        self.reads = 0

    def __call__(self) -> list[Signer]:
        self.reads += 1
        return list(self.signers)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


SHOP = Signer(repository_id=1, full_name="acme/shop", gitea_id=41, secret="shop-secret")


def make(registry: Registry, clock: Clock, shared: str | None = None) -> Signers:
    return Signers(shared, max_age=5.0, reread_after=0.5, load=registry, clock=clock)


def test_a_registered_repositorys_own_secret_verifies_and_is_read_once_a_while():
    registry, clock = Registry(SHOP), Clock()
    signers = make(registry, clock)
    for _ in range(3):
        verdict = signers.verify("acme/shop", None, BODY, signed("shop-secret"))
        assert (verdict.signer, verdict.verified) == (SHOP, True)
    assert registry.reads == 1
    clock.now += 6
    assert signers.verify("ACME/Shop", None, BODY, signed("shop-secret")).verified  # Gitea's names ignore case
    assert registry.reads == 2


def test_a_repository_registered_after_the_last_read_is_heard_at_once():
    registry, clock = Registry(), Clock()
    signers = make(registry, clock, shared="shared")
    assert signers.verify("acme/shop", None, BODY, signed("shared")).verified
    registry.signers.append(SHOP)
    clock.now += 1
    assert signers.verify("acme/shop", None, BODY, signed("shop-secret")).verified
    # From then on the shared secret does not speak for it. (Until that read it still could, for
    # up to max_age: the worker verifies again before planning; tests/integration/test_webhooks.py.)
    assert not signers.verify("acme/shop", None, BODY, signed("shared")).verified


def test_bad_signatures_read_the_secrets_again_at_most_twice_a_second():
    registry, clock = Registry(SHOP), Clock()
    signers = make(registry, clock)
    for _ in range(100):
        assert not signers.verify("acme/shop", None, BODY, signed("guess")).verified
        clock.now += 0.01
    assert registry.reads == 2  # the first read, and one more once half a second had passed


def test_a_rotated_secret_is_noticed_on_the_first_delivery_signed_with_it():
    registry, clock = Registry(SHOP), Clock()
    signers = make(registry, clock)
    assert signers.verify("acme/shop", None, BODY, signed("shop-secret")).verified
    registry.signers = [Signer(1, "acme/shop", 41, "rotated-secret")]
    clock.now += 1
    assert signers.verify("acme/shop", None, BODY, signed("rotated-secret")).verified


def test_a_renamed_repository_is_found_by_giteas_id():
    signers = make(Registry(SHOP), Clock(), shared="shared")
    verdict = signers.verify("acme/store", 41, BODY, signed("shop-secret"))
    assert (verdict.signer, verdict.verified) == (SHOP, True)
    assert not signers.verify("acme/store", 41, BODY, signed("shared")).verified


def test_without_a_shared_secret_an_unregistered_repository_has_no_secret_to_check():
    verdict = make(Registry(SHOP), Clock()).verify("acme/blog", None, BODY, signed("anything"))
    assert (verdict.signer, verdict.secret_known, verdict.verified) == (None, False, False)
