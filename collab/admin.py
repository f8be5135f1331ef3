"""Rooms in the admin: moderators look, and end or hide a room; the record is not edited here
(rounds, votes and chunks are the history of what the room heard)."""

from django.contrib import admin

from collab.models import Chunk, Proposal, Room, Round, Vote
from webapp.moderation import services as moderation
from webapp.moderation.admin_actions import ModerationActionsMixin, moderation_action


class RoundInline(admin.TabularInline):
    model = Round
    extra = 0
    fields = ("number", "status", "opened_at", "ends_at", "closed_at", "tally")
    readonly_fields = fields
    ordering = ("-number",)
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Room)
class RoomAdmin(ModerationActionsMixin, admin.ModelAdmin):
    # Moderation goes through the actions (webapp.moderation.services: audit log, listeners).
    actions = [
        moderation_action(moderation.room_hide, keyword="room", name="hide", description="Hide"),
        moderation_action(
            moderation.room_unhide, keyword="room", name="unhide", description="Make visible"
        ),
        moderation_action(
            moderation.room_close,
            keyword="room",
            name="close",
            description="Close: end now (reason required)",
        ),
        moderation_action(
            moderation.room_remove,
            keyword="room",
            name="remove",
            description="Remove: end and take down (reason required)",
        ),
    ]
    list_display = (
        "title",
        "host",
        "status",
        "visibility",
        "moderation",
        "mode",
        "created_at",
        "ended_at",
    )
    list_filter = (
        "status",
        "visibility",
        "moderation",
        "mode",
        "who_may_propose",
        "login_required",
    )
    search_fields = ("title", "slug", "anchor_prompt", "host__username", "id")
    readonly_fields = (
        "id",
        "slug",
        "share_token",
        "seed",
        "current_blend",
        "current_steering",
        "created_at",
        "updated_at",
        "ended_at",
        "restrictions",
        "moderation",
        "moderation_reason",
        "moderated_at",
    )
    raw_id_fields = ("host",)
    date_hierarchy = "created_at"
    list_select_related = ("host",)
    inlines = (RoundInline,)


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ("room", "number", "status", "opened_at", "ends_at", "closed_at")
    list_filter = ("status",)
    search_fields = ("room__title", "room__id")
    readonly_fields = ("room", "number", "opened_at", "closed_at", "tally", "result_blend")
    list_select_related = ("room",)


@admin.register(Proposal)
class ProposalAdmin(ModerationActionsMixin, admin.ModelAdmin):
    actions = [
        moderation_action(
            moderation.proposal_reject,
            keyword="proposal",
            name="reject",
            description="Reject: off the ballot and out of the music",
        )
    ]
    list_display = ("text", "kind", "status", "room", "author_key", "created_at")
    list_filter = ("status", "kind", "created_at")
    search_fields = ("text", "author_key", "author__username", "room__title")
    readonly_fields = (
        "room",
        "round",
        "author",
        "author_key",
        "kind",
        "control",
        "created_at",
        "moderated_at",
        "moderated_by",
    )
    list_select_related = ("room",)


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ("voter_key", "proposal", "round", "updated_at")
    search_fields = ("voter_key", "voter__username")
    readonly_fields = ("round", "proposal", "voter", "voter_key", "created_at", "updated_at")
    list_select_related = ("proposal", "round")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ("room", "sequence", "start_s", "duration_s", "created_at")
    search_fields = ("room__title", "room__id")
    readonly_fields = (
        "room",
        "sequence",
        "start_s",
        "duration_s",
        "audio",
        "steering",
        "provenance",
        "created_at",
    )
    list_select_related = ("room",)

    def has_add_permission(self, request) -> bool:
        return False
