"""The Content-Security-Policy in a real browser: every page of the site works under it, and
Chromium reports no violation (docs/security.md).

A violation is silent to the user (a handler that does not run, a socket that does not open), so
the page records every `securitypolicyviolation` event, and the inline handlers the policy allows
by hash are checked to have run. Same requirements as tests/e2e (Debian's Chromium, Playwright,
the built front end); one server of the embedded default with the instant placeholder tone.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    chorus_server,
    missing_requirements,
    sign_up,
    start_room,
)

pytestmark = pytest.mark.e2e

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  const what = `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} ${e.sample}`;
  window.__cspViolations.push(`${location.pathname}: ${what}`);
});
"""


@pytest.fixture(scope="module")
def placeholder_server():
    reason = missing_requirements()
    if reason and os.environ.get("CI"):  # CI installs all of it: a skip there would hide a gap
        pytest.fail(f"browser tests cannot run: {reason}")
    if reason:
        pytest.skip(f"browser tests: {reason}")
    with chorus_server(backend="placeholder") as server:
        yield server


def test_every_page_works_under_the_policy_without_a_violation(placeholder_server):
    # Playwright's sync API runs one instance per thread, and tests/e2e keeps one open in the
    # main thread for the whole session: this test drives its own in a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(check_every_page, placeholder_server).result()


def check_every_page(server) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            visit_every_page(browser, server)
        finally:
            browser.close()


def visit_every_page(browser, server) -> None:
    context = browser.new_context()
    context.set_default_timeout(20_000)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    console = []
    page.on("console", lambda message: console.append(message.text))
    violations: list[str] = []

    def visit(url: str) -> None:
        response = page.goto(url)
        assert "content-security-policy" in response.headers, url  # names come lowercased
        collect()

    def collect() -> None:
        violations.extend(page.evaluate("() => window.__cspViolations || []"))

    visit(f"{server.url}/")
    sign_up(page, server.url, "casey")
    collect()

    # A song: the create form, the song page's script and its progress websocket, the player.
    visit(f"{server.url}/songs/new/")
    page.get_by_label("Describe the song").fill("a short test tone")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url("**/songs/*/")
    page.get_by_role("button", name="Play").wait_for(timeout=60_000)
    collect()
    # The delete form's inline handler asks first (allowed by its hash): dismissed, nothing goes.
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete").click()
    page.wait_for_timeout(300)
    assert dialogs == ["Delete this song?"]
    assert "/songs/" in page.url
    collect()

    # A room: its script, its websocket (connect-src), the share field's inline handler.
    room_url = start_room(page, server.url, "Policy jam", "slow dub techno")
    collect()
    page.locator("#join-button").click()
    page.wait_for_function(
        "() => document.getElementById('conn-status').textContent.trim() !== 'Connecting…'"
    )
    share = page.get_by_label("Room link")
    share.focus()
    assert page.evaluate(
        "() => { const i = document.activeElement;"
        " return i.selectionStart === 0 && i.selectionEnd === i.value.length; }"
    ), "the onfocus handler did not select the link"
    overlay_url = page.get_by_label("Overlay for OBS (browser source)").input_value()
    collect()
    visit(overlay_url)
    visit(f"{server.url}/rooms/")
    visit(room_url)

    # Pages of packages: the admin's login and the browsable API.
    visit(f"{server.url}/admin/login/")
    page.goto(f"{server.url}/api/v1/feed/", wait_until="load")
    collect()

    context.close()
    reported = [text for text in console if "Content Security Policy" in text]
    assert violations == [] and reported == [], (violations, reported)
