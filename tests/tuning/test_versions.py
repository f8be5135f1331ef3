"""Model versions: the registry, canaries judged on feedback, promotion and automatic rollback."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from generation.tuning.audience import Attributes, Habits, Heard, Taste, audience
from generation.tuning.canary import assigned
from webapp.errors import ServiceError
from webapp.songs import services as song_services
from webapp.tuning import services
from webapp.tuning.models import ModelVersion, VersionDecision
from webapp.tuning.tasks import canary_evaluate

pytestmark = pytest.mark.django_db

Status = ModelVersion.Status
GOOD = Attributes({"liked style": 1.0}, 120.0)
POOR = Attributes({"disliked style": 1.0}, 120.0)
TASTE = Taste(styles={"liked style": 1.5, "disliked style": -1.5}, bpm=120.0, bias=0.0)


@pytest.fixture
def base(versioned_backend, checkpoint_file):
    version = services.model_version_register(checkpoint=checkpoint_file("base-v1"))
    return services.model_version_promote(version=version, reason="the base model")


@pytest.fixture
def no_rate_limits(settings):
    """Many songs and listeners in one test: no rate limits, no daily quotas."""
    settings.RATELIMIT_ENABLED = False
    settings.QUOTA_DAILY_SONGS = settings.QUOTA_DAILY_SECONDS = 0


def make_songs(owner, n: int) -> list:
    songs = []
    for i in range(n):
        song = song_services.song_create(
            owner=owner, prompt=f"tune {i}", duration_s=20.0, visibility="public"
        )
        song.refresh_from_db()
        songs.append(song)
    return songs


def listen_through_the_api(client_for, users, songs, attributes_of, seed=0):
    """Every listener plays every song and thumbs it, posting their events as a client does."""
    listeners = audience(TASTE, len(users), seed, spread=0.3, habits=Habits(thumb_rate=1.0))
    for user, listener in zip(users, listeners, strict=True):
        events = []
        for song in songs:
            heard = Heard("song", str(song.pk), song.audio_duration_s, attributes_of(song))
            events += [action.as_api() for action in listener.listen(heard)]
        client = client_for(user)
        for i in range(0, len(events), 100):
            answer = client.post(
                "/api/v1/feedback/", {"events": events[i : i + 100]}, format="json"
            )
            assert answer.status_code == 201, answer.content


# -- the registry ----------------------------------------------------------------------------------


def test_a_version_is_named_by_its_checkpoint_and_registered_once(
    versioned_backend, checkpoint_file
):
    path = checkpoint_file("tuned-a")
    version = services.model_version_register(checkpoint=path)
    assert (version.name, version.status) == ("tuned-a", Status.CANDIDATE)
    assert len(version.sha256) == 64 and version.checkpoint == str(path.resolve())
    assert services.model_version_register(checkpoint=path) == version
    clash = path.parent / "clash"  # other weights under the same file name
    clash.mkdir()
    (clash / "tuned-a.pt").write_bytes(b"other weights")
    with pytest.raises(ServiceError, match="already registered"):
        services.model_version_register(checkpoint=clash / "tuned-a.pt")
    with pytest.raises(ServiceError, match="No checkpoint"):
        services.model_version_register(checkpoint=path.parent / "missing.pt")


def test_promoting_retires_the_promoted_version_and_every_change_is_recorded(base, checkpoint_file):
    new = services.model_version_register(checkpoint=checkpoint_file("base-v2"), parent=base)
    services.model_version_promote(version=new)
    base.refresh_from_db()
    new.refresh_from_db()
    assert (base.status, new.status) == (Status.RETIRED, Status.PROMOTED)
    assert base.retired_at is not None and new.promoted_at is not None
    assert new.decisions.get().baseline == base
    with pytest.raises(ServiceError, match="rolled back|retired"):
        services.model_version_promote(version=base)


def test_one_canary_at_a_time_and_only_beside_a_promoted_version(
    versioned_backend, checkpoint_file
):
    first = services.model_version_register(checkpoint=checkpoint_file("c1"))
    with pytest.raises(ServiceError, match="promoted version"):
        services.model_version_start_canary(version=first, share=0.1)
    services.model_version_promote(
        version=services.model_version_register(checkpoint=checkpoint_file("base"))
    )
    services.model_version_start_canary(version=first, share=0.1)
    second = services.model_version_register(checkpoint=checkpoint_file("c2"))
    with pytest.raises(ServiceError, match="one at a time"):
        services.model_version_start_canary(version=second, share=0.1)
    with pytest.raises(ServiceError, match="between 0 and 1"):
        services.model_version_start_canary(version=second, share=1.5)


def test_new_songs_get_the_canary_for_its_share_by_a_fixed_hash(
    base, checkpoint_file, alice, no_rate_limits
):
    canary = services.model_version_register(checkpoint=checkpoint_file("canary-v1"), parent=base)
    services.model_version_start_canary(version=canary, share=0.5)
    songs = make_songs(alice, 12)
    for song in songs:
        expected = "canary-v1" if assigned(str(song.pk), 0.5, "canary-v1") else "base-v1"
        # assigned at creation, and the version that rendered it says the same name
        assert song.model_version == expected and song.status == "ready"
    assert {s.model_version for s in songs} == {"canary-v1", "base-v1"}


def test_without_versions_songs_come_from_the_backends_default(versioned_backend, alice):
    (song,) = make_songs(alice, 1)
    assert song.model_version == "tone-default"


def test_a_versioned_backend_loads_each_version_once_and_keeps_only_a_few(versioned_backend):
    from generation import interface

    made = [interface.get_song_generator(versioned_backend, f"/v/ckpt-{i}.pt") for i in range(4)]
    assert [g.model_version for g in made] == ["ckpt-0", "ckpt-1", "ckpt-2", "ckpt-3"]
    assert interface.get_song_generator(versioned_backend, "/v/ckpt-3.pt") is made[3]
    kept = [k for k in interface._INSTANCES if k.startswith(f"{versioned_backend}@")]
    assert (
        len(kept) == interface.MAX_VERSIONS_KEPT and f"{versioned_backend}@/v/ckpt-0.pt" not in kept
    )
    with pytest.raises(LookupError, match="serves no model versions"):
        interface.get_song_generator("placeholder", "/v/ckpt-0.pt")
    for key in kept:
        interface._INSTANCES.pop(key)


# -- canaries judged on feedback -------------------------------------------------------------------


def test_a_deliberately_worse_candidate_is_rolled_back_by_the_beat_and_new_songs_stop_getting_it(
    base, checkpoint_file, alice, make_user, client_for, no_rate_limits, seeded_song_ids
):
    worse = services.model_version_register(checkpoint=checkpoint_file("worse-v1"), parent=base)
    services.model_version_start_canary(version=worse, share=0.5)
    songs = make_songs(alice, 24)
    assert sum(s.model_version == "worse-v1" for s in songs) >= 6  # both sides have songs
    listeners = [make_user(f"listener{i}") for i in range(16)]
    # the candidate's songs are what this audience dislikes: a lower like rate, more skips
    listen_through_the_api(
        client_for, listeners, songs, lambda s: POOR if s.model_version == "worse-v1" else GOOD
    )

    outcome = canary_evaluate.apply().get()  # the beat's task, as a worker runs it

    worse.refresh_from_db()
    assert outcome == {"canary": "worse-v1", "action": "roll_back", "reason": outcome["reason"]}
    assert worse.status == Status.ROLLED_BACK and worse.rolled_back_at is not None
    decision = worse.decisions.get()
    assert decision.action == VersionDecision.Action.ROLL_BACK and decision.baseline == base
    assert decision.details["like_diff"]["high"] < 0
    assert decision.details["candidate"]["like_rate"] < decision.details["baseline"]["like_rate"]
    assert all(s.model_version == "base-v1" for s in make_songs(alice, 10))


def test_a_candidate_as_good_as_the_promoted_one_is_promoted_with_enough_evidence(
    base, checkpoint_file, alice, make_user, client_for, no_rate_limits, settings, seeded_song_ids
):
    # Once flaky (an equal canary rolled back on early skips, 2026-11-22; the rule then did so
    # in 15 % of draws of which songs each version gets): the rule now needs a candidate worse
    # by a margin, with both metrics' bounds corrected for testing two, and rolled back none of
    # 200 draws (generation/tuning/canary_sim.py); the song ids are seeded besides.
    # a small audience: generous margins, and the evidence it can give (16 x 12 listenings a side)
    settings.TUNING_CANARY_RULES = {
        "like_margin": 0.2,
        "skip_margin": 0.2,
        "min_thumbs": 40,
        "min_listenings": 100,
    }
    same = services.model_version_register(checkpoint=checkpoint_file("same-v1"), parent=base)
    services.model_version_start_canary(version=same, share=0.5)
    songs = make_songs(alice, 24)
    listen_through_the_api(
        client_for, [make_user(f"l{i}") for i in range(16)], songs, lambda s: GOOD
    )
    decision = services.canary_evaluate()
    same.refresh_from_db()
    base.refresh_from_db()
    assert decision.action == "promote", decision.details
    assert (same.status, base.status) == (Status.PROMOTED, Status.RETIRED)


def test_a_canary_without_enough_listeners_keeps_waiting_and_the_wait_is_recorded(
    base, checkpoint_file
):
    canary = services.model_version_register(checkpoint=checkpoint_file("quiet-v1"), parent=base)
    services.model_version_start_canary(version=canary, share=0.2)
    decision = services.canary_evaluate()
    canary.refresh_from_db()
    assert decision.action == "wait" and canary.status == Status.CANARY
    assert services.canary_evaluate().pk != decision.pk  # every evaluation is kept


def test_no_canary_no_decision(base):
    assert services.canary_evaluate() is None
    assert canary_evaluate.apply().get() == {"canary": None}


# -- the command line and the admin page -----------------------------------------------------------


def test_the_command_line_registers_promotes_and_judges(versioned_backend, checkpoint_file):
    out = StringIO()
    call_command("tune", "register", str(checkpoint_file("cli-base")), "--promote", stdout=out)
    call_command("tune", "register", str(checkpoint_file("cli-new")), "--canary", "0.2", stdout=out)
    call_command("tune", "status", stdout=out)
    assert "cli-base: promoted" in out.getvalue() and "cli-new: canary" in out.getvalue()
    out = StringIO()
    call_command("tune", "canary", stdout=out)
    last = json.loads(out.getvalue().strip().splitlines()[-1])
    assert last["canary"] == "cli-new" and last["action"] == "wait"


def test_the_admin_page_plots_like_rate_per_version_with_a_table_of_the_same_numbers(
    base, checkpoint_file, alice, make_user, client_for, no_rate_limits, admin
):
    canary = services.model_version_register(checkpoint=checkpoint_file("plot-v1"), parent=base)
    services.model_version_start_canary(version=canary, share=0.5)
    songs = make_songs(alice, 8)
    listen_through_the_api(
        client_for, [make_user(f"p{i}") for i in range(3)], songs, lambda s: GOOD
    )
    from django.test import Client

    browser = Client()
    browser.force_login(admin)
    page = browser.get("/admin/tuning/modelversion/like-rate/?period=1d")
    html = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in html and 'role="img"' in html and '<title id="lr-title">' in html
    assert '<desc id="lr-desc">' in html and "thumbs up" in html
    for name in ("base-v1", "plot-v1"):
        assert f'<th scope="row">{name}</th>' in html  # the table fallback
    assert browser.get("/admin/tuning/modelversion/").status_code == 200
    assert Client().get("/admin/tuning/modelversion/like-rate/").status_code == 302  # staff only
