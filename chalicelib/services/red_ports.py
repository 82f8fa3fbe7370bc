"""The red flow's ports and settings: what ``chalicelib/services/red.py`` holds besides the issuing ports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

from chalicelib.config import (
    RED_FORM_ALERT_HOURS,
    RED_FORM_EXPIRY_HOURS,
    RED_FORM_RECHECK_SECONDS,
    REFUND_HOLD_SECONDS,
)
from chalicelib.domain.errors import ConfigurationError
from chalicelib.services.outcomes import Outcome
from chalicelib.services.ports import OrderLedger, OrderRecord
from chalicelib.taxapi.base import IssueProvider, RedProvider


class RedLedger(OrderLedger, Protocol):
    """The order ledger plus the one read the red flow needs: the blue record of a refund."""

    def get_order(self, order_key: str) -> OrderRecord | None: ...


@dataclass(frozen=True)
class RedSettings:
    """The red flow's timing (``chalicelib/config.py`` holds the defaults)."""

    hold_seconds: int = REFUND_HOLD_SECONDS
    recheck_seconds: int = RED_FORM_RECHECK_SECONDS
    alert_hours: float = RED_FORM_ALERT_HOURS
    expiry_hours: float = RED_FORM_EXPIRY_HOURS


def red_provider(provider: IssueProvider) -> RedProvider:
    """The red side of a store's provider (every shipped provider has it; a fake may not)."""
    if not hasattr(provider, "build_red_form_apply") or not hasattr(provider, "build_issue_red"):
        raise ConfigurationError(f"provider {provider.name} cannot issue red invoices", code="no_red_support")
    return cast(RedProvider, provider)


class RefundAttempts(Protocol):
    """What the issuing use case hands a ``refunded`` message to (``chalicelib.services.red.RedFlow``)."""

    def attempt(self, refund_key: str, *, deadline: float) -> Outcome: ...
