"""The sandbox's configuration: the STA apps and their keys, the Nuonuo apps, the registered sellers
and the knobs (issue delay, timestamp window, nonce and token lifetimes, checksum policy, red form
states and expiry, the invoice channel, the clock's start, fault settings), read from one dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chalicelib.sandbox.faults import FaultSettings
from chalicelib.sandbox.rules import ChecksumPolicy


@dataclass(frozen=True)
class StaApp:
    app_id: str
    sm4_key: bytes
    sign_key: str
    sellers: tuple[str, ...]  # empty: any configured seller


@dataclass(frozen=True)
class NuonuoApp:
    app_key: str
    app_secret: str
    user_taxes: tuple[str, ...]


@dataclass(frozen=True)
class TokenRefusal:
    """What the token endpoint answers while refusing (``POST /admin/tokens {"refuse": n}``). Nuonuo
    documents the 50-calls-in-30-days quota but not its refusal: an assumption (docs/nuonuo.md)."""

    status: int = 400
    error: str = "070312"
    error_description: str = "accessToken获取次数超限，请稍后重试"


TRANSPORT_CLOCKS = ("auto", "wall", "sandbox")


@dataclass(frozen=True)
class Seller:
    tax_id: str
    name: str
    credit_line: Decimal
    single_invoice_limit: Decimal | None
    province: str
    address: str = ""
    phone: str = ""


@dataclass(frozen=True)
class SandboxConfig:
    sta_apps: dict[str, StaApp]
    nuonuo_apps: dict[str, NuonuoApp]
    sellers: dict[str, Seller]
    issue_delay_seconds: float = 5.0
    timestamp_window_seconds: int = 300
    nonce_ttl_seconds: int = 600
    token_ttl_seconds: int = 86400
    uscc_policy: ChecksumPolicy = ChecksumPolicy.WARN
    red_individual_state: str = "01"
    red_company_state: str = "02"
    red_expiry_hours: float = 72
    invoice_channel: str = "1"
    clock_start: float | None = None
    transport_clock: str = "auto"  # auto: wall time unless the clock is frozen (state.transport_now)
    token_refusal: TokenRefusal = field(default_factory=TokenRefusal)
    faults: FaultSettings = field(default_factory=FaultSettings)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SandboxConfig:
        sta_apps = {}
        for app_id, app in (raw.get("sta", {}).get("apps") or {}).items():
            key = bytes.fromhex(app["sm4_key"])
            if len(key) != 16:
                raise ValueError(f"sta app {app_id}: sm4_key must be 32 hex characters")
            sta_apps[app_id] = StaApp(app_id, key, str(app["sign_key"]), tuple(app.get("sellers") or ()))
        nuonuo_apps = {}
        for app_key, app in (raw.get("nuonuo", {}).get("apps") or {}).items():
            taxes = app.get("user_taxes") or ([app["user_tax"]] if app.get("user_tax") else [])
            nuonuo_apps[app_key] = NuonuoApp(app_key, str(app["app_secret"]), tuple(taxes))
        sellers = {}
        for tax_id, s in (raw.get("sellers") or {}).items():
            limit = s.get("single_invoice_limit")
            sellers[tax_id] = Seller(
                tax_id=tax_id,
                name=s.get("name", "沙箱测试企业"),
                credit_line=Decimal(str(s.get("credit_line", "1000000.00"))),
                single_invoice_limit=Decimal(str(limit)) if limit not in (None, "") else None,
                province=str(s.get("province", "33")),
                address=s.get("address", ""),
                phone=s.get("phone", ""),
            )
        red = raw.get("red_form") or {}
        clock = raw.get("clock") or {}
        start = clock.get("start")
        transport = str(clock.get("transport", "auto"))
        if transport not in TRANSPORT_CLOCKS:
            raise ValueError(f"clock.transport must be one of {TRANSPORT_CLOCKS}")
        refusal = raw.get("nuonuo", {}).get("token_refusal") or {}
        return cls(
            sta_apps=sta_apps,
            nuonuo_apps=nuonuo_apps,
            sellers=sellers,
            issue_delay_seconds=float(raw.get("issue_delay_seconds", 5)),
            timestamp_window_seconds=int(raw.get("timestamp_window_seconds", 300)),
            nonce_ttl_seconds=int(raw.get("nonce_ttl_seconds", 600)),
            token_ttl_seconds=int(raw.get("nuonuo", {}).get("token_ttl_seconds", 86400)),
            uscc_policy=ChecksumPolicy(raw.get("uscc_policy", "warn")),
            red_individual_state=str(red.get("individual_state", "01")),
            red_company_state=str(red.get("company_state", "02")),
            red_expiry_hours=float(red.get("expiry_hours", 72)),
            invoice_channel=str(raw.get("invoice_channel", "1")),
            clock_start=float(start) if start is not None else None,
            transport_clock=transport,
            token_refusal=TokenRefusal(
                int(refusal.get("status", TokenRefusal.status)),
                str(refusal.get("error", TokenRefusal.error)),
                str(refusal.get("error_description", TokenRefusal.error_description)),
            ),
            faults=FaultSettings.from_dict(raw.get("faults")),
            raw=raw,
        )
