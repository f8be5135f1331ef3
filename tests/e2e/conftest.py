"""Browser end-to-end tests: a real server (tests/e2e/server.py) and Debian's headless Chromium
driven by Playwright. Skipped, with the reason, where Chromium, Playwright or the built front end
(and npm to build it) are missing; CI installs all three. Screenshots land in var/screenshots/.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.server import CHROMIUM, CHROMIUM_ARGS, chorus_server, missing_requirements


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_ready():
    reason = missing_requirements()
    if reason and os.environ.get("CI"):  # CI installs all of it: a skip there would hide a gap
        pytest.fail(f"browser tests cannot run: {reason}")
    if reason:
        pytest.skip(f"browser tests: {reason}")


@pytest.fixture(scope="session")
def server(e2e_ready):
    """One server for the whole session: the real music model, rooms conducted in-process."""
    with chorus_server() as running:
        yield running


@pytest.fixture(scope="session")
def browser(e2e_ready):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, server):
    """Pages in fresh browser contexts (separate cookies: separate people), closed afterwards."""
    contexts = []

    def make(**options):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    errors: list[str] = []
    yield make
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the pages: {errors}"
