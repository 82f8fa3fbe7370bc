"""The domain's vocabulary: frozen pydantic v2 models shared by intake, issuing and the tax layer.

- ``PaymentEvent``: what a verified webhook says (platform facts, yuan as Decimal).
- ``InvoiceOrder`` / ``InvoiceLine``: what we ask the tax platform to issue (amounts split, validated).
- ``Store`` and its parts: one shop of a merchant's chain (seller, provider, catalogue, policies).
- ``Violation``: one broken invoice rule, with a field path, a stable code and a bilingual message.

Money is ``Decimal`` everywhere; a float given to any money field is a validation error.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from chalicelib.domain.errors import MalformedPayload
from chalicelib.domain.money import to_decimal


def _strict_decimal(value: Any) -> Decimal:
    return to_decimal(value)


#: A Decimal that refuses floats (JSON numbers must arrive as str or be parsed with parse_float=Decimal).
Dec = Annotated[Decimal, BeforeValidator(_strict_decimal)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


# --- events ------------------------------------------------------------------------------------
class EventKind(StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"


class BuyerType(StrEnum):
    INDIVIDUAL = "individual"  # 个人
    COMPANY = "company"  # 企业 / 单位


class Buyer(Frozen):
    """The invoice title (抬头) as the platform gave it. No title → an individual (个人)."""

    title: str | None = None
    tax_id: str | None = None
    type: BuyerType | None = None  # when the platform says; otherwise inferred (tax id → company)
    address: str | None = None
    phone: str | None = None
    bank: str | None = None
    account: str | None = None
    email: str | None = None
    mobile: str | None = None


class EventLine(Frozen):
    """A line as the platform sent it: tax-inclusive money, product identity by SKU and/or name."""

    sku: str | None = None
    name: str | None = None
    quantity: Dec = Decimal(1)
    unit_price: Dec | None = None  # tax-inclusive
    total: Dec  # tax-inclusive, after any line discount
    discount: Dec = Decimal(0)  # positive number; already deducted from total


class PriceBasis(StrEnum):
    """How a store's prices are meant: tax included (consumer prices, the default) or excluded."""

    INCLUSIVE = "inclusive"  # 含税: the line total includes the tax; amount and tax are split from it
    EXCLUSIVE = "exclusive"  # 不含税: the line total is the amount; tax is added on top


class RejectionReply(StrEnum):
    """What a platform is answered when its order breaks an invoice rule (the order is kept either way)."""

    REFUSE = "refuse"  # 422 with the violations: for integrators who read the answer
    ACKNOWLEDGE = "acknowledge"  # 2xx: the platform's retries cannot fix the order; the operator can


#: The longest event, order or refund id, in UTF-8 bytes: ids become storage keys (the order key, in a
#: DynamoDB key of at most 2,048 bytes), so they are bounded in bytes, not characters — 690 CJK
#: characters pass a 1,000-character limit and are 2,070 bytes.
from chalicelib.domain.limits import MAX_ID_BYTES  # noqa: E402 - re-exported here


class PaymentEvent(Frozen):
    """A verified, parsed platform event: the output of every ``webhooks.<platform>.verify``."""

    platform: str
    event_id: str  # the platform's event / notify / delivery / message id (de-duplication key)
    kind: EventKind
    order_id: str
    amount: Dec  # yuan, tax-inclusive, what the buyer paid for the order
    currency: str = "CNY"
    lines: tuple[EventLine, ...] = ()
    buyer: Buyer | None = None
    refund_id: str | None = None
    refund_amount: Dec | None = None  # yuan, positive
    #: True where the platform's refund amount is the total refunded on the order so far (Alipay
    #: ``refund_fee``): the red flow subtracts what the order's earlier refunds took.
    refund_cumulative: bool = False
    #: Amounts the platform itself labels, tax-inclusive yuan (None: the platform did not say).
    shipping: Dec | None = None  # 运费 the buyer paid
    order_discount: Dec | None = None  # order-level platform discount / coupon (positive)
    fees: Dec | None = None  # tips, service or handling fees the buyer paid
    occurred_at: datetime | None = None
    event_type: str = ""  # the platform's own type/topic, for the audit trail

    @field_validator("currency")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @field_validator("event_id", "order_id", "refund_id")
    @classmethod
    def _id_bytes(cls, v: str | None, info: ValidationInfo) -> str | None:
        """At most MAX_ID_BYTES in UTF-8. Raises MalformedPayload, not ValueError: pydantic passes it
        through unwrapped, so every platform module answers it as a malformed body (422), never a 500."""
        if v is None:
            return v
        size = len(v.encode("utf-8"))  # pydantic has refused a str that is not valid Unicode already
        if size > MAX_ID_BYTES:
            raise MalformedPayload(
                f"field {info.field_name} is too long: {size} bytes in UTF-8, at most {MAX_ID_BYTES} "
                "(ids become storage keys)"
            )
        return v


# --- invoices ----------------------------------------------------------------------------------
class InvoiceType(StrEnum):
    NORMAL = "normal"  # 数电票（普通发票）
    SPECIAL = "special"  # 数电票（增值税专用发票）


class InvoiceColour(StrEnum):
    BLUE = "blue"
    RED = "red"


class ZeroRateFlag(StrEnum):
    """Why a 0% line is zero (required on 0% lines)."""

    EXEMPT = "exempt"  # 免税
    NOT_TAXABLE = "not_taxable"  # 不征税
    ZERO_RATE = "zero_rate"  # 普通零税率


class RedReason(StrEnum):
    """Reasons of the red-letter confirmation form (数电票 codes). Nuonuo numbers 1/2 swap: map explicitly."""

    WRONG_INVOICE = "01"  # 开票有误
    RETURN = "02"  # 销货退回
    SERVICE_STOPPED = "03"  # 服务中止
    ALLOWANCE = "04"  # 销售折让


class InvoiceLine(Frozen):
    """One invoice line, amounts already split (excl. tax / tax / incl. tax)."""

    name: str  # the goods name without the *简称* prefix
    short_name: str  # the tax code's short name (简称) → shown as *简称*name
    tax_code: str  # 19-digit 税收分类编码
    tax_rate: Dec  # 0.13, 0.09, 0.06 … as a fraction
    quantity: Dec | None = None
    unit: str | None = None
    unit_price: Dec | None = None  # excl. tax, up to 8 decimals
    amount: Dec  # excl. tax, 2 decimals
    tax: Dec  # 2 decimals
    total: Dec  # incl. tax = amount + tax
    sku: str | None = None
    specification: str | None = None  # 规格型号
    is_discount: bool = False  # a discount line (折扣行) directly after the line it discounts
    zero_rate_flag: ZeroRateFlag | None = None
    favoured_policy: str | None = None  # favouredPolicyFlag 01–18 when a preferential policy applies
    original_line_no: int | None = None  # red invoices: the blue line this reverses (1-based)

    @property
    def display_name(self) -> str:
        return f"*{self.short_name}*{self.name}"


class Party(Frozen):
    name: str
    tax_id: str | None = None
    address: str | None = None
    phone: str | None = None
    bank: str | None = None
    account: str | None = None


class InvoiceBuyer(Party):
    type: BuyerType = BuyerType.INDIVIDUAL
    email: str | None = None
    mobile: str | None = None


class InvoiceOrder(Frozen):
    """Everything the tax platform needs to issue one invoice (blue, or the red mirror of one)."""

    order_key: str  # order_keys.order_key: store:platform:order_id[:refund:refund_id]; the correlation id end to end
    store_id: str
    order_id: str
    colour: InvoiceColour = InvoiceColour.BLUE
    invoice_type: InvoiceType = InvoiceType.NORMAL
    seller: Party
    buyer: InvoiceBuyer
    lines: tuple[InvoiceLine, ...]
    total_amount: Dec  # Σ amount (excl. tax)
    total_tax: Dec  # Σ tax
    total: Dec  # Σ total (incl. tax) = 价税合计
    issuer: str  # 开票人
    reviewer: str | None = None  # 复核人
    payee: str | None = None  # 收款人
    remark: str | None = None  # 备注 (≤ 230)
    # red invoices only
    original_invoice_number: str | None = None  # 20-digit blue number
    original_issued_at: datetime | None = None
    red_reason: RedReason | None = None
    red_form_id: str | None = None


class Violation(Frozen):
    """One broken rule. ``field`` is a path (``lines[3].tax_rate``); ``code`` is stable and documented."""

    field: str
    code: str
    message: str  # Chinese
    message_en: str

    def as_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "code": self.code,
            "message": self.message,
            "message_en": self.message_en,
        }


# --- stores ------------------------------------------------------------------------------------
STORE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
#: Every secret the functions read lives under ``einvoice/`` (the IAM policy grants exactly that prefix).
SECRET_NAME_RE = re.compile(r"^einvoice/[A-Za-z0-9/_+=.@-]{1,500}$")


class ChecksumPolicy(StrEnum):
    """What to do when an 18-character buyer tax id fails the GB 32100 checksum."""

    REJECT = "reject"
    WARN = "warn"


class TaxProvider(StrEnum):
    STA = "sta"  # direct connection to the tax authority (Leqi-style)
    NUONUO = "nuonuo"


class DeliveryChannel(StrEnum):
    LINK = "link"
    EMAIL = "email"
    SMS = "sms"


class Seller(Frozen):
    name: str = Field(min_length=1, max_length=100)
    tax_id: str = Field(min_length=15, max_length=20)
    address: str = ""
    phone: str = ""
    bank: str = ""
    account: str = ""


class ProviderSettings(Frozen):
    """Which tax provider the store uses and the *names* of its secrets (never values)."""

    provider: TaxProvider
    endpoint: str | None = None  # overrides the stage default (sandbox / production URL)
    credentials_secret: str  # Secrets Manager name holding the provider credentials (JSON)
    options: dict[str, str] = Field(default_factory=dict)  # non-secret provider options (app ids …)

    @field_validator("credentials_secret")
    @classmethod
    def _secret_name(cls, v: str) -> str:
        if not SECRET_NAME_RE.match(v):
            raise ValueError("a secret name must start with 'einvoice/' (letters, digits, /_+=.@-)")
        return v


class CatalogueItem(Frozen):
    tax_code: str = Field(pattern=r"^\d{19}$")
    tax_rate: Dec
    short_name: str = Field(min_length=1, max_length=40)
    name: str | None = None  # goods name on the invoice; the platform's name when absent
    unit: str | None = None
    specification: str | None = None
    zero_rate_flag: ZeroRateFlag | None = None


class InvoiceDefaults(Frozen):
    invoice_type: InvoiceType = InvoiceType.NORMAL
    issuer: str = Field(min_length=1, max_length=20)  # 开票人
    reviewer: str | None = None
    payee: str | None = None
    remark_template: str | None = None  # e.g. "订单号 {order_id}"


class DeliveryOptions(Frozen):
    channels: tuple[DeliveryChannel, ...] = (DeliveryChannel.LINK,)
    email_from: str | None = None
    sms_sender_id: str | None = None
    link_ttl_days: int = Field(default=90, ge=1, le=3650)  # the customer link's life (issue: default 90 days)
    # delivery by e-mail / SMS (chalicelib/services/deliver.py, docs/delivery.md)
    language: str = Field(default="zh", pattern=r"^(zh|en)$")  # the messages' language
    #: Jinja2 sources replacing the defaults (chalicelib/services/delivery_templates.py): names
    #: email_subject / email_text / email_html / sms, each with .zh or .en (e.g. "sms.zh").
    templates: dict[str, str] = Field(default_factory=dict)
    attachment_max_kb: int = Field(default=2048, ge=0, le=7000)  # larger PDFs are linked, not attached


class RedFormExpiry(StrEnum):
    """What happens to a red confirmation form the buyer did not confirm within 72 hours."""

    REAPPLY = "reapply"  # apply a new form (a new form serial) and wait again
    OPERATOR = "operator"  # hand the refund to an operator (status red_form_expired, alert)


class Store(Frozen):
    """One shop of a merchant's chain. Holds secret *names* only; values live in Secrets Manager."""

    store_id: str
    name: str = Field(min_length=1, max_length=100)
    merchant: str | None = None  # the chain this store belongs to (headquarters' view)
    seller: Seller
    provider: ProviderSettings
    webhook_secrets: dict[str, str] = Field(default_factory=dict)  # platform → secret name
    catalogue: dict[str, CatalogueItem] = Field(default_factory=dict)  # SKU → item
    default_item: CatalogueItem
    invoice_defaults: InvoiceDefaults
    pilot_percentage: int = Field(default=100, ge=0, le=100)  # share of orders issued automatically
    delivery: DeliveryOptions = Field(default_factory=DeliveryOptions)
    buyer_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN
    single_invoice_limit: Dec | None = None  # 开票限额 (excl. tax), when the store has one
    active: bool = True
    price_basis: PriceBasis = PriceBasis.INCLUSIVE
    shipping_item: CatalogueItem | None = None  # what shipping is invoiced as (e.g. 运输服务 9 %); None: refused
    fee_item: CatalogueItem | None = None  # what tips / fees are invoiced as; None: refused
    #: platform → what it is answered for an order that breaks a rule (defaults: ``rejection_reply_for``)
    rejection_replies: dict[str, RejectionReply] = Field(default_factory=dict)
    #: the red flow: an expired red confirmation form is re-applied or handed to an operator
    red_form_expired: RedFormExpiry = RedFormExpiry.REAPPLY

    @field_validator("store_id")
    @classmethod
    def _store_id(cls, v: str) -> str:
        if not STORE_ID_RE.match(v):
            raise ValueError("store_id: 2–63 characters of a-z, 0-9 and '-', starting with a letter or digit")
        return v

    @field_validator("webhook_secrets")
    @classmethod
    def _secret_names(cls, v: dict[str, str]) -> dict[str, str]:
        for platform, name in v.items():
            if not SECRET_NAME_RE.match(name):
                raise ValueError(f"webhook_secrets.{platform}: a secret name must start with 'einvoice/'")
        return v

    def catalogue_item(self, sku: str | None) -> CatalogueItem:
        if sku and sku in self.catalogue:
            return self.catalogue[sku]
        return self.default_item
