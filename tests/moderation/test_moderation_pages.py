"""The moderation page (queue and target pages) and the Django admin's moderation actions: who
may use them, what the queue shows and in what order, and that both act through the services
(one audit entry, reports closed)."""

from __future__ import annotations

from django.contrib.auth.models import Permission
from django.urls import reverse

from webapp.moderation import services
from webapp.moderation.models import AuditEntry, Report, Sanction
from webapp.moderation.permissions import user_is_moderator
from webapp.songs.models import Song


def reported(reporter, target, reason="spam", target_type="song", details=""):
    return Report.objects.create(
        reporter=reporter,
        target_type=target_type,
        target_id=str(target.pk),
        reason=reason,
        details=details,
    )


def test_who_is_a_moderator(make_user, mod, admin, bob):
    staff = make_user("staff", is_staff=True)
    permitted = make_user("permitted", is_staff=True)
    permitted.user_permissions.add(
        Permission.objects.get(content_type__app_label="moderation", codename="moderate")
    )
    not_staff = make_user("grouped")
    not_staff.groups.set(mod.groups.all())

    assert [user_is_moderator(u) for u in (mod, admin, permitted)] == [True, True, True]
    assert [user_is_moderator(u) for u in (staff, not_staff, bob)] == [False, False, False]


def test_the_queue_is_for_moderators_only(browser_of, bob, make_user):
    staff = make_user("staff", is_staff=True)

    assert browser_of(None).get("/moderation/").status_code == 302  # to the login page
    assert browser_of(bob).get("/moderation/").status_code == 403
    assert browser_of(staff).get("/moderation/").status_code == 403


def test_the_queue_groups_reports_by_target_most_reported_first(
    browser_of, mod, bob, carol, alice, make_song
):
    once = make_song(alice, visibility="public", title="Reported once")
    twice = make_song(alice, visibility="public", title="Reported twice")
    reported(bob, twice, "hate", details="Slurs in the title.")
    reported(carol, twice, "hate")
    reported(bob, once, "copyright")  # the newest report

    most = browser_of(mod).get("/moderation/").content.decode()
    newest = browser_of(mod).get("/moderation/?sort=newest").content.decode()

    assert most.index("Reported twice") < most.index("Reported once")
    assert newest.index("Reported once") < newest.index("Reported twice")
    assert "2 open reports" in most and "1 open report" in most
    assert "hate × 2" in most and "copyright × 1" in most
    assert "Slurs in the title." in most


def test_a_song_is_hidden_from_its_page_and_its_reports_close(browser_of, mod, bob, a_public_song):
    reported(bob, a_public_song)
    page = reverse("moderation:target", args=["song", a_public_song.pk])
    assert b"Hide" in browser_of(mod).get(page).content

    response = browser_of(mod).post(page, {"action": "hide", "reason": "Hateful."}, follow=True)

    assert response.status_code == 200 and b"Done: hide." in response.content
    a_public_song.refresh_from_db()
    assert (a_public_song.moderation, a_public_song.moderation_reason) == ("hidden", "Hateful.")
    report = Report.objects.get()
    assert (report.status, report.resolved_by, report.resolution) == ("actioned", mod, "song.hide")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.ip) == ("song.hide", "127.0.0.1")
    assert b"song.hide" in response.content  # the target's audit log, on its page


def test_a_takedown_without_a_reason_is_refused_with_a_message(browser_of, mod, a_public_song):
    page = reverse("moderation:target", args=["song", a_public_song.pk])

    response = browser_of(mod).post(page, {"action": "remove", "reason": ""}, follow=True)

    assert b"Give a reason" in response.content
    assert Song.objects.get(pk=a_public_song.pk).moderation == "visible"
    assert not AuditEntry.objects.exists()


def test_a_user_is_suspended_from_their_page(browser_of, mod, bob):
    page = reverse("moderation:target", args=["user", bob.pk])

    browser_of(mod).post(page, {"action": "suspend", "reason": "Spam.", "hours": "72"})

    sanction = Sanction.objects.get(user=bob)
    assert sanction.kind == "suspension"
    hours = (sanction.ends_at - sanction.starts_at).total_seconds() / 3600
    assert round(hours) == 72


def test_dismissing_from_the_queue_goes_back_to_it(browser_of, mod, bob, a_public_song):
    reported(bob, a_public_song)
    page = reverse("moderation:target", args=["song", a_public_song.pk])

    response = browser_of(mod).post(page, {"action": "dismiss", "next": "/moderation/?sort=newest"})

    assert response["Location"] == "/moderation/?sort=newest"
    assert Report.objects.get().status == "dismissed"
    assert AuditEntry.objects.get().action == "reports.dismiss"


def test_an_offsite_next_is_ignored(browser_of, mod, a_public_song):
    page = reverse("moderation:target", args=["song", a_public_song.pk])

    response = browser_of(mod).post(page, {"action": "dismiss", "next": "https://evil.example/"})

    assert response["Location"] == page


def test_unknown_targets_and_actions(browser_of, mod, a_public_song):
    browser = browser_of(mod)
    assert browser.get("/moderation/chunk/1/").status_code == 404
    assert browser.get("/moderation/song/not-a-uuid/").status_code == 404
    page = reverse("moderation:target", args=["song", a_public_song.pk])
    response = browser.post(page, {"action": "ban", "reason": "x"}, follow=True)
    assert b"Unknown action" in response.content
    assert not AuditEntry.objects.exists()


def test_every_target_page_opens(browser_of, mod, bob, a_public_song, make_room, alice):
    from collab import services as room_services

    room = make_room(alice, visibility="public")
    proposal = room_services.proposal_create(room=room, user=bob, text="loud noise")
    browser = browser_of(mod)

    for kind, target in (
        ("song", a_public_song),
        ("room", room),
        ("proposal", proposal),
        ("user", bob),
    ):
        response = browser.get(reverse("moderation:target", args=[kind, target.pk]))
        assert response.status_code == 200, kind
        assert b"<label" in response.content and b"Audit log" in response.content, kind


def test_moderators_see_the_link_in_the_menu_and_nobody_else(browser_of, mod, bob):
    assert b'href="/moderation/"' in browser_of(mod).get("/").content
    assert b'href="/moderation/"' not in browser_of(bob).get("/").content


# --- The Django admin ---------------------------------------------------------------------------


def test_an_admin_action_hides_songs_through_the_service(browser_of, mod, a_public_song):
    response = browser_of(mod).post(
        reverse("admin:songs_song_changelist"),
        {"action": "hide", "_selected_action": [a_public_song.pk], "reason": "From the admin."},
    )

    assert response.status_code == 302
    a_public_song.refresh_from_db()
    assert a_public_song.moderation == "hidden"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.reason, entry.actor) == ("song.hide", "From the admin.", mod)


def test_an_admin_action_bans_users_through_the_service(browser_of, admin, bob):
    browser_of(admin).post(
        reverse("admin:auth_user_changelist"),
        {"action": "ban_users", "_selected_action": [bob.pk], "reason": "Spam."},
    )

    assert Sanction.objects.get(user=bob).kind == "ban"
    assert AuditEntry.objects.get().action == "user.ban"


def test_admin_moderation_actions_are_listed_to_moderators_only(
    browser_of, admin, make_user, a_public_song
):
    staff = make_user("staff", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(content_type__app_label="songs", codename="view_song")
    )

    assert b'value="hide"' in browser_of(admin).get(reverse("admin:songs_song_changelist")).content
    assert (
        b'value="hide"' not in browser_of(staff).get(reverse("admin:songs_song_changelist")).content
    )


def test_the_audit_log_is_read_only_in_the_admin(browser_of, admin, mod, a_public_song):
    services.song_hide(moderator=mod, song=a_public_song, reason="r")
    entry = AuditEntry.objects.get()
    browser = browser_of(admin)

    assert browser.get(reverse("admin:moderation_auditentry_changelist")).status_code == 200
    page = browser.get(reverse("admin:moderation_auditentry_change", args=[entry.pk]))
    assert page.status_code == 200 and b'name="reason"' not in page.content
    assert (
        browser.post(
            reverse("admin:moderation_auditentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert browser.get(reverse("admin:moderation_auditentry_add")).status_code == 403
    assert AuditEntry.objects.count() == 1


def test_dismissing_reports_in_the_admin_acts_once_per_target(
    browser_of, mod, bob, carol, a_public_song
):
    first, second = reported(bob, a_public_song), reported(carol, a_public_song)

    browser_of(mod).post(
        reverse("admin:moderation_report_changelist"),
        {"action": "dismiss_reports", "_selected_action": [first.pk, second.pk], "reason": "Fine."},
    )

    assert set(Report.objects.values_list("status", flat=True)) == {"dismissed"}
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.before, entry.after) == (
        "reports.dismiss",
        {"open_reports": 2},
        {"open_reports": 0},
    )
