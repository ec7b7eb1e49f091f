"""Who is asking: the four roles and the principal a verified token yields."""

from __future__ import annotations

import enum

import msgspec

__all__ = ["Principal", "Role"]


class Role(enum.StrEnum):
    """The control plane's roles (CONTROL_PLANE.md, "Roles")."""

    OPERATOR = "operator"
    DEPOT = "depot"
    CARRIER = "carrier"
    CUSTOMER = "customer"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated caller. ``subject`` is the user (a customer id, a depot staff id, an
    operator's login); ``carrier`` is the carrier code a ``carrier`` principal acts for."""

    role: Role
    subject: str
    carrier: str | None = None

    @property
    def key(self) -> str:
        """One string per principal, for idempotency keys and audit lines."""
        who = f"{self.role.value}:{self.subject}"
        return f"{who}@{self.carrier}" if self.carrier else who
