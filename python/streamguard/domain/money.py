"""Money: integer fen inside, decimal strings at the edges ("1299.00"). Never a float."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import NewType

__all__ = ["Fen", "fen_to_str", "parse_cny"]

Fen = NewType("Fen", int)

#: One billion CNY: past any device a repair platform ships.
MAX_FEN = 100_000_000_000


def parse_cny(text: str | int | Decimal) -> Fen:
    """``"1299.5"`` -> 129950 fen. Refuses floats, more than two decimals, negatives and
    absurd amounts, with a message that says which."""
    if isinstance(text, float):
        raise ValueError("money must be a decimal string such as '1299.00', not a float")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal amount such as '1299.00'") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r} must be a non-negative amount")
    fen = value * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"{text!r} has more than two decimals (fen)")
    if fen > MAX_FEN:
        raise ValueError(f"{text!r} is more than {MAX_FEN // 100} CNY")
    return Fen(int(fen))


def fen_to_str(fen: int) -> str:
    """129950 -> ``"1299.50"``."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def round_fen(amount: Decimal) -> Fen:
    """A computed amount (a premium) rounded half-up to the fen."""
    return Fen(int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)))
