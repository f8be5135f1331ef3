from django.contrib import admin

from webapp.safety.models import DailyUsage


@admin.register(DailyUsage)
class DailyUsageAdmin(admin.ModelAdmin):
    """Each user's generation usage per UTC day. Editable on purpose: lowering a day's
    seconds or songs is how staff give someone more for today."""

    list_display = ("user", "day", "seconds", "songs")
    list_filter = ("day",)
    search_fields = ("user__username",)
    raw_id_fields = ("user",)
    date_hierarchy = "day"
