"""The tariff document as the API declares it: the domain's own shape (``domain.insurance``),
whose loader checks every value and names each bad one."""

from __future__ import annotations

from streamguard.domain.insurance import TariffsDoc

__all__ = ["TariffsDoc"]
