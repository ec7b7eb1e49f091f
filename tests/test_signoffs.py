"""Sign-offs: canonical hashing, sealing, verification (what changed, where the chain breaks),
the platform key file, and the ClickHouse round trip on real chDB with an edit made behind the
API's back."""

from __future__ import annotations

import hashlib
import re
import stat
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from streamguard.domain.signoffs import (
    Channel,
    FieldChange,
    Leg,
    PlatformSigner,
    ProxyIdentity,
    SealedSignOff,
    SignerType,
    SignOffRecord,
    Verification,
    canonical_json,
    proxy_identity,
    record_hash,
    seal,
    verify,
)
from streamguard.store import Migration, Store, open_store
from streamguard.store.migrations import render
from streamguard.store.signoffs import (
    SIGNOFF_RETENTION_DAYS,
    SIGNOFFS_DDL,
    StoredSignOffError,
    from_row,
    insert_signoffs,
    signoff_by_id,
    signoffs_of_order,
    to_row,
)

SALT = b"test-salt-0123456789abcdef"
DOCUMENT = "110105194912310021"
T0 = 1_795_352_700_000


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def signer() -> PlatformSigner:
    return PlatformSigner.generate()


def first_record(order: str = "R-1", **changes: Any) -> SignOffRecord:
    """The depot's inbound sign-off: index 0 of the order's chain."""
    fields: dict[str, Any] = {
        "id": f"{order}-S0",
        "order": order,
        "leg": Leg.INBOUND,
        "index": 0,
        "prev_hash": "",
        "signer_name": "Wang Wei",
        "signer_type": SignerType.DEPOT_STAFF,
        "staff_id": "D-17",
        "ts_ms": T0,
        "channel": Channel.API,
        "content_sha256": digest("order content v1"),
    }
    return SignOffRecord(**(fields | changes))


def full_record(prev: SealedSignOff, **changes: Any) -> SignOffRecord:
    """A return-leg sign-off with every field filled, so each can be edited on its own."""
    fields: dict[str, Any] = {
        "id": f"{prev.record.order}-S{prev.record.index + 1}",
        "order": prev.record.order,
        "leg": Leg.RETURN,
        "index": prev.record.index + 1,
        "prev_hash": prev.hash,
        "signer_name": "Alice",
        "signer_type": SignerType.PROXY,
        "proxy": proxy_identity("Li Na", "resident_id", DOCUMENT, "neighbour", SALT),
        "staff_id": "C-204",
        "ts_ms": T0 + 86_400_000,
        "region": "310104",
        "lat": "31.230416",
        "lon": "121.473701",
        "channel": Channel.CARRIER_SCAN,
        "carrier": "SF",
        "shipment": "SF1234567890",
        "signature_image_sha256": digest("signature.png"),
        "photo_sha256": (digest("door.jpg"), digest("parcel.jpg")),
        "content_sha256": digest("order content v1"),
    }
    return SignOffRecord(**(fields | changes))


def passed(v: Verification) -> set[str]:
    """The checks that passed, as a set of field names (``valid`` among them)."""
    return {name for name in ("valid", "hash_ok", "signature_ok", "chain_ok") if getattr(v, name)}


def chain(signer: PlatformSigner, order: str = "R-1", n: int = 3) -> list[SealedSignOff]:
    sealed = [seal(first_record(order), signer)]
    while len(sealed) < n:
        sealed.append(seal(full_record(sealed[-1]), signer))
    return sealed


def edited(sealed: SealedSignOff, **changes: Any) -> SealedSignOff:
    """``sealed`` as a database edit leaves it: record changed, hash and signature kept."""
    return msgspec.structs.replace(sealed, record=msgspec.structs.replace(sealed.record, **changes))


# ---- canonical encoding ----------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8() -> None:
    value = {"b": [1, True, None], "a": {"y": "€", "x": Decimal("12.50")}, "c": Leg.RETURN}
    expected = '{"a":{"x":"12.5","y":"€"},"b":[1,true,null],"c":"return"}'.encode()
    assert canonical_json(value) == expected
    reordered = {"c": Leg.RETURN, "a": {"x": Decimal("12.5"), "y": "€"}, "b": (1, True, None)}
    assert canonical_json(reordered) == expected


def test_canonical_json_of_a_struct_has_every_field() -> None:
    proxy = proxy_identity("Li Na", "passport", "E12345678", "spouse", SALT)
    text = canonical_json(proxy).decode()
    assert text.startswith('{"document_hash":"')
    assert text.endswith('"relationship":"spouse"}')
    record = first_record()
    assert msgspec.json.decode(canonical_json(record))["proxy"] is None
    assert canonical_json(record) == canonical_json(msgspec.structs.replace(record))


def test_record_hash_is_stable() -> None:
    # Stored sign-offs are verified for years: the encoding of a record must never drift.
    expected = (
        '{"carrier":null,"channel":"api","content_sha256":"' + digest("order content v1") + '",'
        '"id":"R-1-S0","index":0,"lat":null,"leg":"inbound","lon":null,"order":"R-1",'
        '"photo_sha256":[],"prev_hash":"","proxy":null,"region":null,"shipment":null,'
        '"signature_image_sha256":null,"signer_name":"Wang Wei","signer_type":"depot_staff",'
        '"staff_id":"D-17","ts_ms":1795352700000}'
    )
    assert canonical_json(first_record()) == expected.encode()
    assert record_hash(first_record()) == (
        "d3ca51782c050248c728cfb31f4a3f6fb88c8024bbf8148bca5ae480ea1dc775"
    )


@pytest.mark.parametrize(
    ("value", "where"),
    [(1.5, "$"), ({"lat": 31.2}, "$.lat"), ({"a": [Decimal(1), 0.1]}, "$.a[1]")],
)
def test_canonical_json_rejects_floats(value: Any, where: str) -> None:
    with pytest.raises(TypeError, match=rf"float .* at {re.escape(where)} is not allowed"):
        canonical_json(value)


def test_canonical_json_decimals_and_keys() -> None:
    assert canonical_json([Decimal("100"), Decimal("1E+2"), Decimal("0.00"), Decimal("-0")]) == (
        b'["100","100","0","0"]'
    )
    with pytest.raises(ValueError, match="not a finite decimal"):
        canonical_json(Decimal("NaN"))
    with pytest.raises(TypeError, match="key 1 at \\$ is not a string"):
        canonical_json({1: "a"})


# ---- the record ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"staff_id": None}, "depot_staff sign-off needs staff_id"),
        ({"signer_type": SignerType.PROXY}, "proxy sign-off needs the proxy's identity"),
        ({"content_sha256": "ABC"}, "content_sha256 must be 64 lowercase hex"),
        ({"prev_hash": digest("x")}, "index 0\\) has prev_hash ''"),
        ({"lat": "31.2"}, "lat and lon go together"),
        ({"lat": "91", "lon": "0"}, "lat must be a decimal string within ±90"),
        ({"channel": Channel.CARRIER_API}, "needs the carrier's code"),
        ({"photo_sha256": ("nope",)}, "photo_sha256\\[0\\] must be 64"),
    ],
)
def test_invalid_records_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        first_record(**changes)


def test_proxy_document_number_is_never_kept(signer: PlatformSigner) -> None:
    first = seal(first_record(), signer)
    sealed = seal(full_record(first), signer)
    proxy = sealed.record.proxy
    assert proxy is not None
    assert proxy.document_last4 == "0021"
    assert proxy.document_hash == hashlib.sha256(SALT + DOCUMENT.encode()).hexdigest()
    assert DOCUMENT.encode() not in msgspec.json.encode(sealed)
    assert DOCUMENT not in repr(to_row(sealed))
    # The same document typed with spaces and a lower-case check letter is the same hash.
    spaced = proxy_identity("Li Na", "resident_id", "1101 0519 4912 3100 2x", "x", SALT)
    upper = proxy_identity("Li Na", "resident_id", "11010519491231002X", "x", SALT)
    assert spaced.document_hash == upper.document_hash
    with pytest.raises(ValueError, match="at least 16 bytes"):
        proxy_identity("Li Na", "resident_id", DOCUMENT, "x", b"short")


# ---- seal and verify -------------------------------------------------------------------------


def test_sealed_chain_verifies(signer: PlatformSigner) -> None:
    sealed = chain(signer)
    for i, s in enumerate(sealed):
        v = verify(s, signer=signer, previous=sealed[i - 1] if i else None, original=s)
        assert passed(v) == {"valid", "hash_ok", "signature_ok", "chain_ok"}
        assert (v.changes, v.problems) == ([], [])
    decoded = msgspec.json.decode(msgspec.json.encode(sealed[2]), type=SealedSignOff)
    assert decoded == sealed[2]


# Every field of the record (the proxy by field) -> an edit of it that is itself a valid record.
EDITS: dict[str, dict[str, Any]] = {
    "id": {"id": "R-1-S9"},
    "order": {"order": "R-2"},
    "leg": {"leg": Leg.INBOUND},
    "index": {"index": 7},
    "prev_hash": {"prev_hash": digest("another record")},
    "signer_name": {"signer_name": "Mallory"},
    "signer_type": {"signer_type": SignerType.SELF, "proxy": None},
    "proxy.name": {"proxy.name": "Zhang San"},
    "proxy.document_type": {"proxy.document_type": "passport"},
    "proxy.document_hash": {"proxy.document_hash": digest("E99999999")},
    "proxy.document_last4": {"proxy.document_last4": "9999"},
    "proxy.relationship": {"proxy.relationship": "stranger"},
    "staff_id": {"staff_id": "C-999"},
    "ts_ms": {"ts_ms": T0 + 1},
    "region": {"region": "650102"},
    "lat": {"lat": "31.230417"},
    "lon": {"lon": "121.4737"},
    "channel": {"channel": Channel.CARRIER_API},
    "carrier": {"carrier": "YTO"},
    "shipment": {"shipment": "SF0000000000"},
    "signature_image_sha256": {"signature_image_sha256": digest("forged.png")},
    "photo_sha256": {"photo_sha256": (digest("door.jpg"),)},
    "content_sha256": {"content_sha256": digest("order content v2")},
}


def apply_edit(record: SignOffRecord, edit: dict[str, Any]) -> SignOffRecord:
    plain = {k: v for k, v in edit.items() if not k.startswith("proxy.")}
    nested = {k.removeprefix("proxy."): v for k, v in edit.items() if k.startswith("proxy.")}
    if nested:
        assert record.proxy is not None
        plain["proxy"] = msgspec.structs.replace(record.proxy, **nested)
    return msgspec.structs.replace(record, **plain)


def test_edits_cover_every_field() -> None:
    fields = set(SignOffRecord.__struct_fields__) - {"proxy"}
    fields |= {f"proxy.{f}" for f in ProxyIdentity.__struct_fields__}
    assert set(EDITS) == fields


@pytest.mark.parametrize("field", list(EDITS))
def test_each_edited_field_is_detected_and_named(signer: PlatformSigner, field: str) -> None:
    first, original = chain(signer, n=2)
    stored = msgspec.structs.replace(original, record=apply_edit(original.record, EDITS[field]))
    v = verify(stored, signer=signer, previous=first, original=original)
    # The hash no longer matches; edits of the link fields also break the chain.
    links = field in {"order", "index", "prev_hash"}
    assert passed(v) == ({"signature_ok"} if links else {"signature_ok", "chain_ok"})
    named = {c.field for c in v.changes}
    # Dropping the proxy identity (signer_type self) is reported as the proxy as a whole.
    assert named == ({"signer_type", "proxy"} if field == "signer_type" else {field})
    change = next(c for c in v.changes if c.field == field)
    assert change.stored != change.signed
    assert f"field {field} was changed: stored {change.stored!r}" in "\n".join(v.problems)
    # Without the kept copy the edit is still caught, by the hash.
    alone = verify(stored, signer=signer, previous=first)
    assert passed(alone) == passed(v)
    assert not alone.changes
    assert any("the stored hash does not match the record" in p for p in alone.problems)


def test_edited_name_reads_as_a_sentence(signer: PlatformSigner) -> None:
    first, original = chain(signer, n=2)
    v = verify(
        edited(original, signer_name="Bob"), signer=signer, previous=first, original=original
    )
    assert v.changes == [FieldChange("signer_name", "Bob", "Alice")]
    assert "field signer_name was changed: stored 'Bob', signed 'Alice'" in v.problems


def test_edited_hash_signature_and_foreign_key(signer: PlatformSigner) -> None:
    first, original = chain(signer, n=2)
    # Record edited and its hash recomputed: only the platform's key could re-sign it.
    rehashed_record = apply_edit(original.record, {"signer_name": "Mallory"})
    rehashed = msgspec.structs.replace(
        original, record=rehashed_record, hash=record_hash(rehashed_record)
    )
    v = verify(rehashed, signer=signer, previous=first, original=original)
    assert passed(v) == {"hash_ok", "chain_ok"}
    assert {c.field for c in v.changes} == {"signer_name", "hash"}
    assert "the signature does not verify" in v.problems

    v = verify(msgspec.structs.replace(original, hash=first.hash), signer=signer, previous=first)
    assert passed(v) == {"chain_ok"}

    forged_sig = msgspec.structs.replace(original, signature=first.signature)
    v = verify(forged_sig, signer=signer, previous=first, original=original)
    assert passed(v) == {"hash_ok", "chain_ok"}
    assert [c.field for c in v.changes] == ["signature"]

    other = PlatformSigner.generate()
    foreign = seal(original.record, other)
    v = verify(foreign, signer=signer, previous=first)
    assert passed(v) == {"hash_ok", "chain_ok"}
    assert f"key {other.key_id!r}, not this platform's key {signer.key_id!r}" in v.problems[0]
    # A kept copy that does not verify itself is not trusted to name fields.
    v = verify(original, signer=signer, previous=first, original=foreign)
    assert passed(v) == {"hash_ok", "signature_ok", "chain_ok"}
    assert not v.changes
    assert "does not verify itself" in v.problems[0]


def test_chain_breaks_are_detected(signer: PlatformSigner) -> None:
    s0, s1, s2 = chain(signer)
    # A validly sealed record that links to the wrong predecessor.
    wrong_link = seal(msgspec.structs.replace(s2.record, prev_hash=s0.hash), signer)
    v = verify(wrong_link, signer=signer, previous=s1)
    assert passed(v) == {"hash_ok", "signature_ok"}
    assert v.problems == ["prev_hash does not match the previous sign-off's hash"]
    # The middle record deleted: the next one's predecessor is now s0.
    v = verify(s2, signer=signer, previous=s0)
    assert not v.chain_ok
    assert "prev_hash does not match the previous sign-off's hash" in v.problems
    assert "index 2 does not follow the previous sign-off's index 0" in v.problems[1]
    # Everything before it deleted.
    v = verify(s1, signer=signer, previous=None)
    assert passed(v) == {"hash_ok", "signature_ok"}
    assert "has no previous sign-off" in v.problems[0]
    # The predecessor edited and re-hashed: its hash no longer matches the link.
    s0_edited = msgspec.structs.replace(s0, hash=record_hash(first_record(signer_name="Eve")))
    assert not verify(s1, signer=signer, previous=s0_edited).chain_ok


# ---- the platform key ------------------------------------------------------------------------


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signoff.pem"
    created = PlatformSigner.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [p.name for p in path.parent.iterdir()] == ["signoff.pem"]
    again = PlatformSigner.load_or_create(path)
    assert again.key_id == created.key_id
    assert len(created.key_id) == 16
    h = digest("record")
    assert again.verify(h, created.sign(h), created.key_id)
    assert not again.verify(digest("other"), created.sign(h), created.key_id)
    assert not again.verify(h, "zz", created.key_id)
    assert again.public_key_pem().startswith("-----BEGIN PUBLIC KEY-----")


def test_key_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        PlatformSigner.load_or_create(path)


# ---- ClickHouse ------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"chdb://{tmp_path / 'ch'}") as s:
        # As the lead's migration will: rendered with the events' retention, then run.
        for statement in render(Migration(99, "signoffs", (SIGNOFFS_DDL,)), 30):
            s.rows(statement)
            s.rows(statement)
        yield s


def test_row_mapping_is_lossless(signer: PlatformSigner) -> None:
    for sealed in chain(signer):
        assert from_row(to_row(sealed)) == sealed
    assert to_row(chain(signer, n=1)[0])["proxy_name"] is None


def test_signoffs_are_never_expired(store: Store) -> None:
    assert SIGNOFF_RETENTION_DAYS >= 1095
    ddl = store.rows("SHOW CREATE TABLE signoffs")[0][0]
    assert "TTL" not in ddl


def test_clickhouse_round_trip_and_an_edit_behind_the_apis_back(
    store: Store, signer: PlatformSigner
) -> None:
    sealed = chain(signer, "R-7")
    insert_signoffs(store, sealed, "signoffs:R-7:1")
    insert_signoffs(store, sealed, "signoffs:R-7:1")
    insert_signoffs(store, chain(signer, "R-8", n=1), "signoffs:R-8:1")
    assert signoffs_of_order(store, "R-7") == sealed
    assert signoff_by_id(store, "R-7-S1") == sealed[1]
    assert signoff_by_id(store, "nope") is None

    store.rows(
        "ALTER TABLE signoffs UPDATE signer_name = 'Mallory' WHERE id = {id:String} "
        "SETTINGS mutations_sync = 2",
        {"id": "R-7-S1"},
    )
    stored = signoff_by_id(store, "R-7-S1")
    assert stored is not None
    assert stored.record.signer_name == "Mallory"
    v = verify(stored, signer=signer, previous=sealed[0], original=sealed[1])
    assert passed(v) == {"signature_ok", "chain_ok"}
    assert v.changes == [FieldChange("signer_name", "Mallory", "Alice")]
    assert "field signer_name was changed: stored 'Mallory', signed 'Alice'" in v.problems
    # The later record still links to the signed hash, which the edit did not touch.
    after = signoffs_of_order(store, "R-7")
    assert verify(after[2], signer=signer, previous=after[1], original=sealed[2]).valid


def test_a_row_edited_into_nonsense_is_reported(store: Store, signer: PlatformSigner) -> None:
    insert_signoffs(store, chain(signer, "R-9", n=1), "signoffs:R-9:1")
    store.rows(
        "ALTER TABLE signoffs UPDATE signer_type = 'ghost' WHERE id = 'R-9-S0' "
        "SETTINGS mutations_sync = 2"
    )
    with pytest.raises(StoredSignOffError, match="'R-9-S0' in signoffs is not a valid") as e:
        signoff_by_id(store, "R-9-S0")
    assert e.value.signoff_id == "R-9-S0"
