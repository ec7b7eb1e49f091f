"""Sign-off requests: one shape per signer type (a tagged union on ``signer_type``), so the
schema itself says that a depot's staff gives a staff id and a proxy an identity."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from streamguard.domain import signoffs as so
from streamguard.domain.orders import Name, Region, Sha256

__all__ = ["Position", "SignOffInput", "SignOffView", "VerificationView"]

StaffId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Lat = Annotated[str, Meta(pattern=r"^-?(90(\.0{1,12})?|[0-8]?[0-9](\.[0-9]{1,12})?)$")]
Lon = Annotated[
    str, Meta(pattern=r"^-?(180(\.0{1,12})?|(1[0-7][0-9]|[0-9]?[0-9])(\.[0-9]{1,12})?)$")
]
Photos = Annotated[list[Sha256], Meta(max_length=10)]


class Position(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the sign-off was taken; decimal strings, so the text signed is the text kept."""

    lat: Lat
    lon: Lon


class ProxyInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A proxy's identity. The document number is kept only as a salted hash and last 4."""

    name: Name
    document_type: Literal["id_card", "passport", "hk_macau_permit", "other"]
    document_number: Annotated[str, Meta(pattern=r"^[A-Za-z0-9]{5,32}$")]
    relationship: Annotated[str, Meta(min_length=1, max_length=64)]


class _Common(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    leg: Literal["inbound", "return"]
    signer_name: Name
    region: Region | None = None
    position: Position | None = None
    signature_image_sha256: Sha256 | None = None
    photo_sha256: Photos = []


class SelfSignOff(_Common, frozen=True, tag_field="signer_type", tag="self"):
    """The customer in person."""


class LockerSignOff(_Common, frozen=True, tag_field="signer_type", tag="locker"):
    """Delivered into a parcel locker."""


class ProxySignOff(_Common, frozen=True, tag_field="signer_type", tag="proxy"):
    """Someone on the customer's behalf, identified."""

    proxy: ProxyInput


class DepotStaffSignOff(_Common, frozen=True, tag_field="signer_type", tag="depot_staff"):
    """The depot's receipt."""

    staff_id: StaffId


SignOffInput = SelfSignOff | LockerSignOff | ProxySignOff | DepotStaffSignOff


class SignOffView(msgspec.Struct, kw_only=True):
    """A sealed sign-off: the record, its hash and the platform's signature."""

    record: dict[str, Any]
    hash: str
    signature: str
    key_id: str

    @classmethod
    def of(cls, sealed: so.SealedSignOff) -> SignOffView:
        return cls(
            record=msgspec.to_builtins(sealed.record),
            hash=sealed.hash,
            signature=sealed.signature,
            key_id=sealed.key_id,
        )


class VerificationView(msgspec.Struct, kw_only=True):
    """``valid``, or exactly what changed."""

    signoff_id: str
    valid: bool
    hash_ok: bool
    signature_ok: bool
    chain_ok: bool
    changes: list[dict[str, Any]]
    problems: list[str]
