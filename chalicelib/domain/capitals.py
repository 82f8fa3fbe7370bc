"""价税合计 in capital Chinese numerals (大写金额), as banks and the 数电票 layout write them; and back.

The convention (the People's Bank of China's rules for filling in bills — 《支付结算办法》附一 正确填写
票据和结算凭证的基本规定 — with one fixed choice wherever those rules allow two):

- digits 零壹贰叁肆伍陆柒捌玖, units 拾佰仟, groups 万 and 亿, then 圆, 角, 分; ``圆`` (not 元);
- a leading 1 in the tens is written **壹拾** (``10.30`` → 壹拾圆叁角), never a bare 拾: banks require
  the 壹 so that nothing can be written in front of it;
- **整** only after 圆 (no 角, no 分): ``108.00`` → 壹佰零捌圆整. After 角 it is left out (the rules allow
  either; the 数电票 prints none): ``0.50`` → 伍角. Never after 分;
- one **零** for a run of zeros inside the integer (``6007`` → 陆仟零柒圆); a group skipped entirely
  writes one 零 (``100001000`` → 壹亿零壹仟圆整);
- at a 万 / 亿 / 圆 boundary whose next digit is non-zero, no 零 is written (the rules allow either):
  ``107000.53`` → 壹拾万柒仟圆伍角叁分, ``10.30`` → 壹拾圆叁角, ``1680.32`` → 壹仟陆佰捌拾圆叁角贰分;
- when 角 is zero and 分 is not, 零 is written after 圆 (mandatory): ``1000.05`` → 壹仟圆零伍分;
  below one yuan nothing precedes 角/分: ``0.05`` → 伍分; zero is 零圆整;
- a negative amount (a red invoice) is prefixed **负**: ``-108.00`` → 负壹佰零捌圆整.

Input: a finite Decimal that is a whole number of 分 (``1.5`` and ``1.50`` pass, ``1.005`` is refused;
a figure is never rounded here) and at most 999,999,999,999.99 in absolute value (the 千亿 range, far
above any single-invoice limit). :func:`parse_capitals` reads this form back and also the variants
the rules allow (元, 正, a bare 拾, a 零 written or left out at a boundary), so
``parse_capitals(amount_in_capitals(x)) == x`` for every accepted ``x``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

DIGITS = "零壹贰叁肆伍陆柒捌玖"
SMALL_UNITS = ("", "拾", "佰", "仟")  # within a group of four digits
GROUP_UNITS = ("", "万", "亿")  # groups of four digits, least significant first
YUAN, JIAO, FEN, WHOLE, NEGATIVE = "圆", "角", "分", "整", "负"
#: The largest absolute amount written (12 integer digits: up to 仟亿).
MAX_AMOUNT = Decimal("999999999999.99")

_CENT = Decimal("0.01")
_VARIANTS = str.maketrans({"元": YUAN, "正": WHOLE})
_SMALL = {"拾": 10, "佰": 100, "仟": 1000}


class CapitalsError(ValueError):
    """An amount that cannot be written in capitals, or a text that is not an amount in capitals."""


def _cents(amount: Decimal) -> int:
    if not isinstance(amount, Decimal):
        raise CapitalsError(f"the amount must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise CapitalsError(f"not a finite amount: {amount}")
    try:
        exact = amount.quantize(_CENT)
    except InvalidOperation as exc:
        raise CapitalsError(f"amount out of range: {amount}") from exc
    if exact != amount:
        raise CapitalsError(f"an amount in capitals needs at most two decimals (whole 分): {amount}")
    if abs(exact) > MAX_AMOUNT:
        raise CapitalsError(f"amount above {MAX_AMOUNT} in absolute value: {amount}")
    return int(exact * 100)


def _group(value: int) -> str:
    """One group of four digits (1 … 9999), its inner zeros as one 零, trailing zeros dropped."""
    out: list[str] = []
    zero = False
    for position in range(3, -1, -1):
        digit = value // 10**position % 10
        if digit == 0:
            zero = bool(out)  # a zero after a written digit; dropped if nothing non-zero follows
            continue
        if zero:
            out.append(DIGITS[0])
            zero = False
        out.append(DIGITS[digit] + SMALL_UNITS[position])
    return "".join(out)


def _integer(value: int) -> str:
    if value == 0:
        return ""
    groups = [(value // 10 ** (4 * i)) % 10000 for i in range(len(GROUP_UNITS))]
    out: list[str] = []
    skipped = False  # a zero group, or a group below its thousands, after something was written
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            skipped = bool(out)
            continue
        if out and (skipped or group < 1000):
            out.append(DIGITS[0])
        out.append(_group(group) + GROUP_UNITS[index])
        skipped = False
    return "".join(out)


def amount_in_capitals(amount: Decimal) -> str:
    """``Decimal("108.00")`` → ``壹佰零捌圆整``; the convention is this module's docstring."""
    cents = _cents(amount)
    sign = NEGATIVE if cents < 0 else ""
    cents = abs(cents)
    yuan, jiao, fen = cents // 100, cents // 10 % 10, cents % 10
    integer = _integer(yuan)
    if cents == 0:
        return DIGITS[0] + YUAN + WHOLE
    out = integer + YUAN if integer else ""
    if jiao == 0 and fen == 0:
        return sign + out + WHOLE
    if jiao:
        out += DIGITS[jiao] + JIAO
    elif integer:
        out += DIGITS[0]  # 圆零伍分: the skipped 角 is written as 零
    if fen:
        out += DIGITS[fen] + FEN
    return sign + out


def _parse_group(text: str, whole: str) -> int:
    """Digits with 拾佰仟 (a bare leading 拾 is 壹拾); 零 only between written parts."""
    total, digit, last_unit = 0, None, 10000
    for char in text:
        if char in DIGITS:
            if digit is not None and char != DIGITS[0]:
                raise CapitalsError(f"two digits without a unit between them in {whole!r}")
            digit = None if char == DIGITS[0] else DIGITS.index(char)
        elif char in _SMALL:
            unit = _SMALL[char]
            if unit >= last_unit:
                raise CapitalsError(f"units out of order in {whole!r}")
            if digit is None and not (unit == 10 and total == 0):
                raise CapitalsError(f"{char} without a digit in {whole!r}")
            total += (digit or 1) * unit
            digit, last_unit = None, unit
        else:
            raise CapitalsError(f"unexpected character {char!r} in {whole!r}")
    if digit is not None:
        if last_unit == 1:
            raise CapitalsError(f"a digit after the units digit in {whole!r}")
        total += digit
    if total > 9999:
        raise CapitalsError(f"a group above 9999 in {whole!r}")
    return total


def _parse_integer(text: str, whole: str) -> int:
    total = 0
    rest = text
    for unit, scale in (("亿", 10**8), ("万", 10**4)):
        if unit in rest:
            head, rest = rest.split(unit, 1)
            if unit in rest or not head.strip(DIGITS[0]):
                raise CapitalsError(f"{unit} misplaced in {whole!r}")
            total += _parse_group(head.lstrip(DIGITS[0]), whole) * scale
    return total + _parse_group(rest.lstrip(DIGITS[0]), whole)


def parse_capitals(text: str) -> Decimal:
    """``壹佰零捌圆整`` → ``Decimal("108.00")``; the inverse of :func:`amount_in_capitals` (variants too)."""
    whole = text
    body = text.strip().translate(_VARIANTS)
    negative = body.startswith(NEGATIVE)
    body = body.removeprefix(NEGATIVE)
    if not body:
        raise CapitalsError(f"not an amount in capitals: {whole!r}")
    ends_whole = body.endswith(WHOLE)
    body = body.removesuffix(WHOLE)
    integer_text, has_yuan, fraction = body.partition(YUAN)
    if not has_yuan:
        integer_text, fraction = "", body
    if has_yuan and not integer_text:
        raise CapitalsError(f"圆 without an amount in {whole!r}")
    if ends_whole and (FEN in fraction):
        raise CapitalsError(f"整 after 分 in {whole!r}")
    yuan = _parse_integer(integer_text, whole) if integer_text else 0
    jiao = fen = 0
    rest = fraction.lstrip(DIGITS[0]) if has_yuan else fraction
    if rest.startswith(DIGITS[0]):
        raise CapitalsError(f"unexpected 零 in {whole!r}")
    if len(rest) >= 2 and rest[1] == JIAO:
        jiao, rest = _digit(rest[0], whole), rest[2:]
    if len(rest) >= 2 and rest[1] == FEN:
        fen, rest = _digit(rest[0], whole), rest[2:]
    if rest:
        raise CapitalsError(f"unexpected {rest!r} in {whole!r}")
    if not has_yuan and not (jiao or fen):
        raise CapitalsError(f"not an amount in capitals: {whole!r}")
    if not has_yuan and ends_whole and not jiao:
        raise CapitalsError(f"整 without 圆 or 角 in {whole!r}")
    value = Decimal(yuan * 100 + jiao * 10 + fen).scaleb(-2)
    return -value if negative else value


def _digit(char: str, whole: str) -> int:
    if char not in DIGITS or char == DIGITS[0]:
        raise CapitalsError(f"expected a digit 壹 … 玖 before a unit in {whole!r}")
    return DIGITS.index(char)
