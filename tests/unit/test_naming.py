import re

from hypothesis import given
from hypothesis import strategies as st

from app.domain.naming import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    IMAGE_TAG,
    LABEL_VALUE,
    SLUG_MAX,
    dns1035,
    image_repository,
    label_value,
    preview_names,
    registry_secret,
    short_hash,
    slug,
)

branches = st.text(min_size=1, max_size=255)
SHA = "0123456789abcdef0123456789abcdef01234567"


@given(branches)
def test_slug_is_a_dns_label_within_the_cap(branch):
    result = slug(branch)
    assert DNS1123_LABEL.fullmatch(result), result
    assert len(result) <= SLUG_MAX


@given(branches)
def test_slug_is_stable(branch):
    assert slug(branch) == slug(branch)


@given(branches, branches)
def test_different_raw_values_never_share_a_slug(a, b):
    if a != b:
        assert slug(a) != slug(b)


def test_names_differing_only_in_case_or_punctuation_differ():
    variants = ["Feature/Login", "feature/login", "feature-login", "feature_login", "feature.login", "feature//login"]
    assert len({slug(v) for v in variants}) == len(variants)
    assert all(s.startswith("feature-login-") for s in map(slug, variants))


def test_unicode_is_folded_and_non_latin_falls_back_to_the_hash():
    assert slug("task/café-ünïcode").startswith("task-cafe-unicode-")
    only_hash = slug("日本語")
    assert re.fullmatch(r"[0-9a-f]{16}", only_hash)


def test_leading_digits_and_dashes():
    assert slug("--9lives").startswith("9lives-")
    assert DNS1035_LABEL.fullmatch(dns1035("9lives"))
    assert dns1035("9lives") == "app-9lives"
    assert dns1035("---") == "app"


@given(branches)
def test_dns1035_starts_with_a_letter(text):
    assert DNS1035_LABEL.fullmatch(dns1035(text))


@given(branches)
def test_label_values_are_valid(text):
    value = label_value(text)
    assert LABEL_VALUE.fullmatch(value)
    assert len(value) <= 63
    assert "/" not in value


@given(st.text(min_size=1, max_size=100), branches, st.one_of(st.none(), st.integers(1, 10**9)))
def test_every_preview_name_fits_its_kubernetes_limit(repo, branch, number):
    repository = f"owner/{repo}"
    target = f"{repository}#{number}" if number else f"{repository}@{branch}"
    names = preview_names(repository, target, number, branch, "preview.example.com")
    assert DNS1123_LABEL.fullmatch(names.namespace)
    assert len(names.namespace) <= 63
    assert DNS1035_LABEL.fullmatch(names.app)
    assert len(names.app) <= 63
    assert all(DNS1123_LABEL.fullmatch(label) and len(label) <= 63 for label in names.host.split("."))
    job = names.build_job(SHA)
    assert DNS1123_LABEL.fullmatch(job)
    assert len(job) <= 63
    assert IMAGE_TAG.fullmatch(names.image_tag(SHA))
    assert LABEL_VALUE.fullmatch(names.repository_label)


def test_pr_names_are_keyed_by_number_and_stable_across_branch_renames():
    a = preview_names("acme/shop", "acme/shop#12", 12, "feature/login", "p.example")
    b = preview_names("acme/shop", "acme/shop#12", 12, "refs/pull/12/head", "p.example")
    assert a == b
    assert a.namespace.startswith("preview-shop-pr-12-")
    assert a.host == f"{a.slug}.p.example"
    assert a.app == "shop-preview"


def test_two_prs_whose_branches_slug_the_same_get_distinct_names():
    one = preview_names("acme/shop", "acme/shop@task/A", None, "task/A", "p.example")
    two = preview_names("acme/shop", "acme/shop@task/a", None, "task/a", "p.example")
    assert one.namespace != two.namespace
    assert one.host != two.host


def test_image_repository_is_lowercase_and_its_own():
    path = image_repository("registry.local:5000/", "Acme/Shop_App")
    assert path == f"registry.local:5000/acme/shop-app-{short_hash('acme/shop_app')}"
    assert image_repository("r", "acme/shop") == image_repository("r", "ACME/Shop")  # Gitea ignores case
    # Readable forms that agree still push to different paths (and caches).
    assert image_repository("r", "a.b/c") != image_repository("r", "a-b/c")


def test_each_repository_names_its_own_registry_secret():
    assert registry_secret("Acme/Shop") == f"registry-credentials-acme-shop-{short_hash('acme/shop')}"
    assert registry_secret("a.b/c") != registry_secret("a-b/c")
    assert DNS1123_LABEL.fullmatch(registry_secret("o/" + "n" * 100))


def test_targets_that_share_the_readable_part_never_share_names():
    # Same readable text ("shop-feature-a-b"), different raw branch names: the 64-bit hash tells them apart.
    first = preview_names("acme/shop", "acme/shop@feature/a-b", None, "feature/a-b", "preview.test")
    second = preview_names("acme/shop", "acme/shop@feature/a_b", None, "feature/a_b", "preview.test")
    assert first.slug.rsplit("-", 1)[0] == second.slug.rsplit("-", 1)[0]
    assert first.namespace != second.namespace
    assert first.host != second.host
    assert len(first.slug.rsplit("-", 1)[1]) == 16  # 64 bits of sha256
