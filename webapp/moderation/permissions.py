"""Who is a moderator, in one place.

A moderator is an active account that is either a superuser, or a staff user (`is_staff`: they
may open the admin) holding the `moderation.moderate` permission, directly or through a group.
The "moderators" group carries that permission and exists after every `migrate`; making someone a
moderator is: tick "staff status" and add them to the group (docs/moderation.md).

Other staff users keep what the rest of the site already gives staff (they see every song and
room, as admins); only moderators get the moderation page, reports, and the moderation actions.
"""

from __future__ import annotations

MODERATE_PERMISSION = "moderation.moderate"
MODERATORS_GROUP = "moderators"


def user_is_moderator(user) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return bool(user.is_staff and user.has_perm(MODERATE_PERMISSION))


# What the group may open in the Django admin besides: the things moderators act on there.
ADMIN_VIEWS = (
    ("songs", "view_song"),
    ("collab", "view_room"),
    ("collab", "view_proposal"),
    ("auth", "view_user"),
    ("moderation", "view_report"),
    ("moderation", "view_sanction"),
    ("moderation", "view_auditentry"),
)


def moderators_group_ensure(sender=None, **kwargs) -> None:
    """post_migrate: the "moderators" group exists and holds the moderate permission, and the
    view permissions of the admin pages whose moderation actions moderators use."""
    from django.contrib.auth.models import Group, Permission
    from django.db.models import Q

    moderate = Permission.objects.filter(
        content_type__app_label="moderation", codename="moderate"
    ).first()
    if moderate is None:  # permissions not created (migrate run with them switched off)
        return
    wanted = Q()
    for app_label, codename in ADMIN_VIEWS:
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    group, _ = Group.objects.get_or_create(name=MODERATORS_GROUP)
    group.permissions.add(moderate, *Permission.objects.filter(wanted))
