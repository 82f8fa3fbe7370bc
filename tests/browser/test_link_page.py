"""The customer's link page and the title form in headless Chromium on a phone-sized viewport."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from tests.support.customer import PDF, STORE, order_record, valid_credit_code


def link(api: Any, key: str, **kwargs: Any) -> str:
    from chalicelib import wiring

    now = kwargs.pop("now", time.time())
    issued = wiring.links().issue(STORE, key, now=now, ttl_days=kwargs.pop("ttl_days", 90))
    assert issued.url.startswith(api.url)
    return issued.url


def by_id(browser: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id)


def after_submit(browser: Any, css: str, seconds: float = 30) -> Any:
    """The element ``css`` of the page a form post leads to: a click does not wait for the answer (the
    post, its redirect and the next page can take seconds on a loaded machine)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds).until(lambda d: (d.find_elements(By.CSS_SELECTOR, css) or [None])[0])


def test_the_page_on_a_phone(api: Any, browser: Any, shot: Any) -> None:
    key, number = order_record(api.env, amount="108.00")
    browser.get(link(api, key))
    assert by_id(browser, "seller").text == "上海演示餐饮管理有限公司"
    assert by_id(browser, "amount").text == "¥108.00"
    assert "壹佰零捌圆整" in by_id(browser, "capitals").text
    assert by_id(browser, "number").text == number
    assert by_id(browser, "status").text.startswith("已开具")
    assert by_id(browser, "date").text == "2027-01-15"
    assert browser.execute_script("return window.innerWidth") == 375
    # mobile-first: nothing wider than the phone, the download button within reach
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 375
    button = by_id(browser, "download")
    assert button.is_displayed() and button.size["width"] > 300
    shot("issued")


def test_the_download_is_a_302_to_a_presigned_url_of_the_pdf(api: Any, browser: Any) -> None:
    key, _ = order_record(api.env)
    browser.get(link(api, key))
    href = by_id(browser, "download").get_attribute("href")
    assert href.startswith(api.url) and href.endswith("/pdf")
    status, headers, _ = api.get(href.removeprefix(api.url))
    assert status == 302
    location = headers["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=300" in location
    with urllib.request.urlopen(location, timeout=15) as reply:
        body = reply.read()
    assert body.startswith(b"%PDF") and body == PDF


def test_the_title_form_shows_the_error_beside_the_field_then_takes_a_good_id(
    api: Any, browser: Any, shot: Any
) -> None:
    from selenium.webdriver.common.by import By

    key, _ = order_record(api.env)
    browser.get(link(api, key))
    by_id(browser, "title-link").click()
    by_id(browser, "title").send_keys("上海某某科技有限公司")
    by_id(browser, "tax_id").send_keys("91310115MA1K4ABCI2")  # I: not in GB 32100
    by_id(browser, "submit").click()
    error = after_submit(browser, "#tax_id-error-1")
    field = by_id(browser, "tax_id")
    assert "统一社会信用代码不能包含字母I" in error.text
    assert field.get_attribute("aria-invalid") == "true"
    assert 0 <= error.location["y"] - field.location["y"] < 120  # right below its field
    assert by_id(browser, "title").get_attribute("value") == "上海某某科技有限公司"
    assert not browser.find_elements(By.ID, "title-error-1")
    shot("bad-tax-id")

    field.clear()
    field.send_keys(valid_credit_code())
    by_id(browser, "submit").click()
    assert "已提交换开申请" in after_submit(browser, ".notice").text
    assert "已提交换开申请" in by_id(browser, "title-change").text
    shot("change-requested")


def test_expired_revoked_and_forged_links(api: Any, browser: Any, shot: Any) -> None:
    from chalicelib import wiring

    key, _ = order_record(api.env)
    expired = link(api, key, ttl_days=1, now=time.time() - 3 * 86_400)
    revoked = link(api, key)
    assert wiring.links().revoke(revoked.rsplit("/", 1)[1], now=time.time()) == 1
    forged = api.url + "/i/" + "Z" * 32
    for name, url, status, heading in (
        ("expired", expired, 410, "发票链接已过期"),
        ("revoked", revoked, 410, "发票链接已失效"),
        ("forged", forged, 404, "找不到该发票链接"),
    ):
        browser.get(url)
        assert browser.find_element("css selector", "h1").text.startswith(heading)
        assert by_id(browser, "error").get_attribute("data-status") == str(status)
        assert api.get(url.removeprefix(api.url))[0] == status
        shot(name)
