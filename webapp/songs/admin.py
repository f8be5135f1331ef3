from django.contrib import admin

from webapp.moderation import services as moderation
from webapp.moderation.admin_actions import ModerationActionsMixin, moderation_action
from webapp.songs.models import Song, SongLike


@admin.register(Song)
class SongAdmin(ModerationActionsMixin, admin.ModelAdmin):
    # Moderation goes through the actions (webapp.moderation.services: audit log, reports).
    actions = [
        moderation_action(moderation.song_hide, keyword="song", name="hide", description="Hide"),
        moderation_action(
            moderation.song_unhide, keyword="song", name="unhide", description="Make visible"
        ),
        moderation_action(
            moderation.song_remove,
            keyword="song",
            name="remove",
            description="Remove (take down; reason required)",
        ),
    ]
    list_display = (
        "title",
        "owner",
        "status",
        "visibility",
        "moderation",
        "duration_s",
        "like_count",
        "model_version",
        "is_placeholder",
        "created_at",
    )
    list_filter = (
        "status",
        "visibility",
        "moderation",
        "is_placeholder",
        "model_version",
        "created_at",
    )
    search_fields = ("title", "prompt", "owner__username", "share_token", "id")
    readonly_fields = (
        "id",
        "share_token",
        "peaks",
        "provenance",
        "reference_info",  # recorded when the clip was validated (webapp/songs/uploads.py)
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "attempts",
        "moderation",
        "moderation_reason",
        "moderated_at",
    )
    raw_id_fields = ("owner",)
    date_hierarchy = "created_at"
    list_select_related = ("owner",)


@admin.register(SongLike)
class SongLikeAdmin(admin.ModelAdmin):
    list_display = ("song", "user", "value", "updated_at")
    list_filter = ("value",)
    search_fields = ("song__title", "user__username")
    raw_id_fields = ("song", "user")
