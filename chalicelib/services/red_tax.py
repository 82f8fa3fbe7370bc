"""The red flow's tax steps: the confirmation form and the red invoice (the ledger writes: ``red_settle``).

Exactly once, as the blue issue (``chalicelib/services/issue.py``):

- **Form**: applied under a deterministic serial (``order_keys.red_form_serial``: round 1 is the
  refund record's ``serial_for``; an expired form is re-applied under round 2, 3 …). Applying again
  under the same serial returns the same form (the providers' duplicate check on the form serial —
  Nuonuo ``billId``, STA ``sqlsh``; assumed of the real platforms, as the sandbox does), so an apply
  whose reply was lost is simply applied again. 01 / 04 → the red invoice; 02 / 03 (the buyer must
  confirm) → ``red_form_applied`` and a delayed re-check (``recheck_seconds``, never sleeping); an
  alert once the form is ``alert_hours`` old; 07 (expired) → applied again, or ``red_form_expired``
  for an operator (``Store.red_form_expired``); refused / cancelled (05, 06, 08–10) → ``red_failed``.
- **Red invoice**: issued under the form's serial (Nuonuo issues it itself once the form is 01/04 and
  answers the explicit request with a duplicate, which is then fetched by query); whenever a red
  request may have been acted on, the next attempt **queries by serial first**; the configuration
  (provider, endpoint, seller) is pinned on the record like the blue's.
- **Record**: the red invoice number on the refund record, and on the blue record's refund book.

The reservation on the blue stays when a form is refused or expires into an operator's hands: what
was reserved is never spent twice, and the operator releases or re-runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    DuplicateTaxError,
    PermanentTaxError,
    RetryableTaxError,
)
from chalicelib.domain.invoice_document import RED_ORDER_FIELD, red_order_text
from chalicelib.domain.models import RedFormExpiry, RedReason, Store
from chalicelib.domain.order_state import OrderEvent
from chalicelib.domain.red_allocation import RefundBook
from chalicelib.domain.taxpayer import mask
from chalicelib.services.exchange import Exchange, Session
from chalicelib.services.outcomes import Outcome
from chalicelib.services.ports import CredentialsPort, FieldValue, ProviderPort
from chalicelib.services.red_ports import RedSettings, red_provider
from chalicelib.services.red_settle import RedAttempt, RedSettler
from chalicelib.taxapi.base import (
    InvoiceResult,
    InvoiceStatus,
    RedForm,
    RedFormRequest,
    RedFormState,
)

_WAITING = frozenset({RedFormState.WAITING_BUYER, RedFormState.WAITING_SELLER})
#: A form is applied at most this many times for one refund (each expiry re-applies once).
MAX_FORM_ROUNDS = 5
#: Hidden messages come back within SQS's visibility limit.
MAX_HIDE_SECONDS = 12 * 3600


class RedTax:
    def __init__(
        self,
        *,
        settle: RedSettler,
        credentials: CredentialsPort,
        providers: ProviderPort,
        exchange: Exchange,
        settings: RedSettings,
        first_check_seconds: Callable[[Store], int],
        clock: Callable[[], datetime],
    ) -> None:
        self.settle = settle
        self.ledger = settle.ledger
        self.log = settle.log
        self.credentials = credentials
        self.providers = providers
        self.exchange = exchange
        self.settings = settings
        self.first_check_seconds = first_check_seconds
        self.clock = clock

    # --- the tax steps ----------------------------------------------------------------------------
    def run(self, a: RedAttempt) -> Outcome:
        try:
            old = a.record.text("pin")
            if old is not None and old != a.pin and a.unknown and a.step != "match":
                return self.settle.end(
                    a,
                    OrderEvent.RED_FAIL,
                    "RedBlocked",
                    {"last_error": "tax configuration changed while a red request's outcome was unknown"},
                    alert=f"The tax configuration of store {a.store.store_id} changed while a red request of "
                    f"{a.key} (serial {a.serial}) had an unknown outcome; check the old platform before retrying.",
                )
            credentials = self.credentials.load(a.store)
            a.session = Session(a.store, credentials, self.providers.get(a.store, credentials))
            if a.step == "issue":
                return self._issue(a)
            return self._form(a)
        except AuthTaxError as exc:
            return self.settle.release(a, exc)
        except AmbiguousTaxError as exc:
            a.unknown = a.unknown or a.sent.may_have_left
            return self.settle.release(a, exc)
        except PermanentTaxError as exc:
            if a.sent.may_have_left:
                return self.settle.failed(a, exc)
            return self.settle.release(a, exc)
        except RetryableTaxError as exc:
            return self.settle.release(a, exc)
        except Exception as exc:
            self.log.exception("unexpected error in a red step", extra=a.keys)
            return self.settle.release(a, exc)

    def _form(self, a: RedAttempt) -> Outcome:
        assert a.session is not None and a.red is not None
        a.step = "form"
        if a.form_id and a.stored_round == a.round:
            return self._form_state(a, self._query_form(a, a.form_id))
        form = self._apply(a)
        if form is None:  # the red invoice exists already (Nuonuo issued it): fetch it
            a.step, a.unknown = "issue", True
            return self._issue(a)
        return self._form_state(a, self._settled(a, form))

    def _query_form(self, a: RedAttempt, form_id: str) -> RedForm:
        assert a.session is not None
        return self.exchange.call(
            a.session,
            "red_form_query",
            lambda q: red_provider(q).build_red_form_query(form_id, self.clock()),
            lambda q, rq, rs: red_provider(q).parse_red_form_query(rq, rs),
            keys=a.keys,
            params={"form_id": form_id},
        )

    def _settled(self, a: RedAttempt, form: RedForm) -> RedForm:
        """An apply may answer before the platform decided whether the buyer must confirm (Nuonuo 15):
        one query tells."""
        a.form_id = form.form_id
        a.sent.may_have_left = False  # the platform answered: the form is known by its id now
        return self._query_form(a, form.form_id) if form.state in _WAITING else form

    def _apply(self, a: RedAttempt) -> RedForm | None:
        assert a.session is not None and a.red is not None
        red = a.red
        if red.original_invoice_number is None or red.original_issued_at is None:
            raise PermanentTaxError("the blue record has no invoice number or issue time", code="blue_incomplete")
        request = RedFormRequest(
            serial=a.serial,
            original_invoice_number=red.original_invoice_number,
            original_issued_at=red.original_issued_at,
            reason=red.red_reason or RedReason.RETURN,
            seller_tax_id=a.store.seller.tax_id,
            buyer_name=red.buyer.name,
            buyer_tax_id=red.buyer.tax_id,
            order=red,
        )
        self.log.info(
            "applying a red form",
            extra={**a.keys, "round": a.round, "total": str(red.total), "buyer_tax_id": mask(red.buyer.tax_id)},
        )
        if a.applied_at is None or a.stored_round != a.round:
            a.applied_at = self.clock().timestamp()
        try:
            return self.exchange.call(
                a.session,
                "red_form_apply",
                lambda q: red_provider(q).build_red_form_apply(request, self.clock()),
                lambda q, rq, rs: red_provider(q).parse_red_form_apply(rq, rs),
                keys=a.keys,
                sent=a.sent,
                params={"serial": a.serial, "order": red.model_dump(mode="json")},
            )
        except DuplicateTaxError:
            return None
        except (RetryableTaxError, AuthTaxError):
            a.sent.may_have_left = False
            raise

    def _form_state(self, a: RedAttempt, form: RedForm) -> Outcome:
        a.form_id, a.form_state = form.form_id, form.state.value
        if form.state.allows_red_invoice:
            a.step = "issue"
            return self._issue(a)
        now = self.clock().timestamp()
        applied = a.applied_at if a.applied_at is not None else now
        a.applied_at = applied
        if form.state in _WAITING:
            return self._wait_form(a, now - applied)
        if form.state is RedFormState.EXPIRED:
            retried = int(a.record.text("operator_retry_at") or 0) > applied  # an operator asked again
            if (a.store.red_form_expired is RedFormExpiry.REAPPLY or retried) and a.round < MAX_FORM_ROUNDS:
                self.settle.metric("RedFormReapplied")
                self.log.info("red form expired: applying a new one", extra={**a.keys, "round": a.round + 1})
                a.round += 1
                a.form_id = a.form_state = None
                a.applied_at = None
                renewed = self._apply(a)
                if renewed is None:
                    a.step, a.unknown = "issue", True
                    return self._issue(a)
                return self._form_state(a, self._settled(a, renewed))
            return self.settle.end(
                a,
                OrderEvent.RED_EXPIRED,
                "RedFormExpired",
                {"last_error": "the buyer did not confirm the red form within 72 hours"},
                alert=f"The red confirmation form {form.form_id} of refund {a.key} expired unconfirmed. "
                "Ask the buyer, then send it round again (event red_operator_retry: a new form is applied).",
            )
        return self.settle.end(
            a,
            OrderEvent.RED_FAIL,
            "RedFormRefused",
            {"last_error": f"red form {form.form_id} is {form.state.value} (refused or cancelled)"},
            alert=f"The red confirmation form {form.form_id} of refund {a.key} was refused or cancelled "
            f"(state {form.state.value}); the refund is not reversed.",
        )

    def _wait_form(self, a: RedAttempt, age: float) -> Outcome:
        expires_in = self.settings.expiry_hours * 3600 - age
        extra: dict[str, FieldValue] = {}
        if age >= self.settings.alert_hours * 3600 and a.record.text("form_alerted_at") is None:
            extra["form_alerted_at"] = str(int(self.clock().timestamp()))
            self.settle.metric("RedFormNearExpiry")
            self.settle.alert(
                f"einvoice: red form of {a.key} expires in {max(0, int(expires_in // 3600))} h",
                f"The red confirmation form {a.form_id} of refund {a.key} still waits for the buyer's "
                f"confirmation, {int(age // 3600)} hours after it was applied; it expires at 72 hours. "
                "Remind the buyer to confirm it on the tax platform.",
            )
        delay = int(min(self.settings.recheck_seconds, max(1, expires_in + 1), MAX_HIDE_SECONDS))
        return self.settle.later(
            a, OrderEvent.RED_APPLY, None, counter="checks", delay=delay, extra=extra, bounded=False
        )

    def _issue(self, a: RedAttempt) -> Outcome:
        assert a.session is not None and a.red is not None
        a.step = "issue"
        order = a.red.model_copy(update={"red_form_id": a.form_id})
        if a.unknown:
            found = self.exchange.query(a.session, (a.serial,), self.clock(), a.keys).get(a.serial)
            a.unknown = False
            if found is not None:
                return self._found(a, found)
        if not a.form_id:  # Nuonuo issued it under the form's serial and the query does not show it yet
            a.unknown = True  # the next attempt queries first again
            raise AmbiguousTaxError("a red invoice exists under the serial, the query finds none yet")
        serial = a.serial
        try:
            self.exchange.call(
                a.session,
                "issue_red",
                lambda q: red_provider(q).build_issue_red(order, serial, self.clock()),
                lambda q, rq, rs: red_provider(q).parse_issue_red(rq, rs),
                keys=a.keys,
                sent=a.sent,
                params={"serial": serial, "order": order.model_dump(mode="json")},
            )
        except DuplicateTaxError:
            self.log.info("red serial already used: fetching the red invoice", extra=a.keys)
        except (RetryableTaxError, AuthTaxError):
            a.sent.may_have_left = False
            raise
        a.unknown = True  # accepted (or a duplicate): what exists is found by query from here on
        if self.first_check_seconds(a.store) <= 0:
            found = self.exchange.query(a.session, (serial,), self.clock(), a.keys).get(serial)
            if found is not None:
                return self._found(a, found)
        delay = max(1, self.first_check_seconds(a.store))
        return self.settle.later(a, OrderEvent.RED_WAIT, None, counter="checks", delay=delay)

    def _found(self, a: RedAttempt, result: InvoiceResult) -> Outcome:
        if result.status is InvoiceStatus.PENDING:
            return self.settle.later(a, OrderEvent.RED_WAIT, None, counter="checks")
        if result.status is not InvoiceStatus.ISSUED:
            error = PermanentTaxError(result.failure_reason or f"the platform reports {result.status.value}")
            return self.settle.failed(a, error)
        issued_at = (result.issued_at or self.clock()).isoformat()
        fields: dict[str, FieldValue] = {
            "invoice_number": result.invoice_number,
            "issued_at": issued_at,
            "pdf_url": result.pdf_url,
            "ofd_url": result.ofd_url,
            "xml_url": result.xml_url,
            "provider_status": result.provider_status,
            "last_error": None,
            # the red invoice as issued, for its PDF, page and delivery (invoice_document.RED_ORDER_FIELD)
            RED_ORDER_FIELD: red_order_text(a.red.model_copy(update={"red_form_id": a.form_id}))
            if a.red is not None
            else None,
        }
        outcome = self.settle.end(a, OrderEvent.RED_ISSUED, "RedIssued", fields)
        if not outcome.lost and result.invoice_number:
            self._note_on_blue(a, result.invoice_number)
            self.settle.issued(a.key)
        return Outcome(
            a.key, outcome.status, invoice_number=result.invoice_number, detail=outcome.detail, lost=outcome.lost
        )

    def _note_on_blue(self, a: RedAttempt, number: str) -> None:
        for _ in range(5):
            blue = self.ledger.get_order(a.blue_key)
            if blue is None:
                return
            book = RefundBook.of(blue.fields)
            if book.red_invoices.get(a.key) == number:
                return
            fresh = book.with_red_invoice(a.key, number)
            written = self.ledger.revise(
                a.blue_key,
                revision=book.revision,
                statuses=frozenset({blue.status}),
                now=self.clock().timestamp(),
                fields=dict(fresh.fields()),
            )
            if written.ok:
                return
        self.log.warning("could not note the red invoice on the blue record", extra=a.keys)
