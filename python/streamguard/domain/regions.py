"""China's region codes (GB/T 2260) as events and orders carry them: ``CN-44``, ``CN-4403``,
``CN-440300``. City-level codes roll up to their province by the first two digits."""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "DEFAULT_DEPOT_REGION",
    "REGION_PATTERN",
    "Province",
    "check_region",
    "province_of",
    "provinces",
]

#: Where the depot is when nobody says: Shenzhen.
DEFAULT_DEPOT_REGION = "CN-440300"


def _pattern() -> str:
    # Built from the table, so the API's schema admits exactly the codes it accepts.
    text = resources.files("streamguard.data").joinpath("regions.csv").read_text("utf-8")
    prefixes = sorted({row["code"][:2] for row in csv.DictReader(text.splitlines())})
    return rf"^CN-({'|'.join(prefixes)})([0-9]{{2}}){{0,2}}$"


REGION_PATTERN = _pattern()


@dataclass(frozen=True, slots=True)
class Province:
    code: str  # "440000"
    name_en: str
    name_zh: str
    remote: bool


@functools.cache
def provinces() -> dict[str, Province]:
    """The province table shipped with the package, keyed by its two-digit prefix."""
    text = resources.files("streamguard.data").joinpath("regions.csv").read_text("utf-8")
    rows = csv.DictReader(text.splitlines())
    return {
        r["code"][:2]: Province(r["code"], r["name_en"], r["name_zh"], r["remote"] == "1")
        for r in rows
    }


def province_of(region: str) -> Province | None:
    """The province of ``CN-<code>``, or ``None`` when the code is not China's."""
    if not region.startswith("CN-") or len(region) < 5:
        return None
    return provinces().get(region[3:5])


def check_region(region: str) -> Province:
    """The province of ``region``; ``ValueError`` naming the code when it is unknown."""
    province = province_of(region)
    if province is None:
        raise ValueError(f"unknown region code {region!r} (expected CN-<GB/T 2260 code>)")
    return province
