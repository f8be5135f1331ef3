"""Admin for model versions: the registry, every decision, and a page plotting like rate per
version over time (/admin/tuning/modelversion/like-rate/)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from webapp.errors import ServiceError
from webapp.tuning import services
from webapp.tuning.models import ModelVersion, TuningRun, VersionDecision
from webapp.tuning.plot import Point, like_rate_svg
from webapp.tuning.selectors import like_rate_series

PERIODS = {
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}


class DecisionInline(admin.TabularInline):
    model = VersionDecision
    fk_name = "version"
    fields = ("created_at", "action", "reason", "baseline", "details")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "canary_share", "parent", "held_out", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "sha256")
    readonly_fields = (
        "name",
        "checkpoint",
        "sha256",
        "parent",
        "status",
        "canary_share",
        "metrics",
        "feedback_from",
        "feedback_to",
        "labels_version",
        "created_at",
        "canary_started_at",
        "promoted_at",
        "rolled_back_at",
        "retired_at",
    )
    fields = (*readonly_fields, "note")
    inlines = (DecisionInline,)
    actions = ("promote", "roll_back")
    change_list_template = "admin/tuning/modelversion/change_list.html"

    def has_add_permission(self, request):
        return False  # versions are registered by the loop or `manage.py tune register`

    @admin.display(description="held-out (critic / DPO)")
    def held_out(self, version: ModelVersion) -> str:
        critic = (version.metrics.get("critic") or {}).get("held_out_accuracy")
        dpo = ((version.metrics.get("dpo") or {}).get("held_out") or {}).get("accuracy")
        return " / ".join("–" if v is None else f"{v:.2f}" for v in (critic, dpo))

    @admin.action(description="Promote the selected version (retires the promoted one)")
    def promote(self, request, queryset):
        for version in queryset[:1]:
            self._act(request, services.model_version_promote, version)

    @admin.action(description="Roll back the selected candidates or canaries")
    def roll_back(self, request, queryset):
        for version in queryset:
            self._act(request, services.model_version_roll_back, version)

    def _act(self, request, service, version) -> None:
        try:
            service(version=version, reason=f"by {request.user.get_username()} in the admin")
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"{version.name}: done.", messages.SUCCESS)

    def get_urls(self):
        extra = [
            path(
                "like-rate/",
                self.admin_site.admin_view(self.like_rate_view),
                name="tuning_modelversion_like_rate",
            )
        ]
        return extra + super().get_urls()

    def like_rate_view(self, request):
        """Like rate (thumbs up / thumbs given) per version over time: an inline SVG chart, a
        table of the same numbers, and the latest decisions."""
        period = request.GET.get("period", "7d")
        if period not in PERIODS:
            period = "7d"
        until = timezone.now()
        bucket, raw = like_rate_series(since=until - PERIODS[period], until=until)
        series = {name: [Point(*row) for row in rows] for name, rows in raw.items()}
        statuses = dict(ModelVersion.objects.filter(name__in=series).values_list("name", "status"))
        summary = ", ".join(
            f"{name} ({statuses.get(name, 'not registered')}): "
            f"{sum(p.likes for p in pts)} of {sum(p.thumbs for p in pts)} thumbs up"
            for name, pts in sorted(series.items())
        )
        svg = like_rate_svg(
            series,
            title=f"Like rate per model version, last {period}, by {bucket}",
            desc=(
                f"Share of thumbs that were up, per {bucket}, for each model version. "
                + (summary or "No thumbs in this period.")
            ),
        )
        rows = [
            (name, statuses.get(name, "not registered"), p)
            for name, points in sorted(series.items())
            for p in points
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Like rate per model version",
            "opts": self.model._meta,
            "svg": svg,
            "rows": rows,
            "bucket": bucket,
            "period": period,
            "periods": list(PERIODS),
            "decisions": VersionDecision.objects.select_related("version", "baseline")[:20],
        }
        return TemplateResponse(request, "admin/tuning/modelversion/like_rate.html", context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "like_rate_url": reverse("admin:tuning_modelversion_like_rate"),
        }
        return super().changelist_view(request, extra_context)


@admin.register(VersionDecision)
class VersionDecisionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "version", "action", "reason", "baseline")
    list_filter = ("action",)
    readonly_fields = ("version", "baseline", "action", "reason", "details", "created_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TuningRun)
class TuningRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "status", "base", "produced_link", "message")
    list_filter = ("status",)
    readonly_fields = (
        "status",
        "base",
        "produced",
        "feedback_from",
        "feedback_to",
        "counts",
        "metrics",
        "message",
        "started_at",
        "finished_at",
    )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="produced")
    def produced_link(self, run: TuningRun):
        if run.produced is None:
            return "–"
        url = reverse("admin:tuning_modelversion_change", args=[run.produced_id])
        return format_html('<a href="{}">{}</a>', url, run.produced.name)
