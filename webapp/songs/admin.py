from django.contrib import admin

from webapp.songs.models import Song, SongLike


@admin.register(Song)
class SongAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "owner",
        "status",
        "visibility",
        "duration_s",
        "like_count",
        "model_version",
        "is_placeholder",
        "created_at",
    )
    list_filter = ("status", "visibility", "is_placeholder", "model_version", "created_at")
    search_fields = ("title", "prompt", "owner__username", "share_token", "id")
    readonly_fields = (
        "id",
        "share_token",
        "peaks",
        "provenance",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "attempts",
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
