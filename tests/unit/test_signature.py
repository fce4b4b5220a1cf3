import hashlib
import hmac

from app.domain.signature import sign, signature_matches

BODY = b'{"ref":"refs/heads/task/x"}'


def test_sign_is_lowercase_hex_hmac_sha256_of_the_raw_body():
    expected = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", BODY) == expected
    assert expected == expected.lower()
    assert len(expected) == 64


def test_matches_only_the_right_signature():
    good = sign("s3cret", BODY)
    assert signature_matches("s3cret", BODY, good)
    assert signature_matches("s3cret", BODY, good.upper())  # hex is case-insensitive
    assert not signature_matches("other", BODY, good)
    assert not signature_matches("s3cret", BODY + b" ", good)
    assert not signature_matches("s3cret", BODY, "sha256=" + good)
    assert not signature_matches("s3cret", BODY, "")
    assert not signature_matches("s3cret", BODY, None)
