"""Webhook platforms, one module each; imported on first use so a cold start loads only its own."""

from __future__ import annotations

import importlib
from types import ModuleType

from chalicelib.domain.errors import UnknownPlatform

PLATFORMS: tuple[str, ...] = (
    "standard",
    "wechatpay",
    "alipay",
    "douyin",
    "youzan",
    "shopify",
    "stripe",
    "woocommerce",
)


def platform(name: str) -> ModuleType:
    if name not in PLATFORMS:
        raise UnknownPlatform(f"no webhook platform {name!r}; known: {', '.join(PLATFORMS)}")
    return importlib.import_module(f"chalicelib.webhooks.{name}")
