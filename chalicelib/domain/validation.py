"""Every invoice rule as a pure check: an ``InvoiceOrder`` in, all broken rules out at once.

This module is the entry point. :func:`validate` returns the errors (``list[Violation]``, empty when
the order can be issued); :func:`check` returns a :class:`ValidationReport` with the errors *and* the
warnings — findings that do not block issuing, such as a buyer credit code failing the GB 32100
checksum under the ``warn`` policy; :func:`ensure_valid` raises them. Each
:class:`~chalicelib.domain.models.Violation` has a field path (``lines[2].tax_rate``,
``buyer.tax_id``), a stable code and a Chinese and an English message; the codes are listed in
:data:`MESSAGES` (:mod:`chalicelib.domain.validation_catalogue`) and documented in
``docs/invoice-rules.md`` (a test keeps the two in step); the checks themselves live in
:mod:`chalicelib.domain.validation_rules`. The catalogue's and the rules' public names are
re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

from chalicelib.domain.amounts import INVOICE_TAX_TOLERANCE
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import ChecksumPolicy, InvoiceOrder, Violation
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.validation_catalogue import MESSAGES, violation
from chalicelib.domain.validation_rules import (
    ADDRESS_PHONE_MAX,
    BANK_ACCOUNT_MAX,
    MAX_LINES,
    MONEY_LIMIT,
    NAME_MAX,
    PRICE_PLACES,
    REMARK_MAX,
    Findings,
    check_lines,
    check_parties,
    check_remark,
    check_totals,
)

__all__ = [
    "ADDRESS_PHONE_MAX",
    "BANK_ACCOUNT_MAX",
    "MAX_LINES",
    "MESSAGES",
    "MONEY_LIMIT",
    "NAME_MAX",
    "PRICE_PLACES",
    "REMARK_MAX",
    "ValidationReport",
    "check",
    "ensure_valid",
    "validate",
    "violation",
]


@dataclass(frozen=True)
class ValidationReport:
    """Errors block issuing; warnings are recorded and shown, never blocking."""

    errors: tuple[Violation, ...]
    warnings: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def validate(
    order: InvoiceOrder,
    *,
    table: TaxCodeTable,
    buyer_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
    invoice_level_tolerance: Decimal = INVOICE_TAX_TOLERANCE,
    single_invoice_limit: Decimal | None = None,
    seller_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
) -> list[Violation]:
    """All errors of ``order`` (empty list: it may be issued). Warnings: see :func:`check`."""
    return list(
        check(
            order,
            table=table,
            buyer_checksum_policy=buyer_checksum_policy,
            invoice_level_tolerance=invoice_level_tolerance,
            single_invoice_limit=single_invoice_limit,
            seller_checksum_policy=seller_checksum_policy,
        ).errors
    )


def ensure_valid(
    order: InvoiceOrder,
    *,
    table: TaxCodeTable,
    buyer_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
    invoice_level_tolerance: Decimal = INVOICE_TAX_TOLERANCE,
    single_invoice_limit: Decimal | None = None,
    seller_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
) -> ValidationReport:
    """:func:`check`, raising :class:`ValidationFailed` with every error when there is any."""
    report = check(
        order,
        table=table,
        buyer_checksum_policy=buyer_checksum_policy,
        invoice_level_tolerance=invoice_level_tolerance,
        single_invoice_limit=single_invoice_limit,
        seller_checksum_policy=seller_checksum_policy,
    )
    if report.errors:
        raise ValidationFailed(report.errors)
    return report


def check(
    order: InvoiceOrder,
    *,
    table: TaxCodeTable,
    buyer_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
    invoice_level_tolerance: Decimal = INVOICE_TAX_TOLERANCE,
    single_invoice_limit: Decimal | None = None,
    seller_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
) -> ValidationReport:
    """Run every rule; see ``docs/invoice-rules.md`` for the list.

    ``single_invoice_limit`` is the store's 开票限额 (excluding tax), checked on blue invoices.
    The seller's checksum defaults to ``warn`` because sandboxes use ids that fail it.
    """
    found = Findings()
    # A private context: the caller's (or another thread's) decimal settings never change a verdict.
    with localcontext(Context(prec=60, rounding=ROUND_HALF_UP)):
        check_parties(order, found, buyer_checksum_policy, seller_checksum_policy)
        check_remark(order, found)
        sums_ok = check_lines(order, table, found)
        check_totals(order, found, sums_ok, invoice_level_tolerance, single_invoice_limit)
    return ValidationReport(errors=tuple(found.errors), warnings=tuple(found.warnings))
