"""A vote heard within about a chunk (rewinds: chunks not yet heard are remade under the new
steering) and previews of proposals (auditions), on the tiny random engine."""

# The conductor tests' fixtures are imported, then named as parameters:
# ruff: noqa: F811

from __future__ import annotations

import dataclasses

import pytest
from django.utils import timezone

from collab import services
from collab.conductor import (
    Ahead,
    Conductor,
    Policy,
    choose_rewind,
    steering_key,
)
from collab.models import Audition, Chunk
from collab.presence import presence_join, presence_leave
from generation import tasks as generation_tasks
from tests.collab.test_conductor import (  # noqa: F401  (fixtures)
    FAST,
    SpyDispatcher,
    frames,
    listened,
    origin_of,
    store,
    tiny_engine,
)
from webapp.feedback.models import FeedbackEvent

POLICY = Policy()

# --- Choosing what to remake (pure) ---------------------------------------------------------------


def test_the_first_chunk_not_yet_heard_and_made_under_old_steering_is_remade():
    ahead = [Ahead(5, 10.0, "old"), Ahead(6, 11.0, "old"), Ahead(7, 12.0, "old")]
    assert choose_rewind(ahead, "new", playhead_s=9.8).chunk.sequence == 6  # 5 starts too soon
    assert choose_rewind(ahead, "new", playhead_s=9.5).chunk.sequence == 5
    assert choose_rewind(ahead, "new", playhead_s=11.7) is None  # 7 starts in 0.3 s: too late


def test_chunks_already_under_the_current_steering_or_unknown_are_left_alone():
    assert choose_rewind([Ahead(5, 10.0, "new"), Ahead(6, 11.0, "new")], "new", 9.0) is None
    assert choose_rewind([Ahead(5, 10.0, "")], "new", 9.0) is None  # made before keys existed
    mixed = [Ahead(6, 11.0, "b"), Ahead(5, 10.0, "a")]  # out of order; the steering went a->b
    assert choose_rewind(mixed, "b", 9.0).chunk.sequence == 5


def test_steering_keys_name_the_steering_not_its_spelling():
    a = {"prompts": [["strings", 1.0]], "controls": {"bpm": 90.0, "energy": None}}
    b = {"controls": {"energy": None, "bpm": 90.0}, "prompts": [["strings", 1.0]]}
    assert steering_key(a) == steering_key(b) != steering_key({**a, "prompts": [["bass", 1.0]]})


# --- Rewinds on ticks -----------------------------------------------------------------------------


def steer(room, host, author, text="dark techno drop"):
    """A proposal voted in: the round closes (host's skip) and the room's steering changes."""
    proposal = services.proposal_create(room=room, user=author, text=text)
    services.vote_cast(proposal=proposal, user=author)
    services.round_skip(room=room, user=host)
    room.refresh_from_db()
    return proposal


WHOLE = dataclasses.replace(FAST, splice=False)  # remakes of whole chunks only


def test_a_vote_remakes_the_chunks_not_yet_heard_and_the_room_goes_on_from_the_remake(
    listened, alice, carol, tiny_engine, store, frames, client, django_capture_on_commit_callbacks
):
    spy = SpyDispatcher(tiny_engine, store)
    conductor_ = Conductor(spy, WHOLE, store=store)
    origin = origin_of(listened)
    for _ in range(4):
        conductor_.tick(origin + 5.0)  # chunks 0-3 at 5.5, 5.9, 6.3, 6.7 s
    before = {c.sequence: c for c in Chunk.objects.filter(room=listened)}
    assert sorted(before) == [0, 1, 2, 3]

    store.wait(generation_tasks.URGENT_BELL, 0)  # rung by the ticks that asked for chunks
    steer(listened, alice, carol)
    with django_capture_on_commit_callbacks(execute=True):
        report = conductor_.tick(origin + 5.6)  # 0 is playing, 1 starts in 0.3 s: too soon

    assert report.rewound == report.replaced == [(str(listened.pk), 2)]
    # a batch of previews running on the engine is told to give way to the remake
    assert store.wait(generation_tasks.URGENT_BELL, 0)
    [remake_job] = [j for batch in spy.batches for j in batch if "parent" in j]
    assert remake_job["room"].startswith(f"{listened.pk}/r2.1-") and remake_job["sequence"] == 0
    assert remake_job["parent"] == {"stream": str(listened.pk), "sequence": 2}
    assert remake_job["reset"] is False  # it continues chunk 1, which is playing
    remade = Chunk.objects.get(room=listened, sequence=2)
    assert remade.revision == 1 and remade.start_s == before[2].start_s
    assert "dark techno drop" in [t for t, _ in remade.steering["prompts"]]
    assert remade.provenance["steering_key"] == steering_key(listened.current_steering)
    assert Chunk.objects.get(room=listened, sequence=1).revision == 0  # heard soon: kept
    chunk_frames = frames("chunk")
    assert chunk_frames[-1]["sequence"] >= 2
    frame = next(f for f in chunk_frames if f["sequence"] == 2 and f["revision"] == 1)
    assert frame["url"] == f"/rooms/{listened.pk}/chunks/2.ogg?r=1"

    # the remade chunk's own URL serves it; the old revision's URL is gone (never stale)
    assert client.get(frame["url"]).status_code == 200
    assert client.get(f"/rooms/{listened.pk}/chunks/2.ogg").status_code == 404

    conductor_.tick(origin + 5.6)  # the lead is short again: the next chunk follows the remake
    following = Chunk.objects.get(room=listened, sequence=3)
    assert following.revision == 0 and following.start_s == pytest.approx(remade.start_s + 0.4)
    assert following.provenance["stream"] == remake_job["room"]
    assert following.provenance["stream_base"] == 2
    assert spy.batches[-1][0]["sequence"] == 1 and "parent" not in spy.batches[-1][0]


def test_a_vote_is_spliced_into_the_chunk_playing_at_the_margin(
    listened, alice, carol, tiny_engine, store, frames, django_capture_on_commit_callbacks
):
    """With splices, the chunk sounding a margin after the playhead is remade from there: its
    beginning the same music, the new steering after it; listeners switch at `splice_s`."""
    spy = SpyDispatcher(tiny_engine, store)
    conductor_ = Conductor(spy, FAST, store=store)
    origin = origin_of(listened)
    for _ in range(4):
        conductor_.tick(origin + 5.0)  # chunks 0-3 at 5.5, 5.9, 6.3, 6.7 s
    before = {c.sequence: c for c in Chunk.objects.filter(room=listened)}

    steer(listened, alice, carol)
    with django_capture_on_commit_callbacks(execute=True):
        # playhead 5.55 (origin + 5.55): the margin (0.4 s) lands at 5.95, inside chunk 1
        report = conductor_.tick(origin + 5.55)

    assert report.rewound == report.replaced == [(str(listened.pk), 1)]
    [remake_job] = [j for batch in spy.batches for j in batch if "parent" in j]
    assert remake_job["splice"]["keep_s"] == pytest.approx(0.05)
    assert remake_job["steering"] == before[1].steering  # the kept part: as it was made
    assert "dark techno drop" in [t for t, _ in remake_job["splice"]["steering"]["prompts"]]
    remade = Chunk.objects.get(room=listened, sequence=1)
    assert remade.revision == 1 and remade.start_s == before[1].start_s
    splice_s = remade.provenance["splice_s"]
    assert 0.0 < splice_s < remade.duration_s
    assert "dark techno drop" in [t for t, _ in remade.steering["prompts"]]
    assert not Chunk.objects.filter(room=listened, sequence__gt=1).exists()  # they went on from 1
    frame = next(f for f in frames("chunk") if f["sequence"] == 1 and f["revision"] == 1)
    assert frame["splice_s"] == splice_s
    assert all("splice_s" not in f for f in frames("chunk") if not f["revision"])


def test_nothing_is_remade_while_the_steering_stays(listened, tiny_engine, store):
    spy = SpyDispatcher(tiny_engine, store)
    conductor_ = Conductor(spy, FAST, store=store)
    origin = origin_of(listened)
    for _ in range(6):
        report = conductor_.tick(origin + 5.0)
        assert report.rewound == []
    assert not Chunk.objects.filter(revision__gt=0).exists()


def test_a_remake_back_too_late_is_dropped_and_the_old_chunk_plays(
    listened, alice, carol, tiny_engine, store
):
    class Slow(SpyDispatcher):
        """Runs the batch, but the conductor only sees it at the next tick."""

        synchronous = False

        def dispatch(self, jobs, out_dir, on_done):
            self.batches.append(jobs)
            super().dispatch(jobs, out_dir, on_done)

    spy = SpyDispatcher(tiny_engine, store)
    conductor_ = Conductor(spy, FAST, store=store)
    origin = origin_of(listened)
    for _ in range(4):
        conductor_.tick(origin + 5.0)
    steer(listened, alice, carol)
    slow = Conductor(Slow(tiny_engine, store), WHOLE, store=store)
    assert slow.tick(origin + 5.6).rewound == [(str(listened.pk), 2)]
    late = slow.tick(origin + 6.25)  # chunk 2 starts at 6.3: in less than replace_margin_s
    assert late.replaced == []
    assert Chunk.objects.get(room=listened, sequence=2).revision == 0


# --- Auditions ------------------------------------------------------------------------------------


def test_each_proposal_on_the_ballot_gets_a_preview_that_listeners_can_play(
    listened, carol, tiny_engine, store, frames, client, media, django_capture_on_commit_callbacks
):
    spy = SpyDispatcher(tiny_engine, store)
    conductor_ = Conductor(spy, FAST, store=store)
    origin = origin_of(listened)
    conductor_.tick(origin + 5.0)
    proposal = services.proposal_create(room=listened, user=carol, text="add strings")

    with django_capture_on_commit_callbacks(execute=True):
        report = conductor_.tick(origin + 5.0)

    assert report.auditions == report.auditioned == [(str(listened.pk), proposal.pk)]
    audition = Audition.objects.get(proposal=proposal)
    assert audition.status == Audition.Status.READY
    assert audition.duration_s == pytest.approx(FAST.audition_s, abs=0.45)
    assert "add strings" in [t for t, _ in audition.steering["prompts"]]
    assert (media / audition.audio.name).stat().st_size > 0
    # a preview leaves the room's stream be: its state is where the room's own chunks left it
    chunks = Chunk.objects.filter(room=listened).count()
    assert tiny_engine.restore(store.get(f"state:{listened.pk}")).sequence == chunks
    [frame] = frames("audition")
    assert frame["proposal_id"] == proposal.pk
    assert frame["url"] == f"/rooms/{listened.pk}/auditions/{proposal.pk}.ogg"
    response = client.get(frame["url"])
    assert response.status_code == 200 and response["Content-Type"] == "audio/ogg"

    from collab.broadcast import ballot_view
    from collab.selectors import round_current

    [entry] = ballot_view(round_current(room=listened))
    assert entry["audition"]["url"] == frame["url"]
    assert conductor_.tick(origin + 5.0).auditions == []  # asked once


def test_previews_that_never_come_back_are_asked_again_then_given_up(
    listened, carol, tiny_engine, store
):
    class NoAuditions(SpyDispatcher):
        def dispatch_auditions(self, jobs, out_dir):
            self.lost = getattr(self, "lost", 0) + len(jobs)

    spy = NoAuditions(tiny_engine, store)
    conductor_ = Conductor(spy, FAST, store=store)
    origin = origin_of(listened)
    proposal = services.proposal_create(room=listened, user=carol, text="add strings")
    conductor_.tick(origin + 5.0)
    conductor_.tick(origin + 5.0 + FAST.stale_after_s + 60)  # asked again
    conductor_.tick(origin + 5.0 + 2 * (FAST.stale_after_s + 60))
    assert spy.lost == 2
    assert Audition.objects.get(proposal=proposal).status == Audition.Status.FAILED


def test_votes_between_previews_are_recorded_as_choice_sets(
    listened, alice, bob, carol, tiny_engine, store
):
    conductor_ = Conductor(SpyDispatcher(tiny_engine, store), FAST, store=store)
    origin = origin_of(listened)
    strings = services.proposal_create(room=listened, user=carol, text="add strings")
    bass = services.proposal_create(room=listened, user=bob, text="more bass")
    conductor_.tick(origin + 5.0)
    assert Audition.objects.filter(status=Audition.Status.READY).count() == 2
    services.vote_cast(proposal=strings, user=carol)
    services.vote_cast(proposal=bass, user=bob)
    services.vote_cast(proposal=strings, user=alice)

    closed = services.round_skip(room=listened, user=alice)

    events = FeedbackEvent.objects.filter(kind="vote", target_type="audition").order_by("actor")
    assert [(e.actor, e.choice_set) for e in events] == [
        (f"user:{alice.pk}", f"round:{closed.pk}"),
        (f"user:{bob.pk}", f"round:{closed.pk}"),
        (f"user:{carol.pk}", f"round:{closed.pk}"),
    ]
    by_actor = {e.actor: e for e in events}
    slots = {a.proposal_id: a for a in Audition.objects.all()}
    assert by_actor[f"user:{bob.pk}"].target_id == str(slots[bass.pk].pk)
    assert {e.slot for e in events} == {0, 1}
    candidates = by_actor[f"user:{alice.pk}"].conditioning["candidates"]
    assert {c["proposal"] for c in candidates} == {strings.pk, bass.pk}


def test_a_ballot_with_one_preview_records_no_choice_set(
    listened, alice, carol, tiny_engine, store
):
    conductor_ = Conductor(SpyDispatcher(tiny_engine, store), FAST, store=store)
    strings = services.proposal_create(room=listened, user=carol, text="add strings")
    conductor_.tick(origin_of(listened) + 5.0)
    services.vote_cast(proposal=strings, user=carol)
    services.round_skip(room=listened, user=alice)
    assert not FeedbackEvent.objects.filter(target_type="audition").exists()


def test_rooms_nobody_hears_get_no_previews(make_room, alice, carol, tiny_engine, store):
    room = make_room(alice, now=timezone.now())
    services.proposal_create(room=room, user=carol, text="add strings")
    report = Conductor(SpyDispatcher(tiny_engine, store), FAST, store=store).tick(timezone.now())
    assert report.auditions == [] and not Audition.objects.exists()
    presence_join(room_id=room.pk)
    presence_leave(room_id=room.pk)


def test_previews_wait_while_a_rooms_chunk_is_on_its_way(listened, carol, tiny_engine, store):
    """On a shared queue a batch of previews must not go ahead of a chunk a room waits on."""

    class Queued(SpyDispatcher):
        synchronous = False  # results come back through the store, seen at the next tick

        def dispatch_auditions(self, jobs, out_dir):
            self.previews = getattr(self, "previews", []) + jobs

    queued = Queued(tiny_engine, store)
    conductor_ = Conductor(queued, FAST, store=store)
    services.proposal_create(room=listened, user=carol, text="add strings")
    origin = origin_of(listened)

    first = conductor_.tick(origin + 5.0)  # asks for chunk 0: no previews this tick
    assert first.requested and first.auditions == []
    settled = [conductor_.tick(origin + 5.0) for _ in range(6)]
    assert any(r.auditions for r in settled)  # asked once nothing was on its way
    for report in settled:
        assert not (report.auditions and report.requested)
