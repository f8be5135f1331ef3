"""The audit log: every moderation action (and a host's mute or kick) writes one entry, with the
state before and after, in the action's transaction; entries are never changed or deleted, by
the model (here) and by a PostgreSQL trigger (the integration test at the end)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from collab import services as room_services
from webapp.moderation import services
from webapp.moderation.audit import AuditOutsideTransaction, audit_record
from webapp.moderation.models import AuditEntry, AuditEntryIsAppendOnly, Report


@pytest.fixture
def things(a_public_song, a_public_room, bob, carol):
    proposal = room_services.proposal_create(room=a_public_room, user=carol, text="loud noise")
    return {"song": a_public_song, "room": a_public_room, "proposal": proposal, "user": bob}


def in_a_day():
    return timezone.now() + timedelta(days=1)


# action -> (what it acts on, the call, the audit entry's before and after as far as they change)
ACTIONS = {
    "song.hide": (
        "song",
        lambda mod, it: services.song_hide(moderator=mod, song=it, reason="r"),
        {"moderation": "visible"},
        {"moderation": "hidden"},
    ),
    "song.remove": (
        "song",
        lambda mod, it: services.song_remove(moderator=mod, song=it, reason="r"),
        {"moderation": "visible"},
        {"moderation": "removed"},
    ),
    "song.unhide": (
        "song",
        lambda mod, it: services.song_unhide(moderator=mod, song=it, reason="r"),
        {"moderation": "visible"},
        {"moderation": "visible"},
    ),
    "room.hide": (
        "room",
        lambda mod, it: services.room_hide(moderator=mod, room=it, reason="r"),
        {"moderation": "visible", "status": "live"},
        {"moderation": "hidden", "status": "live"},
    ),
    "room.close": (
        "room",
        lambda mod, it: services.room_close(moderator=mod, room=it, reason="r"),
        {"status": "live"},
        {"status": "ended"},
    ),
    "room.remove": (
        "room",
        lambda mod, it: services.room_remove(moderator=mod, room=it, reason="r"),
        {"moderation": "visible", "status": "live"},
        {"moderation": "removed", "status": "ended"},
    ),
    "room.unhide": (
        "room",
        lambda mod, it: services.room_unhide(moderator=mod, room=it, reason="r"),
        {"moderation": "visible"},
        {"moderation": "visible"},
    ),
    "proposal.reject": (
        "proposal",
        lambda mod, it: services.proposal_reject(moderator=mod, proposal=it, reason="r"),
        {"status": "approved"},
        {"status": "rejected"},
    ),
    "user.ban": (
        "user",
        lambda mod, it: services.user_ban(moderator=mod, user=it, reason="r"),
        {"sanction": None},
        {"sanction": "ban"},
    ),
    "user.suspend": (
        "user",
        lambda mod, it: services.user_suspend(moderator=mod, user=it, until=in_a_day(), reason="r"),
        {"sanction": None},
        {"sanction": "suspension"},
    ),
    "user.lift": (
        "user",
        lambda mod, it: services.user_lift_sanctions(moderator=mod, user=it, reason="r"),
        {"sanction": None},
        {"sanction": None},
    ),
    "reports.dismiss": (
        "song",
        lambda mod, it: services.reports_dismiss(
            moderator=mod, target_type="song", target_id=it.pk, reason="r"
        ),
        {"open_reports": 1},
        {"open_reports": 0},
    ),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_moderation_action_writes_one_entry_with_before_and_after(things, mod, carol, action):
    kind, act, before, after = ACTIONS[action]
    target = things[kind]
    Report.objects.create(reporter=carol, target_type=kind, target_id=str(target.pk), reason="spam")

    act(mod, target)

    (entry,) = AuditEntry.objects.all()
    assert (entry.actor, entry.actor_label, entry.action) == (mod, "mod", action)
    assert (entry.target_type, entry.target_id, entry.reason) == (kind, str(target.pk), "r")
    assert {k: entry.before[k] for k in before} == before
    assert {k: entry.after[k] for k in after} == after


def test_an_action_that_fails_leaves_no_entry(a_public_song, mod):
    with pytest.raises(Exception, match="reason"):
        services.song_remove(moderator=mod, song=a_public_song, reason="")

    assert not AuditEntry.objects.exists()


def test_the_entry_rolls_back_with_the_change(a_public_song, mod):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.song_hide(moderator=mod, song=a_public_song, reason="r")
        raise RuntimeError("the caller's transaction fails after the action")

    a_public_song.refresh_from_db()
    assert a_public_song.moderation == "visible"
    assert not AuditEntry.objects.exists()


def test_host_mutes_and_kicks_are_logged_without_session_keys(a_public_room, alice):
    from collab.selectors import participant_tag

    anon = "anon:0123456789abcdefghijklmnopqrstuv"
    room_services.participant_mute(room=a_public_room, user=alice, key=anon, minutes=5)
    room_services.participant_kick(room=a_public_room, user=alice, key=anon, minutes=5, reason="x")

    entries = list(AuditEntry.objects.order_by("id"))
    assert [e.action for e in entries] == ["room.mute", "room.kick"]
    assert all(e.actor == alice and e.target_id == str(a_public_room.pk) for e in entries)
    assert entries[0].before == {"participant": participant_tag(anon)}
    assert set(entries[1].after) == {"participant", "muted_until", "kicked_until"}
    assert "0123456789abcdefghijklmnopqrstuv" not in str([(e.before, e.after) for e in entries])


def test_an_entry_is_never_updated(a_public_song, mod):
    services.song_hide(moderator=mod, song=a_public_song, reason="r")
    entry = AuditEntry.objects.get()

    entry.reason = "something else"
    with pytest.raises(AuditEntryIsAppendOnly):
        entry.save()
    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="something else")
    with pytest.raises(AuditEntryIsAppendOnly), transaction.atomic():  # it runs in one itself
        AuditEntry.objects.bulk_update([entry], ["reason"])
    assert AuditEntry.objects.get().reason == "r"


def test_an_entry_is_never_deleted(a_public_song, mod):
    services.song_hide(moderator=mod, song=a_public_song, reason="r")
    entry = AuditEntry.objects.get()

    with pytest.raises(AuditEntryIsAppendOnly):
        entry.delete()
    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.count() == 1


def test_deleting_an_account_leaves_its_entries(a_public_song, mod):
    services.song_hide(moderator=mod, song=a_public_song, reason="r")

    mod_id = mod.pk
    mod.delete()

    entry = AuditEntry.objects.get()
    assert (entry.actor_id, entry.actor_label) == (mod_id, "mod")


def test_an_entry_is_only_written_inside_the_change_transaction(mod):
    # pytest-django runs each test in a transaction; step outside it, as autocommit code would.
    connection.in_atomic_block, saved = False, connection.in_atomic_block
    try:
        with pytest.raises(AuditOutsideTransaction):
            audit_record(actor=mod, action="song.hide", target_type="song", target_id="x")
    finally:
        connection.in_atomic_block = saved


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_postgresql_refuses_to_update_or_delete_an_entry(a_public_song, mod):
    assert connection.vendor == "postgresql"
    services.song_hide(moderator=mod, song=a_public_song, reason="r")
    entry = AuditEntry.objects.get()
    table = AuditEntry._meta.db_table

    for sql in (f"UPDATE {table} SET reason = 'x'", f"DELETE FROM {table}"):  # noqa: S608
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)
    assert AuditEntry.objects.get().reason == entry.reason == "r"
