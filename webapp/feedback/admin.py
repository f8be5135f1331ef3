from django.contrib import admin

from webapp.feedback.models import FeedbackEvent


@admin.register(FeedbackEvent)
class FeedbackEventAdmin(admin.ModelAdmin):
    """Read-only: the feedback log is append-only, even for admins."""

    list_display = (
        "server_ts",
        "kind",
        "actor",
        "target_type",
        "target_id",
        "value",
        "choice_set",
        "slot",
        "model_version",
    )
    list_filter = ("kind", "target_type", "model_version", "server_ts")
    search_fields = ("actor", "target_id", "choice_set", "client_event_id")
    date_hierarchy = "server_ts"
    show_full_result_count = False  # COUNT(*) over the whole log is slow and not needed

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
