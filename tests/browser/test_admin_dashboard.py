"""The headquarters dashboard in headless Chromium: sign in through the form, the charts (server-side
SVG, no JavaScript needed), a store operator kept to its store, sign out."""

from __future__ import annotations

from typing import Any

from tests.support import invoices

A, B = "demo-shanghai", "demo-hangzhou"
PASSWORD = "browser tier password"


def _sign_in(browser: Any, api: Any, name: str) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(api.url + "/admin/login")
    browser.find_element(By.NAME, "name").send_keys(name)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _arrived(browser, "/admin")


def _arrived(browser: Any, path: str) -> None:
    """Wait for the navigation a click started (a click returns before the next page has loaded)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 15).until(lambda d: d.current_url.split("?")[0].rstrip("/").endswith(path))


def test_dashboard_in_chromium(api: Any, browser: Any, shot: Any) -> None:
    from selenium.webdriver.common.by import By

    from chalicelib import wiring

    ledger, counter = wiring.ledger(), wiring.invoice_counter()
    for total in ("30.00", "45.50", "12.00"):
        invoices.issue(ledger, counter, A, [("3070401000000000000", total)])
    failed = invoices.fail(ledger, counter, A, [("3070401000000000000", "9.90")])
    invoices.issue(ledger, counter, B, [("3070402000000000000", "680.00")])
    auth = wiring.operator_auth()
    auth.add("browser-hq", PASSWORD, None)
    auth.add("browser-sh", PASSWORD, [A])

    browser.get(api.url + "/admin")  # without a session: the login page
    assert browser.current_url.endswith("/admin/login")
    _sign_in(browser, api, "browser-hq")
    assert browser.current_url.rstrip("/").endswith("/admin")
    assert len(browser.find_elements(By.TAG_NAME, "svg")) == 4  # trend, amount, tax codes, SKUs
    assert int(browser.find_element(By.ID, "issued").text) >= 4
    shot("chain")
    browser.get(api.url + f"/admin?store={A}")
    assert browser.find_element(By.ID, "issued").text == "3"
    assert browser.find_element(By.ID, "amount").text == "¥87.50"
    assert f"einvoice orders show {failed}" in browser.find_element(By.ID, "open").text
    shot("store")

    _sign_in(browser, api, "browser-sh")
    rows = browser.find_elements(By.CSS_SELECTOR, "#stores tr td:first-child")
    assert [r.text for r in rows] == [A]
    assert "680" not in browser.page_source
    browser.find_element(By.CSS_SELECTOR, "form[action='/admin/logout'] button").click()
    _arrived(browser, "/admin/login")
    assert browser.current_url.endswith("/admin/login")
    browser.get(api.url + "/admin")
    assert browser.current_url.endswith("/admin/login")  # the session ended
