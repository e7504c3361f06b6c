"""Field encryption and blind indexes (portal.crypto): sealing, binding, tampering, key rings."""

from __future__ import annotations

import base64

import pytest

from portal.crypto import (
    KeyringError,
    SealError,
    blind_candidates,
    blind_index,
    is_sealed,
    new_key,
    normalise,
    parse_keyring,
    seal,
    sealed_key_id,
    unseal,
)

K1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
K2 = "k2:" + base64.b64encode(bytes(range(32, 64))).decode()


def test_a_sealed_value_opens_to_the_plaintext_and_hides_it():
    ring = parse_keyring(K1)
    sealed = seal(ring, "li.wei@example.com", "shop_order.customer_email")
    assert sealed.startswith("k1:") and "li.wei" not in sealed and is_sealed(sealed)
    assert unseal(ring, sealed, "shop_order.customer_email") == "li.wei@example.com"
    # A fresh nonce each time: equal plaintexts do not give equal ciphertexts.
    assert seal(ring, "li.wei@example.com", "shop_order.customer_email") != sealed


def test_a_value_copied_into_another_column_does_not_open():
    ring = parse_keyring(K1)
    sealed = seal(ring, "+86 138 0000 0001", "shop_order.customer_phone")
    with pytest.raises(SealError):
        unseal(ring, sealed, "shop_order.customer_email")


def test_an_altered_value_does_not_open():
    ring = parse_keyring(K1)
    sealed = seal(ring, "Wang Fang", "shop_order.customer_name")
    key_id, body = sealed.split(":", 1)
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(SealError):
        unseal(ring, f"{key_id}:{base64.b64encode(bytes(raw)).decode()}", "shop_order.customer_name")


def test_old_keys_open_what_they_sealed_and_new_values_use_the_first_key():
    old = parse_keyring(K1)
    sealed_before = seal(old, "200001", "shop_order.customer_postcode")
    ring = parse_keyring(f"{K2},{K1}")
    assert ring.current.id == "k2"
    assert unseal(ring, sealed_before, "shop_order.customer_postcode") == "200001"
    assert sealed_key_id(seal(ring, "200001", "shop_order.customer_postcode")) == "k2"
    with pytest.raises(SealError, match="not in the data key"):
        unseal(parse_keyring(K2), sealed_before, "shop_order.customer_postcode")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("justbase64", "ID:BASE64KEY"),
        ("k1:not base64!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "32 bytes"),
        (f"{K1},{K1}", "twice"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "ID:BASE64KEY"),
    ],
)
def test_a_bad_key_ring_is_refused_without_showing_the_key(text, problem):
    with pytest.raises(KeyringError, match=problem) as caught:
        parse_keyring(text)
    if ":" in text:
        assert text.split(":", 1)[1][:12] not in str(caught.value)


def test_a_new_key_is_a_usable_ring_item():
    item = new_key("k9")
    ring = parse_keyring(item)
    assert ring.current.id == "k9"
    assert parse_keyring(new_key()).current.id.startswith("k")
    with pytest.raises(KeyringError):
        new_key("no spaces")


@pytest.mark.parametrize(
    ("kind", "a", "b"),
    [
        ("email", " Li.Wei@Example.com ", "li.wei@example.com"),
        ("phone", "+86 138-0000-0001", "8613800000001"),
        ("phone", "0086 138 0000 0001", "+86 13800000001"),
        ("postcode", "sw1a 1aa", "SW1A1AA"),
        ("name", "  Wang   FANG ", "wang fang"),
    ],
)
def test_spellings_of_one_value_share_a_blind_index(kind, a, b):
    ring = parse_keyring(K1)
    assert normalise(kind, a) == normalise(kind, b)
    assert blind_index(ring, kind, a) == blind_index(ring, kind, b)


def test_blind_indexes_are_keyed_and_separate_per_kind():
    one, two = parse_keyring(K1), parse_keyring(K2)
    assert blind_index(one, "email", "a@example.com") != blind_index(two, "email", "a@example.com")
    assert blind_index(one, "name", "200001") != blind_index(one, "postcode", "200001")
    assert blind_index(one, "email", None) is None and blind_index(one, "phone", " - ") is None
    # A lookup computes one candidate per key of the ring, whatever was typed.
    both = parse_keyring(f"{K2},{K1}")
    assert blind_candidates(both, "email", "a@example.com") == [
        blind_index(two, "email", "a@example.com"),
        blind_index(one, "email", "a@example.com"),
    ]
    assert len(blind_candidates(both, "email", "")) == 2


def test_sql_comparisons_on_an_encrypted_column_are_refused_with_a_pointer_to_the_blind_index():
    from sqlalchemy import select

    from portal.db.models import Order, ReturnLine

    with pytest.raises(TypeError, match="customer_email_bidx"):
        select(Order.id).where(Order.customer_email == "li.wei@example.com")
    with pytest.raises(TypeError, match="encrypted"):
        select(ReturnLine.id).where(ReturnLine.comment.contains("call me"))
    # Testing for no value stays possible.
    assert "IS NULL" in str(select(Order.id).where(Order.customer_phone.is_(None), Order.customer_email == None))  # noqa: E711
