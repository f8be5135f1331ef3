"""Moderation in the Django admin: reports (dismiss), sanctions (lift), the audit log (read
only), and moderation actions on accounts. Songs, rooms and proposals get theirs in their own
apps' admin. Every action is a webapp.moderation.services call."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from webapp.moderation import services
from webapp.moderation.admin_actions import ModerationActionsMixin, moderation_action
from webapp.moderation.models import AuditEntry, Report, Sanction


@admin.action(description="Dismiss the open reports of these targets", permissions=["moderate"])
def dismiss_reports(modeladmin, request, queryset) -> None:
    """Once per target, however many of its reports are selected (reports_dismiss closes them
    all, with one audit entry)."""
    targets = set(queryset.values_list("target_type", "target_id"))
    closed = sum(
        services.reports_dismiss(
            moderator=request.user,
            target_type=target_type,
            target_id=target_id,
            reason=request.POST.get("reason", ""),
            ip=request.META.get("REMOTE_ADDR") or None,
        )
        for target_type, target_id in sorted(targets)
    )
    modeladmin.message_user(request, f"Dismissed {closed} open reports.", messages.SUCCESS)


@admin.register(Report)
class ReportAdmin(ModerationActionsMixin, admin.ModelAdmin):
    list_display = ("target_type", "target_id", "reason", "reporter", "status", "updated_at")
    list_filter = ("status", "reason", "target_type", "updated_at")
    search_fields = ("target_id", "reporter__username", "details")
    readonly_fields = [f.name for f in Report._meta.fields]
    list_select_related = ("reporter",)
    date_hierarchy = "updated_at"
    actions = [dismiss_reports]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Sanction)
class SanctionAdmin(ModerationActionsMixin, admin.ModelAdmin):
    list_display = ("user", "kind", "starts_at", "ends_at", "lifted_at", "created_by")
    list_filter = ("kind", "starts_at")
    search_fields = ("user__username", "reason")
    readonly_fields = [f.name for f in Sanction._meta.fields]
    list_select_related = ("user", "created_by")
    actions = [
        moderation_action(
            lambda *, sanction, **kw: services.user_lift_sanctions(user=sanction.user, **kw),
            keyword="sanction",
            name="lift_sanctions",
            description="Lift every ban and suspension of these accounts",
        )
    ]

    def has_add_permission(self, request) -> bool:  # sanctions are made by the actions
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read only: the log is append-only (the model and, on PostgreSQL, a trigger refuse)."""

    list_display = ("created_at", "actor_label", "action", "target_type", "target_id", "reason")
    list_filter = ("action", "target_type", "created_at")
    search_fields = ("actor_label", "target_id", "reason", "action")
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(ModerationActionsMixin, DjangoUserAdmin):
    """Django's user admin, with suspend, ban and lift (as on the moderation page)."""

    actions = [
        moderation_action(
            services.user_suspend,
            keyword="user",
            name="suspend_users",
            description="Suspend these accounts (for the time chosen)",
            suspend=True,
        ),
        moderation_action(
            services.user_ban, keyword="user", name="ban_users", description="Ban these accounts"
        ),
        moderation_action(
            services.user_lift_sanctions,
            keyword="user",
            name="lift_user_sanctions",
            description="Lift bans and suspensions of these accounts",
        ),
    ]
