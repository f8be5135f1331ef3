"""A song from a prompt: progress while it generates, then the player; its share link opens for
someone who is not signed in."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.server import screenshot, sign_up

GENERATION_TIMEOUT_MS = 120_000


def feedback_kinds(page) -> list[str]:
    """Feedback events the page sent to the API (recorded by a route spy)."""
    return page.evaluate("() => window.__sentFeedback || []")


def spy_on_feedback(page) -> None:
    page.add_init_script(
        """(() => {
          window.__sentFeedback = [];
          const original = window.fetch;
          window.fetch = (url, options) => {
            if (String(url).includes('/api/v1/feedback/') && options && options.body) {
              for (const e of JSON.parse(options.body).events) window.__sentFeedback.push(e.kind);
            }
            return original(url, options);
          };
        })();"""
    )


def test_a_song_is_made_shows_progress_plays_and_its_share_link_works_signed_out(new_page, server):
    alice = new_page(permissions=["clipboard-read", "clipboard-write"])
    spy_on_feedback(alice)
    sign_up(alice, server.url, "frank")
    alice.goto(f"{server.url}/songs/new/")
    screenshot(alice, "create-simple")
    alice.get_by_text("Expert options").click()
    expect(alice.get_by_label("Duration (seconds)")).to_be_visible()
    screenshot(alice, "create-expert")
    alice.get_by_label("Describe the song").fill("gentle piano waltz in the rain")
    alice.get_by_label("Duration (seconds)").fill("10")
    alice.get_by_label("Visibility").select_option("unlisted")
    alice.get_by_role("button", name="Generate").click()

    # The song page shows a progress bar while the model works, then the player.
    alice.wait_for_url("**/songs/*/")
    progress = alice.get_by_role("progressbar")
    expect(progress).to_be_visible()
    screenshot(alice, "song-generating")
    play = alice.get_by_role("button", name="Play")
    expect(play).to_be_visible(timeout=GENERATION_TIMEOUT_MS)
    seek = alice.get_by_role("slider", name="Seek in gentle piano waltz in the rain")
    expect(seek).to_be_visible()

    play.click()
    alice.wait_for_function("() => document.getElementById('song-audio').currentTime > 0.5")
    expect(alice.get_by_role("button", name="Pause")).to_be_visible()
    # Seek with the keyboard on the waveform.
    alice.get_by_role("slider").focus()
    alice.keyboard.press("End")
    alice.wait_for_function("() => document.getElementById('song-audio').currentTime > 8")
    alice.get_by_role("button", name="Like", exact=True).click()
    expect(alice.locator("#thumb-status")).to_have_text("Liked.")
    alice.get_by_role("button", name="Copy link").click()
    expect(alice.locator("#share-status")).to_contain_text("copied")
    share_url = alice.get_by_label("Share link").input_value()
    assert alice.evaluate("() => navigator.clipboard.readText()") == share_url
    screenshot(alice, "song-ready")
    kinds = feedback_kinds(alice)
    for kind in ("impression", "play_start", "thumb_up", "share"):
        assert kind in kinds, f"{kind} not sent: {kinds}"

    # Someone signed out opens the link: the song, its waveform and a working player.
    stranger = new_page()
    stranger.goto(share_url)
    expect(stranger.get_by_role("heading", name="gentle piano waltz in the rain")).to_be_visible()
    expect(stranger.get_by_role("link", name="Log in")).to_be_visible()
    stranger.get_by_role("button", name="Play").click()
    stranger.wait_for_function("() => document.getElementById('song-audio').currentTime > 0.3")
    screenshot(stranger, "share-anonymous")
