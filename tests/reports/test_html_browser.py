"""The HTML report in a real browser (Debian's Chromium, headless): rows, filters, a click that shows a fix,
no script error, no network request, hostile names as text, light and dark mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from preflight.reports import html
from tests.report_samples import synthetic_fleet
from tests.reports.browser import chromium, console_errors, file_url, requested_urls

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        driver.get("about:blank")
        requested_urls(driver)  # drop what the browser itself loaded before the report
        console_errors(driver)
        yield driver


@pytest.fixture()
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    report = synthetic_fleet(12, names={3: XSS})
    path = tmp_path / "report.html"
    path.write_text(html.render(report), encoding="utf-8")
    browser.get(file_url(path))
    yield browser
    browser.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert console_errors(browser) == []
    urls = requested_urls(browser)
    assert file_url(path) in urls, "the performance log records the page's requests"
    assert [u for u in urls if u != file_url(path)] == [], "the report fetched something"


def _rows(driver: Any) -> list[Any]:
    return driver.find_elements("css selector", "#matrix tbody tr")


def _visible(driver: Any) -> list[str]:
    return [tr.get_attribute("data-name") for tr in _rows(driver) if tr.is_displayed()]


def test_one_row_per_cluster_and_no_request(page: Any) -> None:
    assert len(_rows(page)) == 12
    assert page.find_element("id", "shown").text == "12 of 12 clusters shown"
    assert page.execute_script("return document.images.length") == 0
    names = [tr.find_element("css selector", "th").text for tr in _rows(page)]
    assert XSS in names, "the hostile context name shows as text"
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        page.switch_to.alert.text  # noqa: B018  (an executed onerror=alert(1) would have opened one)


def test_filter_hides_passing_clusters(page: Any) -> None:
    page.find_element("css selector", "input[name=status][value=pass]").click()
    visible = _visible(page)
    assert len(visible) == 10
    assert not any(name.endswith("-healthy") for name in visible)
    assert page.find_element("id", "shown").text == "10 of 12 clusters shown"
    page.find_element("css selector", "input[name=status][value=muted]").click()
    page.find_element("css selector", "input[name=status][value=warn]").click()
    assert sorted(_visible(page)) == sorted(
        n for n in _visible(page) if n.split("-")[-1] in ("refused", "filtered", "error")
    )
    assert len(_visible(page)) == 6


def test_filters_by_provider_category_and_text(page: Any) -> None:
    from selenium.webdriver.support.select import Select

    Select(page.find_element("id", "f-provider")).select_by_value("eks")
    assert all(tr.get_attribute("data-provider") == "eks" for tr in _rows(page) if tr.is_displayed())
    Select(page.find_element("id", "f-provider")).select_by_value("")
    Select(page.find_element("id", "f-category")).select_by_value("broker")
    assert sorted(_visible(page)) == ["cluster-0002-broker-filtered", "cluster-0008-broker-filtered"]
    Select(page.find_element("id", "f-category")).select_by_value("")
    page.find_element("id", "f-text").send_keys("SelfSubjectAccessReview")
    assert sorted(_visible(page)) == ["cluster-0005-probe-error", "cluster-0011-probe-error"]


def test_sort_by_name(page: Any) -> None:
    page.find_element("css selector", "button.sort[data-key=name]").click()
    names = [tr.get_attribute("data-name") for tr in _rows(page)]
    assert names == sorted(names, key=str.lower)
    page.find_element("css selector", "button.sort[data-key=name]").click()
    assert [tr.get_attribute("data-name") for tr in _rows(page)] == sorted(names, key=str.lower, reverse=True)


def test_clicking_a_cell_shows_the_fix_with_a_copy_button(page: Any) -> None:
    row = page.find_element("css selector", "tr[data-name='cluster-0002-broker-filtered']")
    row.find_element("css selector", "button.open[data-category=broker]").click()
    detail = page.find_element("id", "detail")
    assert detail.is_displayed()
    assert page.find_element("id", "detail-title").text == "cluster-0002-broker-filtered — broker: fail"
    (item,) = page.find_elements("css selector", "#detail-results li[data-check-id='broker.tcp']")
    assert "is filtered" in item.find_element("css selector", ".message").text
    # The fix keeps its line breaks: the command stands on its own line, as the console shows it.
    fix_lines = item.find_element("css selector", ".fix-text").text.splitlines()
    assert fix_lines[0] == "Allow the origin:" and fix_lines[1].startswith("aws ec2 authorize-security-group-ingress")
    command = item.find_element("css selector", ".command-text").text
    assert command.startswith("aws ec2 authorize-security-group-ingress") and command.endswith("10.0.0.0/8")
    assert item.find_element("css selector", "a.docs").get_attribute("href").endswith("#broker-tcp")
    assert item.find_element("css selector", ".waiting").text == "2 checks wait on broker.tcp: broker.nats, broker.auth"
    evidence = item.find_element("css selector", "details.evidence")
    assert evidence.get_attribute("open") is None and not evidence.find_element("css selector", "pre").is_displayed()
    evidence.find_element("css selector", "summary").click()
    assert '"state": "filtered"' in evidence.find_element("css selector", "pre").text
    button = item.find_element("css selector", ".command button.copy")
    button.click()
    # The clipboard answers asynchronously and the label reverts after 1.5 s: poll for it, never a fixed sleep.
    WebDriverWait(page, 10, poll_frequency=0.05).until(lambda _: button.text == "Copied")
    # The blocked checks are one line, not a list of skips, until every result is asked for.
    assert page.find_elements("css selector", "#detail-results li[data-check-id='broker.nats']") == []
    page.find_element("id", "detail-all").click()
    assert len(page.find_elements("css selector", "#detail-results li[data-check-id='broker.nats']")) == 1


def test_clicking_a_cluster_shows_its_problems_and_the_hostile_name_stays_text(page: Any) -> None:
    row = page.find_element("css selector", "tr[data-index='3']")
    row.find_element("css selector", "th button.open").click()
    assert page.find_element("id", "detail-title").text == f"{XSS}: warn"
    ids = [li.get_attribute("data-check-id") for li in page.find_elements("css selector", "#detail-results li")]
    assert ids == ["kubeconfig.credential"]
    assert page.execute_script("return document.images.length") == 0


def test_muted_results_show_their_reason_and_fleet_checks_have_their_panel(page: Any) -> None:
    page.find_element("css selector", "tr[data-name='cluster-0004-muted'] th button.open").click()
    (muted,) = page.find_elements("css selector", "#detail-results li[data-status=muted]")
    assert "known MTU issue, ticket OPS-12" in muted.find_element("css selector", ".message").text
    fleet = page.find_element("id", "fleet-checks")
    items = fleet.find_elements("css selector", "li")
    assert [li.get_attribute("data-check-id") for li in items] == ["fleet.duplicate-cluster", "fleet.shared-credential"]
    assert items[0].find_element("css selector", ".fix").is_displayed()
    assert not items[1].find_element("css selector", ".fix").is_displayed(), "a pass has nothing to fix"


def test_dark_mode_follows_the_system(page: Any) -> None:
    def background() -> str:
        return page.execute_script("return getComputedStyle(document.body).backgroundColor")

    def scheme(value: str) -> None:
        media = {"features": [{"name": "prefers-color-scheme", "value": value}]}
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", media)

    scheme("light")
    light = background()
    scheme("dark")
    dark = background()
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert light == "rgb(255, 255, 255)" and dark == "rgb(13, 17, 23)"
