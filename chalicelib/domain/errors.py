"""The one exception tree of the gateway.

Every error the code raises on purpose is an ``EInvoiceError``; ``app.py`` maps each branch to an
HTTP status (routes) or to a batch-item result (worker). The tree::

    EInvoiceError
    ├── WebhookError                     intake: what the platform sent cannot be accepted
    │   ├── UnknownPlatform              404  no module for /webhooks/{platform}
    │   ├── SignatureInvalid             401  bad / missing / malformed signature or header (reason code)
    │   ├── TimestampOutOfWindow         401  signed timestamp outside ±tolerance (replay)
    │   ├── PayloadTooLarge              413  body over the limit
    │   ├── MalformedPayload             422  signed, but the body is not the documented shape
    │   │   └── UnusableContent               (intake: recorded as rejected) signed, content unusable:
    │   │                                     carries [Violation] and what identifies the order
    │   └── IgnoredEvent                 200  genuine, but nothing to invoice (other topic/status)
    ├── NotFound                         404
    │   └── UnknownStore                 404  no store with that id
    ├── ValidationFailed                 422  the order breaks invoice rules: carries [Violation]
    │   └── OrderRejected                422  … and was recorded as rejected under its order key
    ├── ConfigurationError                    a store or setting is unusable (names the field)
    │   └── TaxCodeTableError (domain/taxcodes.py)  a tax code table file is invalid (also a ValueError)
    ├── InfrastructureUnavailable        503  AWS (or another dependency) failed: the platform retries
    ├── CryptoError (crypto/padding.py)       a key, IV, ciphertext or signature has the wrong shape
    │   └── PaddingError                      bad PKCS#7 padding after decryption (wrong key / corrupted)
    └── TaxError                              the tax platform said no (or did not say)
        ├── RetryableTaxError                 system busy, 5xx, throttled: retry with backoff
        ├── AmbiguousTaxError                 sent, no reply (timeout, connection lost, garbled reply,
        │                                     an undocumented code): outcome unknown, query by serial
        │                                     before any new issue
        ├── DuplicateTaxError                 already issued: fetch the existing invoice
        ├── PermanentTaxError                 parameter errors (names the field): never retry as is
        │   └── UnsupportedOperation          the provider does not offer it (e.g. void of 数电票)
        └── AuthTaxError                      permission denied, signature rejected, token expired:
                                              alert, pause the store

Errors carry the context a caller needs (codes, fields, provider code) and never secret material.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.domain.models import Violation


class EInvoiceError(Exception):
    """Root of every error raised on purpose by this project."""

    code: str = "error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message or self.__class__.__name__
        if code is not None:
            self.code = code


# --- intake ------------------------------------------------------------------------------------
class WebhookError(EInvoiceError):
    code = "webhook_error"


class UnknownPlatform(WebhookError):
    code = "unknown_platform"


class SignatureInvalid(WebhookError):
    """The signature (or a header it depends on) is missing, malformed or wrong.

    ``code`` is a stable reason code (``missing_header``, ``bad_signature``, ``malformed_header``,
    ``probe_signature``, ``unknown_key`` …) safe to return to the caller: it never contains key material.
    """

    code = "bad_signature"


class TimestampOutOfWindow(SignatureInvalid):
    code = "stale_timestamp"


class PayloadTooLarge(WebhookError):
    code = "payload_too_large"


class MalformedPayload(WebhookError):
    code = "malformed_payload"


class UnusableContent(MalformedPayload):
    """Signed — the signature was verified — but the content cannot be used: a negative or non-numeric
    amount, a missing field, a body that is not the documented shape.

    Raised by a platform module only after its signature check (``webhooks.base.signed_content``), so
    the intake may record it: it carries the violations and whatever identifies the order, each None
    when it cannot be read (``kind`` is ``"paid"`` or ``"refunded"``).
    """

    code = "invalid_content"

    def __init__(
        self,
        violations: list[Violation] | tuple[Violation, ...],
        *,
        event_id: str | None = None,
        kind: str | None = None,
        order_id: str | None = None,
        refund_id: str | None = None,
        message: str = "",
    ) -> None:
        self.violations = tuple(violations)
        self.event_id = event_id
        self.kind = kind
        self.order_id = order_id
        self.refund_id = refund_id
        super().__init__(message or "; ".join(f"{v.field}: {v.code}" for v in self.violations[:5]))


class IgnoredEvent(WebhookError):
    """A genuine event that needs no invoice (another topic, an unpaid status …): answer 2xx."""

    code = "ignored"


# --- lookups and validation --------------------------------------------------------------------
class NotFound(EInvoiceError):
    code = "not_found"


class UnknownStore(NotFound):
    code = "unknown_store"


class ValidationFailed(EInvoiceError):
    """The order breaks one or more invoice rules; all violations are reported at once."""

    code = "invalid_order"

    def __init__(self, violations: list[Violation] | tuple[Violation, ...]) -> None:
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.code}" for v in self.violations[:5])
        super().__init__(f"{len(self.violations)} violation(s): {summary}")


class OrderRejected(ValidationFailed):
    """The order breaks rules and is recorded as ``rejected`` under ``order_key``: the answer names it."""

    def __init__(self, violations: list[Violation] | tuple[Violation, ...], *, order_key: str) -> None:
        super().__init__(violations)
        self.order_key = order_key


class ConfigurationError(EInvoiceError):
    code = "configuration_error"


class InfrastructureUnavailable(EInvoiceError):
    code = "unavailable"


# --- tax platform ------------------------------------------------------------------------------
class TaxError(EInvoiceError):
    """The tax platform refused, or its answer is unknown.

    ``provider_code`` is the platform's own code (``E9106``, ``E3001`` …), ``field`` the request field
    it blames when it names one.
    """

    code = "tax_error"

    def __init__(
        self,
        message: str = "",
        *,
        provider_code: str | None = None,
        field: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.provider_code = provider_code
        self.field = field


class RetryableTaxError(TaxError):
    code = "tax_retryable"


class AmbiguousTaxError(TaxError):
    code = "tax_ambiguous"


class DuplicateTaxError(TaxError):
    """Already issued for this serial / order number. ``existing`` identifies it when the reply says."""

    code = "tax_duplicate"

    def __init__(
        self,
        message: str = "",
        *,
        provider_code: str | None = None,
        field: str | None = None,
        existing: str | None = None,
    ) -> None:
        super().__init__(message, provider_code=provider_code, field=field)
        self.existing = existing


class PermanentTaxError(TaxError):
    code = "tax_permanent"


class UnsupportedOperation(PermanentTaxError):
    code = "tax_unsupported"


class AuthTaxError(TaxError):
    code = "tax_auth"
