"""Sign-offs (electronic proof of delivery): records that prove who took a device, and when.

A reliable electronic signature must identify the signer, be bound to the content it signs, and
make any later change detectable (CONTROL_PLANE.md, "Sign-offs"). So each record is encoded
canonically and hashed, the records of an order are hash-chained (``prev_hash``), and the
platform signs each hash with an Ed25519 key that lives in a file, never in the database: an
edit made in ClickHouse behind the API's back breaks the hash, the signature or the chain, and
:func:`verify` names the changed fields when an independently kept signed copy is at hand.

Pure: stdlib, msgspec and cryptography only, so the API, the bus and the tests share it.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import secrets
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "Channel",
    "FieldChange",
    "Leg",
    "PlatformSigner",
    "ProxyIdentity",
    "SealedSignOff",
    "SignOffRecord",
    "SignerType",
    "Verification",
    "canonical_json",
    "proxy_identity",
    "record_hash",
    "seal",
    "verify",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_COORD = re.compile(r"^-?[0-9]{1,3}(\.[0-9]{1,12})?$")


class SignerType(enum.StrEnum):
    """Who signed: the addressee, someone for them, a parcel locker, or depot staff."""

    SELF = "self"
    PROXY = "proxy"
    LOCKER = "locker"
    DEPOT_STAFF = "depot_staff"


class Leg(enum.StrEnum):
    """Which shipment of the order: customer to depot, or depot back to customer."""

    INBOUND = "inbound"
    RETURN = "return"


class Channel(enum.StrEnum):
    """How the sign-off arrived: our API, a carrier scan carrying a signer, a carrier's call."""

    API = "api"
    CARRIER_SCAN = "carrier_scan"
    CARRIER_API = "carrier_api"


# ---- canonical encoding ----------------------------------------------------------------------


def _plain(value: Any, path: str) -> Any:
    """``value`` as JSON-ready builtins, floats refused: a float's text is not stable across
    encoders, so a hash over it could change with the library that re-encodes it."""
    if isinstance(value, float):
        raise TypeError(
            f"canonical_json: float {value!r} at {path} is not allowed; carry coordinates as "
            "decimal strings and money as strings or Decimal"
        )
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"canonical_json: {value} at {path} is not a finite decimal")
        # Equal amounts encode alike: 1.10 and 1.1 are one value, whichever scale a store keeps.
        return "0" if value == 0 else format(value.normalize(), "f")
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"canonical_json: key {key!r} at {path} is not a string")
            out[key] = _plain(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def canonical_json(obj: Any) -> bytes:
    """One byte string per value, for hashing: JSON with keys sorted, no whitespace, UTF-8 (not
    ``\\u`` escapes), Structs as objects of all their fields, enums as their values, Decimals
    normalized (``1.10`` -> ``"1.1"``). Floats raise :class:`TypeError`."""
    builtins = msgspec.to_builtins(obj, builtin_types=(Decimal,), order="sorted")
    return msgspec.json.encode(_plain(builtins, "$"), order="sorted")


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_hex(value: str | None, what: str) -> None:
    if value is not None and not _HEX64.match(value):
        raise ValueError(f"{what} must be 64 lowercase hex digits (a SHA-256), got {value!r}")


def _check_coordinate(value: str | None, what: str, limit: int) -> None:
    if value is None:
        return
    if not _COORD.match(value) or abs(Decimal(value)) > limit:
        raise ValueError(f"{what} must be a decimal string within ±{limit}, got {value!r}")


# ---- the record ------------------------------------------------------------------------------


class ProxyIdentity(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who signed for the addressee. The document number is kept only as a salted hash and its
    last 4 characters: enough to match a presented document, too little to leak it."""

    name: str
    document_type: str
    document_hash: str
    document_last4: str
    relationship: str

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a proxy needs a name")
        _check_hex(self.document_hash, "proxy.document_hash")
        if not 1 <= len(self.document_last4) <= 4:
            last4 = self.document_last4
            raise ValueError(f"proxy.document_last4 must be 1-4 characters, got {last4!r}")


def proxy_identity(
    name: str, document_type: str, document_number: str, relationship: str, salt: bytes
) -> ProxyIdentity:
    """The proxy's identity as it is kept: the number is normalized (spaces removed, upper
    case, so ``11010519491231002x`` matches ``11010519491231002X``), hashed with ``salt`` and
    dropped. A short salt is refused: ID numbers are guessable, the salt is what stops that."""
    if len(salt) < 16:
        raise ValueError("the proxy document salt must be at least 16 bytes")
    number = "".join(document_number.split()).upper()
    if len(number) <= 4:
        raise ValueError("a document number must be longer than 4 characters")
    return ProxyIdentity(
        name=name,
        document_type=document_type,
        document_hash=_sha256_hex(salt + number.encode("utf-8")),
        document_last4=number[-4:],
        relationship=relationship,
    )


class SignOffRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One sign-off as signed: every field is covered by :func:`record_hash`.

    ``index`` is its 0-based place in the order's chain and ``prev_hash`` the previous record's
    hash ("" for the first); ``content_sha256`` binds it to the order content signed for (the
    caller hashes that with :func:`canonical_json`). ``lat``/``lon`` are decimal strings so the
    text signed is the text stored.
    """

    id: str
    order: str
    leg: Leg
    index: int
    prev_hash: str
    signer_name: str
    signer_type: SignerType
    ts_ms: int
    channel: Channel
    content_sha256: str
    proxy: ProxyIdentity | None = None
    staff_id: str | None = None
    region: str | None = None
    lat: str | None = None
    lon: str | None = None
    carrier: str | None = None
    shipment: str | None = None
    signature_image_sha256: str | None = None
    photo_sha256: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("id", "order", "signer_name"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")
        if self.index < 0:
            raise ValueError(f"index must be 0 or more, got {self.index}")
        if self.index == 0 and self.prev_hash:
            raise ValueError("the first sign-off of an order (index 0) has prev_hash ''")
        if self.index > 0:
            _check_hex(self.prev_hash, "prev_hash")
        if self.ts_ms <= 0:
            raise ValueError(f"ts_ms must be a positive UTC time in ms, got {self.ts_ms}")
        if self.signer_type is SignerType.DEPOT_STAFF and not self.staff_id:
            raise ValueError("a depot_staff sign-off needs staff_id")
        if (self.signer_type is SignerType.PROXY) != (self.proxy is not None):
            raise ValueError("a proxy sign-off needs the proxy's identity, and only it has one")
        if self.channel is not Channel.API and not self.carrier:
            raise ValueError(f"a {self.channel.value} sign-off needs the carrier's code")
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        _check_coordinate(self.lat, "lat", 90)
        _check_coordinate(self.lon, "lon", 180)
        _check_hex(self.content_sha256, "content_sha256")
        _check_hex(self.signature_image_sha256, "signature_image_sha256")
        for i, digest in enumerate(self.photo_sha256):
            _check_hex(digest, f"photo_sha256[{i}]")


def record_hash(record: SignOffRecord) -> str:
    """SHA-256 (hex) of the record's canonical encoding: what the platform signs."""
    return _sha256_hex(canonical_json(record))


# ---- the platform's key ----------------------------------------------------------------------


class PlatformSigner:
    """The platform's Ed25519 key. It is read from a file so that whoever can edit the database
    still cannot re-sign an edited record; records carry only ``key_id`` and the signature."""

    __slots__ = ("_private", "_public", "key_id")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self._public = private_key.public_key()
        raw = self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = _sha256_hex(raw)[:16]

    @classmethod
    def generate(cls) -> PlatformSigner:
        """A fresh key held only in memory (tests, one-off tools)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> PlatformSigner:
        """The key in ``path`` (PEM, PKCS#8), created if missing: mode 0600 in a 0700 parent.

        Creation writes a temporary file and hard-links it into place, which fails rather than
        overwrites when another process got there first; the loser then loads the winner's key,
        so two processes starting together never sign with different keys.
        """
        if not path.exists():
            cls._create(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
        return cls(key)

    @staticmethod
    def _create(path: Path) -> None:
        parent = path.parent
        if not parent.exists():
            parent.mkdir(parents=True, mode=0o700)
            # mkdir's mode is filtered by the umask; the key's directory must be ours alone.
            parent.chmod(0o700)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            # link, unlike rename, never replaces: a key another process just made is kept.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        dir_fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def sign(self, hash_hex: str) -> str:
        """The Ed25519 signature (hex) over the 32 bytes of a SHA-256 given in hex."""
        _check_hex(hash_hex, "the hash to sign")
        return self._private.sign(bytes.fromhex(hash_hex)).hex()

    def verify(self, hash_hex: str, signature: str, key_id: str) -> bool:
        """Whether ``signature`` is this key's signature over ``hash_hex``; a signature made
        with another key (``key_id``) or malformed is simply not valid."""
        if key_id != self.key_id or not _HEX64.match(hash_hex):
            return False
        try:
            self._public.verify(bytes.fromhex(signature), bytes.fromhex(hash_hex))
        except (InvalidSignature, ValueError):
            return False
        return True

    def public_key_pem(self) -> str:
        """The public key (SubjectPublicKeyInfo PEM), for anyone who wants to check a record."""
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")


class SealedSignOff(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A record with its hash and the platform's signature over that hash."""

    record: SignOffRecord
    hash: str
    signature: str
    key_id: str


def seal(record: SignOffRecord, signer: PlatformSigner) -> SealedSignOff:
    """Hash and sign ``record``."""
    digest = record_hash(record)
    return SealedSignOff(
        record=record, hash=digest, signature=signer.sign(digest), key_id=signer.key_id
    )


# ---- verification ----------------------------------------------------------------------------


class FieldChange(msgspec.Struct, frozen=True):
    """One field whose stored value differs from the signed one (``proxy.name``, ``hash``…)."""

    field: str
    stored: Any
    signed: Any


class Verification(msgspec.Struct, kw_only=True):
    """The verdict on a stored sign-off: ``valid`` only when every check passed."""

    valid: bool
    hash_ok: bool
    signature_ok: bool
    chain_ok: bool
    changes: list[FieldChange] = msgspec.field(default_factory=list)
    problems: list[str] = msgspec.field(default_factory=list)


def _differences(stored: Any, signed: Any, path: str) -> list[FieldChange]:
    """Field-by-field differences of two builtins trees; nested objects (the proxy) by field,
    lists (the photos) as a whole."""
    if isinstance(stored, dict) and isinstance(signed, dict):
        changes: list[FieldChange] = []
        for key in dict.fromkeys([*signed, *stored]):
            sub = f"{path}.{key}" if path else key
            changes += _differences(stored.get(key), signed.get(key), sub)
        return changes
    return [] if stored == signed else [FieldChange(path, stored, signed)]


def _sealed_fields(sealed: SealedSignOff) -> dict[str, Any]:
    fields = msgspec.to_builtins(sealed.record)
    fields.update(hash=sealed.hash, signature=sealed.signature, key_id=sealed.key_id)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def _signature_problem(sealed: SealedSignOff, signer: PlatformSigner) -> str:
    if sealed.key_id != signer.key_id:
        return (
            f"the signature was made with key {sealed.key_id!r}, not this platform's key "
            f"{signer.key_id!r}: it cannot be verified"
        )
    return "the signature does not verify"


def _chain_problems(record: SignOffRecord, previous: SealedSignOff | None) -> list[str]:
    if previous is None:
        if record.index == 0 and record.prev_hash == "":
            return []
        return [
            f"sign-off {record.index} of order {record.order} has no previous sign-off: "
            "records are missing from the chain"
        ]
    problems: list[str] = []
    if previous.record.order != record.order:
        problems.append(f"the previous sign-off belongs to order {previous.record.order}")
    if record.prev_hash != previous.hash:
        problems.append("prev_hash does not match the previous sign-off's hash")
    if record.index != previous.record.index + 1:
        problems.append(
            f"index {record.index} does not follow the previous sign-off's index "
            f"{previous.record.index}: records are missing from the chain"
        )
    return problems


def verify(
    stored: SealedSignOff,
    *,
    signer: PlatformSigner,
    previous: SealedSignOff | None,
    original: SealedSignOff | None = None,
) -> Verification:
    """Check a sign-off read back from the database.

    ``previous`` is the order's sign-off at ``index - 1`` as stored (``None`` for the first).
    ``original`` is the signed copy kept apart from the database (the NATS stream): when its
    own hash and signature hold, every field where ``stored`` differs from it is named; without
    it a change is still detected, by the hash or the signature, but cannot be located.
    """
    problems: list[str] = []
    changes: list[FieldChange] = []
    if original is not None:
        if record_hash(original.record) != original.hash or not signer.verify(
            original.hash, original.signature, original.key_id
        ):
            problems.append(
                "the kept signed copy does not verify itself, so it was not used to name changes"
            )
        else:
            changes = _differences(_sealed_fields(stored), _sealed_fields(original), "")
            problems += [
                f"field {c.field} was changed: stored {c.stored!r}, signed {c.signed!r}"
                for c in changes
            ]
    hash_ok = record_hash(stored.record) == stored.hash
    if not hash_ok:
        problems.append("the stored hash does not match the record: it was changed after signing")
    signature_ok = signer.verify(stored.hash, stored.signature, stored.key_id)
    if not signature_ok:
        problems.append(_signature_problem(stored, signer))
    chain = _chain_problems(stored.record, previous)
    problems += chain
    return Verification(
        valid=not problems,
        hash_ok=hash_ok,
        signature_ok=signature_ok,
        chain_ok=not chain,
        changes=changes,
        problems=problems,
    )
