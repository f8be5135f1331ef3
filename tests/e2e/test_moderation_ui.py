"""Moderation in the browser: the host's tools on the ballot (mute, the approval-only ballot) and
the "Report" controls that send reports to the moderators (docs/moderation.md, docs/frontend.md).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

from playwright.sync_api import expect

from tests.e2e.server import screenshot, sign_up


def start_long_room(page, base_url: str, title: str, prompt: str) -> str:
    """A public room with the longest round (120 s), so that the ballot the test acts on stays
    open on a slow machine; returns the room page's URL."""
    page.goto(f"{base_url}/rooms/new/")
    page.get_by_label("Title").fill(title)
    page.get_by_label("What it plays when nobody votes").fill(prompt)
    page.get_by_label("Round length (seconds)").fill("120")
    page.get_by_label("Visibility").select_option("public")
    page.get_by_role("button", name="Start the room").click()
    page.wait_for_url("**/rooms/*/**")
    return page.url


def reports_in_database(server) -> list[tuple]:
    """Every report the server stored (its SQLite file), with the reporter's name."""
    with closing(sqlite3.connect(server.var_dir / "chorus.sqlite3")) as db:
        return db.execute(
            "SELECT r.target_type, r.target_id, r.reason, r.details, r.status, u.username"
            " FROM moderation_report r JOIN auth_user u ON u.id = r.reporter_id ORDER BY r.id"
        ).fetchall()


def test_the_host_mutes_a_guest_from_the_ballot_and_their_vote_is_refused(new_page, server):
    host = new_page()
    sign_up(host, server.url, "mona")
    room_url = start_long_room(host, server.url, "Open mic", "bright funk groove")
    guest = new_page()  # signed out: takes part under a session, named only by their proposal
    guest.goto(room_url)
    for page in (host, guest):
        expect(page.locator("#conn-status")).to_have_text("Connected")
    guest.get_by_label("Your idea").fill("more cowbell")
    guest.get_by_label("Your idea").press("Enter")
    expect(guest.locator("#propose-status")).to_contain_text("On the ballot")

    # The host's own idea gets no mute or kick; the guest's does, and the guest sees none.
    host.get_by_label("Your idea").fill("host idea")
    host.get_by_label("Your idea").press("Enter")
    own = host.locator("#ballot-list li", has_text="host idea")
    expect(own).to_be_visible()
    expect(own.locator(".host-tools")).to_be_hidden()
    entry = host.locator("#ballot-list li", has_text="more cowbell")
    tools = entry.get_by_role("group", name="Host tools for the author of more cowbell")
    expect(tools).to_be_visible()
    expect(guest.locator(".host-tools:visible")).to_have_count(0)

    tools.get_by_label("How long to mute or kick the author of more cowbell").select_option("60")
    tools.get_by_role("button", name="Mute author of more cowbell").click()
    expect(host.locator("#ballot-status")).to_contain_text(
        "Muted the author of “more cowbell” for 1 hour (until"
    )
    expect(tools.get_by_role("button", name="Unmute author of more cowbell")).to_be_visible()

    # The guest is told at once, in the live region and next to the controls ...
    expect(guest.locator("#mute-note")).to_contain_text("The host muted you for 60 min")
    expect(guest.locator("#announcer")).to_contain_text("The host muted you")
    # ... and a vote is refused with the reason.
    guest.get_by_role("button", name="Vote for more cowbell").click()
    expect(guest.locator("#propose-status")).to_contain_text("The host muted you in this room")
    expect(guest.get_by_role("button", name="Vote for more cowbell")).to_have_attribute(
        "aria-pressed", "false"
    )
    screenshot(host, "moderation-host-ballot")
    screenshot(guest, "moderation-guest-muted")

    # Unmuting, from the keyboard, lets the guest vote again.
    tools.get_by_role("button", name="Unmute author of more cowbell").focus()
    host.keyboard.press("Enter")
    expect(host.locator("#ballot-status")).to_have_text("Unmuted the author of “more cowbell”.")
    expect(guest.locator("#mute-note")).to_be_hidden()
    expect(guest.locator("#announcer")).to_contain_text("unmuted you")
    guest.get_by_role("button", name="Vote for more cowbell").click()
    expect(guest.locator("#propose-status")).to_contain_text("Your vote is in")

    # The approval-only ballot: a toggle; new ideas then wait for the host.
    approval = host.get_by_role("button", name="Approval-only ballot")
    expect(approval).to_have_attribute("aria-pressed", "false")
    approval.click()
    expect(approval).to_have_attribute("aria-pressed", "true")
    expect(host.locator("#action-status")).to_contain_text("Approval-only ballot on")
    guest.get_by_label("Your idea").fill("quieter please")
    guest.get_by_label("Your idea").press("Enter")
    expect(guest.locator("#propose-status")).to_contain_text("Sent to the host for approval")
    expect(host.locator("#pending-list")).to_contain_text("quieter please")

    # An idea waiting for approval has the same tools: the host mutes its author from there.
    waiting = host.locator("#pending-list li", has_text="quieter please")
    waiting.get_by_role("button", name="Mute author of quieter please").click()
    expect(host.locator("#action-status")).to_contain_text(
        "Muted the author of “quieter please” for 10 min"
    )
    expect(host.locator("#muted-list")).to_contain_text("a guest, until")

    # A reload remembers the mute: listed in the panel, and Unmute on each of the guest's ideas.
    host.reload()
    expect(host.locator("#conn-status")).to_have_text("Connected")
    expect(host.locator("#muted-list")).to_contain_text("a guest, until")
    expect(host.locator("#muted-empty")).to_be_hidden()
    expect(tools.get_by_role("button", name="Unmute author of more cowbell")).to_be_visible()
    screenshot(host, "moderation-host-panel")


def test_a_signed_in_listener_reports_a_song_and_an_account(new_page, server):
    maker = new_page()
    sign_up(maker, server.url, "otto")
    maker.goto(f"{server.url}/songs/new/")
    maker.get_by_label("Describe the song").fill("dusty organ loop")
    maker.get_by_text("Expert options").click()
    maker.get_by_label("Duration (seconds)").fill("10")
    maker.get_by_label("Visibility").select_option("public")
    maker.get_by_role("button", name="Generate").click()
    maker.wait_for_url("**/songs/*/")
    song_url = maker.url
    song_id = song_url.rstrip("/").rsplit("/", 1)[1]
    expect(maker.get_by_role("button", name="Report this song")).to_have_count(0)  # one's own

    stranger = new_page()  # signed out: asked to sign in
    stranger.goto(song_url)
    expect(stranger.get_by_role("link", name="Sign in to report")).to_be_visible()

    reporter = new_page()
    sign_up(reporter, server.url, "pia")
    reporter.goto(song_url)
    report = reporter.get_by_role("button", name="Report this song")
    report.click()
    dialog = reporter.get_by_role("dialog", name="Report this song")
    expect(dialog).to_be_visible()
    reason = dialog.get_by_label("Why?")
    expect(reason).to_be_focused()

    # Sending without a reason says what to fix, at the field.
    dialog.get_by_role("button", name="Send report").click()
    expect(dialog.get_by_role("status")).to_have_text("Choose a reason first.")
    expect(reason).to_have_attribute("aria-invalid", "true")
    reason.select_option("spam")
    dialog.get_by_label("What should the moderators know? (optional)").fill("Posted ten times.")
    screenshot(reporter, "report-song-dialog")
    dialog.get_by_role("button", name="Send report").click()
    expect(dialog.get_by_role("status")).to_have_text("Thanks: the moderators will look at it.")
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    assert reports_in_database(server) == [
        ("song", song_id, "spam", "Posted ten times.", "open", "pia")
    ]

    # Again: the open report is updated, not doubled. Esc closes; focus goes back to Report.
    reason.select_option("copyright")
    dialog.get_by_role("button", name="Send report").click()
    expect(dialog.get_by_role("status")).to_contain_text("your report is updated")
    reporter.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(report).to_be_focused()
    assert reports_in_database(server) == [
        ("song", song_id, "copyright", "Posted ten times.", "open", "pia")
    ]

    # An account, from its profile page, with the keyboard alone.
    reporter.goto(f"{server.url}/u/otto/")
    reporter.get_by_role("button", name="Report this account").focus()
    reporter.keyboard.press("Enter")
    dialog = reporter.get_by_role("dialog", name="Report this account")
    expect(dialog.get_by_label("Why?")).to_be_focused()
    dialog.get_by_label("Why?").select_option("impersonation")
    reporter.keyboard.press("Tab")  # to the details
    reporter.keyboard.type("Says they are a famous DJ.")
    reporter.keyboard.press("Tab")  # to Send report
    reporter.keyboard.press("Enter")
    expect(dialog.get_by_role("status")).to_have_text("Thanks: the moderators will look at it.")
    screenshot(reporter, "report-account-sent")
    reports = reports_in_database(server)
    assert len(reports) == 2
    assert reports[1][0] == "user"
    assert reports[1][2:] == ("impersonation", "Says they are a famous DJ.", "open", "pia")
