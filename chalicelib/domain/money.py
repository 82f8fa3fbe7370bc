"""Money primitives: every amount is a ``Decimal``; every rounding is explicit and ROUND_HALF_UP.

Python's ``round()`` on a Decimal rounds half to even (banker's rounding), which the tax rules do not
use; call :func:`q2` instead. Floats are refused at the door: ``to_decimal(0.1)`` raises, so a float
that slipped in from a JSON parser is caught rather than silently carrying binary noise.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
PRICE_PLACES = Decimal("0.00000001")  # unit price and quantity: up to 8 decimals


def to_decimal(value: object) -> Decimal:
    """Convert str/int/Decimal to Decimal; refuse float and anything non-finite."""
    if isinstance(value, (bool, float)):
        raise TypeError("money must not be float or bool; pass a str or Decimal")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation as exc:
            raise ValueError(f"not a number: {value!r}") from exc
    else:
        raise TypeError(f"cannot convert {type(value).__name__} to Decimal")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def q2(value: Decimal) -> Decimal:
    """Round to cents, half up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def q8(value: Decimal) -> Decimal:
    """Round to 8 decimals (unit price, quantity), half up."""
    return value.quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)


def fen_to_yuan(fen: int) -> Decimal:
    """WeChat Pay sends integer fen; the rest of the system speaks yuan."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("fen must be an int")
    return (Decimal(fen) / 100).quantize(CENT)


def yuan_to_fen(yuan: Decimal) -> int:
    return int((q2(yuan) * 100).to_integral_exact())
