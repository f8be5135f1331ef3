"""Two people in one room: both hear it in time, ideas and votes travel, rounds close."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from tests.e2e.server import (
    SCREENSHOTS,
    join_room,
    scheduled_chunks,
    screenshot,
    sign_up,
    start_room,
)

MUSIC_TIMEOUT_S = 90  # the first chunk waits for the model to load in the server


def wait_for_chunks(page, count: int, timeout_s: float = MUSIC_TIMEOUT_S) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        placed = scheduled_chunks(page)
        if len(placed) >= count:
            return placed
        page.wait_for_timeout(250)
    raise AssertionError(f"only {len(scheduled_chunks(page))} chunks scheduled in {timeout_s} s")


def audio_clock(page) -> float:
    return page.evaluate("() => window.__chorus.audio.ctx.currentTime")


def test_two_browsers_join_one_room_and_hear_the_same_chunks_in_time(new_page, server):
    alice = new_page()
    sign_up(alice, server.url, "alice")
    room_url = start_room(alice, server.url, "Friday jam", "warm lo-fi beat with soft piano")
    alice.get_by_role("button", name="Join and listen").click()
    wait_for_chunks(alice, 2)

    guest = new_page()  # a signed-out visitor with the link
    join_room(guest, room_url)
    expect(guest.locator("#presence-count")).to_have_text("2 listening")
    expect(alice.locator("#presence-count")).to_have_text("2 listening")
    guest_chunks = wait_for_chunks(guest, 3)

    # Both audio clocks run, and both placed the same chunks at the same server moment: each
    # browser's own estimate of when a chunk is heard agrees with the room's timeline.
    before = audio_clock(guest)
    guest.wait_for_timeout(500)
    assert audio_clock(guest) > before + 0.3
    alice_by_seq = {c["sequence"]: c for c in scheduled_chunks(alice)}
    shared = [c for c in guest_chunks if c["sequence"] in alice_by_seq and c["offsetS"] == 0]
    assert shared, "the two browsers scheduled no chunk in common"
    for chunk in shared:
        other = alice_by_seq[chunk["sequence"]]
        assert abs(chunk["estimatedServerStart"] - chunk["serverStart"]) < 0.05
        assert abs(other["estimatedServerStart"] - other["serverStart"]) < 0.05
    # The guest joined late: its first chunk started part-way in, the next ones back to back.
    ordered = sorted(guest_chunks, key=lambda c: c["sequence"])
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b["placement"] == "contiguous":
            assert abs(b["ctxStart"] - (a["ctxStart"] + a["playS"])) < 0.002
    expect(guest.locator("#now-playing")).to_contain_text("warm lo-fi beat")
    screenshot(alice, "room-host")
    screenshot(guest, "room-guest")


def test_an_idea_travels_gets_a_vote_and_the_round_closes_into_it(new_page, server):
    alice = new_page()
    sign_up(alice, server.url, "carol")
    room_url = start_room(alice, server.url, "Vote night", "slow ambient pads")
    bob = new_page()
    sign_up(bob, server.url, "bob")
    bob.goto(room_url)

    # Typed in one browser, it appears in the other.
    alice.get_by_label("Your idea").fill("slower, add strings")
    alice.get_by_label("Your idea").press("Enter")  # the keyboard alone is enough
    expect(alice.locator("#propose-status")).to_contain_text("On the ballot")
    proposal = bob.locator("#ballot-list li", has_text="slower, add strings")
    expect(proposal).to_be_visible()

    # A control nudge, too.
    bob.get_by_role("button", name="Faster").click()
    expect(alice.locator("#ballot-list li", has_text="+8 BPM")).to_be_visible()

    # Bob votes; Alice sees the tally move.
    proposal.get_by_role("button", name="Vote for slower, add strings").click()
    expect(proposal.get_by_role("button", name="Voted for slower, add strings")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(
        alice.locator("#ballot-list li", has_text="slower, add strings").locator(".count")
    ).to_have_text("1 vote (100%)")
    screenshot(bob, "room-ballot")

    # The host closes the round: both hear the result in the live region, and the blend has it.
    round_before = int(alice.locator("#round-number").inner_text())
    alice.get_by_role("button", name="Close the round now").click()
    for page in (alice, bob):
        expect(page.locator("#last-result")).to_contain_text(f"Round {round_before} closed")
        expect(page.locator("#blend-list")).to_contain_text("slower, add strings")
        expect(page.locator("#round-number")).to_have_text(str(round_before + 1))
    expect(bob.locator("#announcer")).to_contain_text("slower, add strings")

    # A listener who is not the host has no host controls, and host-only frames are refused.
    expect(bob.locator("#host-panel")).to_have_count(0)
    screenshot(alice, "room-after-round")


def test_the_overlay_shows_the_ballot_and_the_countdown_on_a_transparent_page(new_page, server):
    alice = new_page()
    sign_up(alice, server.url, "dana")
    room_url = start_room(alice, server.url, "Stream night", "synthwave with big drums")
    alice.get_by_label("Your idea").fill("more cowbell")
    alice.get_by_role("button", name="Propose", exact=True).click()
    overlay = new_page()
    overlay.goto(room_url.split("?")[0] + "overlay/")
    expect(overlay.locator("#ov-ballot")).to_contain_text("more cowbell")
    expect(overlay.locator("#ov-countdown")).to_have_text(re.compile(r"\d+ s"))
    background = overlay.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background in ("rgba(0, 0, 0, 0)", "transparent")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    overlay.screenshot(path=str(SCREENSHOTS / "overlay.png"), omit_background=True)


def test_a_dropped_connection_reconnects_and_resyncs(new_page, server):
    alice = new_page()
    sign_up(alice, server.url, "erin")
    start_room(alice, server.url, "Flaky wifi", "jazz trio, brushed drums")
    alice.get_by_role("button", name="Join and listen").click()
    wait_for_chunks(alice, 2)
    # Drop the socket from the page's side, as a network failure would.
    alice.evaluate("() => window.__chorus.socket.ws.close(4000)")
    expect(alice.locator("#conn-status")).to_have_text("Connected", timeout=15_000)
    count = len(scheduled_chunks(alice))
    wait_for_chunks(alice, count + 2)  # music keeps coming after the reconnect
    placed = sorted(scheduled_chunks(alice), key=lambda c: c["sequence"])
    sequences = [c["sequence"] for c in placed]
    assert sequences == sorted(set(sequences)), "a chunk was scheduled twice"
