"""Every page renders, can be used from the keyboard, and is saved as a screenshot to look at."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.server import screenshot, sign_up


def test_every_page_renders_with_labels_and_a_screenshot(new_page, server):
    visitor = new_page()
    for name, path, heading in [
        ("feed", "/", "Public songs"),
        ("rooms", "/rooms/", "Live rooms"),
        ("login", "/accounts/login/", "Log in"),
        ("signup", "/accounts/signup/", "Sign up"),
    ]:
        visitor.goto(server.url + path)
        expect(visitor.get_by_role("heading", level=1, name=heading)).to_be_visible()
        screenshot(visitor, f"page-{name}")

    person = new_page()
    sign_up(person, server.url, "gina")
    screenshot(person, "page-profile")
    for name, path, heading in [
        ("library", "/library/", "Your library"),
        ("room-new", "/rooms/new/", "Start a room"),
    ]:
        person.goto(server.url + path)
        expect(person.get_by_role("heading", level=1, name=heading)).to_be_visible()
        screenshot(person, f"page-{name}")

    # Every form control on the room form has a label.
    person.goto(server.url + "/rooms/new/")
    unlabelled = person.evaluate(
        """() => [...document.querySelectorAll(
                  'main input:not([type=hidden]), main select, main textarea')]
              .filter(el => !el.labels || el.labels.length === 0).map(el => el.name)"""
    )
    assert unlabelled == []


def test_a_bad_room_form_says_what_to_fix(new_page, server):
    person = new_page()
    sign_up(person, server.url, "hana")
    person.goto(server.url + "/rooms/new/")
    person.get_by_label("Title").fill("Only a title")
    person.get_by_label("Round length (seconds)").fill("2")
    person.get_by_role("button", name="Start the room").click()
    expect(person.locator(".field.invalid")).to_have_count(2)  # the prompt and the round length
    expect(person.get_by_text("Ensure this value is greater than or equal to 5.")).to_be_visible()
    screenshot(person, "page-room-new-errors")


def test_the_room_page_works_from_the_keyboard(new_page, server):
    host = new_page()
    sign_up(host, server.url, "ivan")
    host.goto(server.url + "/rooms/new/")
    host.get_by_label("Title").fill("Keys only")
    host.get_by_label("What it plays when nobody votes").fill("calm guitar")
    host.get_by_role("button", name="Start the room").click()
    host.wait_for_url("**/rooms/*/**")
    # Tab from the top of the page reaches the Join button; Enter presses it.
    host.keyboard.press("Tab")  # the skip link
    for _ in range(12):
        host.keyboard.press("Tab")
        if host.evaluate("() => document.activeElement.id") == "join-button":
            break
    assert host.evaluate("() => document.activeElement.id") == "join-button"
    host.keyboard.press("Enter")
    expect(host.get_by_role("button", name="Leave")).to_be_focused()
    # Propose by keyboard, then vote by keyboard.
    host.get_by_label("Your idea").focus()
    host.keyboard.type("add a choir")
    host.keyboard.press("Enter")
    vote = host.get_by_role("button", name="Vote for add a choir")
    vote.focus()
    host.keyboard.press("Enter")
    expect(host.get_by_role("button", name="Voted for add a choir")).to_be_focused()
