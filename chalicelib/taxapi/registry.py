"""Which ``Provider`` serves a store: built from the store's settings, its credentials and the stage.

``provider_for`` picks the class by ``store.provider.provider`` (``sta`` | ``nuonuo``), the endpoint
(``store.provider.endpoint`` overrides the stage default ``STA_ENDPOINT`` / ``NUONUO_ENDPOINT``), the
store's non-secret options and the seller tax id. A Nuonuo provider needs an access token: it comes
from a :class:`~chalicelib.taxapi.tokens.TokenCache` kept per container and per store (so a warm
Lambda does not spend the token endpoint's small monthly quota), keyed also by a digest of the app
key and secret so a rotated secret gets a fresh cache. The token URL is ``NUONUO_TOKEN_URL`` unless
the store's options name one (``token_url``).

:class:`Providers` is the port the issuing use case holds: ``get`` a provider, and after an
``AuthTaxError`` ask ``refreshed`` for one with a new token (Nuonuo token errors 070304–070307 only;
``None`` means a refresh cannot help). Every token request it sends is told to the
:class:`TokenObserver` given to ``observe_tokens`` (the exchange's: the audit archive's ``token`` record).

Nothing here logs or sends except through the ``send`` callable given (the HTTP transport).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from chalicelib.domain.errors import ConfigurationError, TaxError
from chalicelib.domain.models import Store, TaxProvider
from chalicelib.taxapi.base import Credentials, HttpRequest, HttpResponse, Provider, TokenObserver
from chalicelib.taxapi.nuonuo import NuonuoProvider
from chalicelib.taxapi.nuonuo_wire import is_token_error
from chalicelib.taxapi.sta import StaProvider
from chalicelib.taxapi.tokens import TokenCache

Send = Callable[[HttpRequest], HttpResponse]


class EndpointSettings(Protocol):
    """The part of ``chalicelib.config.Settings`` the registry reads."""

    @property
    def sta_endpoint(self) -> str: ...
    @property
    def nuonuo_endpoint(self) -> str: ...
    @property
    def nuonuo_token_url(self) -> str: ...


_lock = threading.Lock()
_token_caches: dict[tuple[str, str, str], TokenCache] = {}


def token_url_for(store: Store, settings: EndpointSettings) -> str:
    return store.provider.options.get("token_url") or settings.nuonuo_token_url


def token_cache_for(store: Store, credentials: Credentials, settings: EndpointSettings, send: Send) -> TokenCache:
    """The container's token cache for this store (created on first use)."""
    url = token_url_for(store, settings)
    digest = hashlib.sha256(
        f"{credentials.values.get('app_key', '')}\0{credentials.values.get('app_secret', '')}".encode()
    ).hexdigest()
    key = (store.store_id, url, digest)
    with _lock:
        cache = _token_caches.get(key)
        if cache is None:
            cache = TokenCache(credentials, send, token_url=url)
            _token_caches[key] = cache
        else:
            cache.use_transport(send)  # the current caller's (its observer records the fetch)
        return cache


def clear_token_caches() -> None:
    """Forget every cached token (tests; a rotated secret is picked up by key anyway)."""
    with _lock:
        _token_caches.clear()


def provider_for(
    store: Store,
    credentials: Credentials,
    settings: EndpointSettings,
    *,
    send: Send | None = None,
    force_token_refresh: bool = False,
) -> Provider:
    """The provider for ``store``. ``send`` (the container's transport, from the composition root)
    is used only to fetch a Nuonuo token."""
    options = dict(store.provider.options)
    seller = store.seller.tax_id
    endpoint = endpoint_for(store, settings)
    if store.provider.provider is TaxProvider.STA:
        return StaProvider(credentials, endpoint, seller_tax_id=seller, options=options)
    if store.provider.provider is TaxProvider.NUONUO:
        if send is None:
            raise ConfigurationError("a Nuonuo provider needs a transport to fetch its token", code="no_transport")
        cache = token_cache_for(store, credentials, settings, send)
        token = cache.force_refresh() if force_token_refresh else cache.get()
        try:
            return NuonuoProvider(credentials, endpoint, seller_tax_id=seller, access_token=token, options=options)
        except ValueError as exc:  # a malformed endpoint URL
            raise ConfigurationError(f"store {store.store_id}: {exc}", code="bad_endpoint") from None
    raise ConfigurationError(f"store {store.store_id}: unknown provider", code="unknown_provider")


def endpoint_for(store: Store, settings: EndpointSettings) -> str:
    """The endpoint ``store``'s invoices go to (the store's own, else the stage default)."""
    if store.provider.provider is TaxProvider.NUONUO:
        return store.provider.endpoint or settings.nuonuo_endpoint
    return store.provider.endpoint or settings.sta_endpoint


def pin_for(store: Store, settings: EndpointSettings) -> str:
    """What an invoice of ``store`` is issued under — provider, endpoint, seller tax id — as one text.

    The issuing service writes it on the order record with the first request that may leave; a later
    attempt under another pin while the outcome is unknown is refused (a query on another platform,
    or for another seller, proves nothing about the first)."""
    return f"{store.provider.provider.value}|{endpoint_for(store, settings)}|{store.seller.tax_id}"


class Providers:
    """The issuing use case's provider port: stage settings and the transport bound once."""

    def __init__(self, settings: EndpointSettings, send: Send) -> None:
        self._settings = settings
        self._send = send
        self._observer: TokenObserver | None = None

    def observe_tokens(self, observer: TokenObserver) -> None:
        """Tell ``observer`` of every token request sent from now on."""
        self._observer = observer

    def _token_send(self, store: Store) -> Send:
        observer = self._observer
        if observer is None:
            return self._send

        def send(request: HttpRequest) -> HttpResponse:
            at, started = datetime.now(UTC), time.monotonic()
            response: HttpResponse | None = None
            failure: BaseException | None = None
            try:
                response = self._send(request)
                return response
            except BaseException as exc:
                failure = exc
                raise
            finally:
                observer(
                    store=store.store_id,
                    provider=store.provider.provider.value,
                    request=request,
                    response=response,
                    failure=failure,
                    at=at,
                    latency_ms=round((time.monotonic() - started) * 1000),
                )

        return send

    def get(self, store: Store, credentials: Credentials) -> Provider:
        return provider_for(store, credentials, self._settings, send=self._token_send(store))

    def pin(self, store: Store) -> str:
        return pin_for(store, self._settings)

    def refreshed(self, store: Store, credentials: Credentials, error: TaxError) -> Provider | None:
        """A provider with a fresh access token when ``error`` is one a new token may cure, else None."""
        if store.provider.provider is not TaxProvider.NUONUO or not is_token_error(error):
            return None
        return provider_for(store, credentials, self._settings, send=self._token_send(store), force_token_refresh=True)
