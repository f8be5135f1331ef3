"""REST endpoint for reports: `POST /api/v1/reports/` (docs/api.md)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.moderation.models import MAX_DETAILS_CHARS, MAX_TARGET_ID_CHARS, Report, TargetType
from webapp.moderation.services import report_submit


class ReportCreateSerializer(serializers.Serializer):
    target_type = serializers.ChoiceField(choices=TargetType.choices)
    target_id = serializers.CharField(
        max_length=MAX_TARGET_ID_CHARS,
        help_text="A song's or room's id (UUID), a proposal's id, or an account's id.",
    )
    reason = serializers.ChoiceField(choices=Report.Reason.choices)
    details = serializers.CharField(
        max_length=MAX_DETAILS_CHARS,
        required=False,
        allow_blank=True,
        default="",
        help_text=f"What the moderators should know (at most {MAX_DETAILS_CHARS} characters).",
    )
    share_token = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="The share token of an unlisted song or room you reached by its link.",
    )


class ReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    target_type = serializers.ChoiceField(choices=TargetType.choices)
    target_id = serializers.CharField()
    reason = serializers.ChoiceField(choices=Report.Reason.choices)
    details = serializers.CharField()
    status = serializers.ChoiceField(choices=Report.Status.choices)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ReportApi(APIView):
    """Report a song, room, proposal or account to the moderators.

    One open report per reporter and target: reporting the same thing again updates your report
    (200) rather than adding one (201). Something you cannot see is a 404, as if it did not
    exist. Rate limited (`report`: 5 a minute, 30 an hour)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=ReportCreateSerializer,
        responses={
            201: OpenApiResponse(ReportSerializer, description="A new report."),
            200: OpenApiResponse(ReportSerializer, description="Your open report, updated."),
        },
    )
    def post(self, request):
        form = ReportCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        report, created = report_submit(
            reporter=request.user,
            target_type=data["target_type"],
            target_id=data["target_id"],
            reason=data["reason"],
            details=data["details"],
            share_token=data.get("share_token") or None,
        )
        return Response(
            ReportSerializer(report).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
