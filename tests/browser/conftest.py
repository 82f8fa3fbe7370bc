"""The browser tier: Debian's headless Chromium (selenium 4, the system chromedriver) against the real
local API — ``chalice local`` as a process, over the session's moto server — on a 375 px phone viewport.

One API process and one browser for the whole session. Chromium and chromedriver come from
``make browser`` (``infra/setup_browser.py``); without them the tier skips with the way to install
them, or fails when ``CI`` is set. Screenshots go to ``.local/artifacts/screenshots/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.setup_browser import CHROMEDRIVER, CHROMIUM, INSTALL_HINT, missing
from tests.support.customer import seed_stores
from tests.support.processes import ROOT, free_port, process

SCREENSHOTS = ROOT / ".local" / "artifacts" / "screenshots"
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _require_browser() -> None:
    """Skip without Chromium (with how to install it); under CI that is a failure, not a skip."""
    absent = missing()
    if absent:
        reason = f"{', '.join(absent)} missing: {INSTALL_HINT} (or `make browser` as root)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@dataclass
class Api:
    url: str
    env: dict[str, str]

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """One request, redirects not followed."""

        class _NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(self.url + path, timeout=15) as reply:
                return reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="session")
def api(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Fresh resources in the session's moto server, the example stores, and ``chalice local``."""
    _require_browser()
    import boto3

    from chalicelib import config, wiring
    from chalicelib.adapters import aws
    from infra.local import bootstrap

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", moto_url)
        session = boto3.session.Session(region_name="cn-north-1")
        aws.set_session(session)
        created = bootstrap(session, prefix=f"b{uuid.uuid4().hex[:8]}")
        port = free_port()
        env = {
            **created.env,
            "AWS_ENDPOINT_URL": moto_url,
            "STAGE": "local",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
        }
        for name, value in env.items():
            mp.setenv(name, value)
        config.settings.cache_clear()
        wiring.reset()
        seed_stores(created.env)
        chalice = str(Path(sys.executable).parent / "chalice")
        argv = [chalice, "local", "--host", "127.0.0.1", "--port", str(port), "--stage", "local", "--no-autoreload"]
        log = tmp_path_factory.mktemp("browser-api") / "api.log"
        with process(argv, env=env, ready_url=f"http://127.0.0.1:{port}/health", log=log):
            yield Api(f"http://127.0.0.1:{port}", env)
        wiring.reset()
        config.settings.cache_clear()
        aws.set_session(None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session, as a 375 px wide phone."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="einvoice-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=375,812", "--lang=zh-CN"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture()
def shot(browser: Any, request: pytest.FixtureRequest) -> Any:
    """``shot("name")`` saves the page as ``.local/artifacts/screenshots/<test>-<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        browser.save_screenshot(str(path))
        return path

    return save
