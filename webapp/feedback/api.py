"""POST /api/v1/feedback/: a batch of listener events, appended to the feedback table."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.feedback.models import FeedbackEvent
from webapp.feedback.services import MAX_BATCH, EventIn, feedback_record_batch
from webapp.moderation.selectors import sanction_check_session
from webapp.ratelimit import client_key, ratelimit_enforce


class EventSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=FeedbackEvent.Kind.choices)
    target_type = serializers.ChoiceField(choices=FeedbackEvent.TargetType.choices)
    target_id = serializers.CharField(max_length=64)
    value = serializers.FloatField(required=False, allow_null=True, min_value=-1e6, max_value=1e6)
    position_s = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=86400.0
    )
    choice_set = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    slot = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=63)
    client_event_id = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default=""
    )
    client_ts = serializers.DateTimeField(required=False, allow_null=True)
    share_token = serializers.CharField(max_length=64, required=False, allow_null=True)


class BatchSerializer(serializers.Serializer):
    events = EventSerializer(many=True, allow_empty=False, max_length=MAX_BATCH)


class FeedbackApi(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=BatchSerializer,
        responses={
            201: inline_serializer(
                "FeedbackBatchResult",
                {"received": serializers.IntegerField(), "recorded": serializers.IntegerField()},
            )
        },
    )
    def post(self, request):
        form = BatchSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        session_key = None
        if not request.user.is_authenticated:
            # A banned person's old cookie reads as signed out: it is still not anybody's to use.
            sanction_check_session(request.session)
            # Anonymous listeners are limited by address too: a new session per call is cheap.
            ratelimit_enforce(domain="feedback", key=client_key(request))
            if not request.session.session_key:
                request.session.save()
            session_key = request.session.session_key
        result = feedback_record_batch(
            user=request.user,
            session_key=session_key,
            events=[EventIn(**event) for event in form.validated_data["events"]],
        )
        return Response(
            {"received": result.received, "recorded": result.recorded},
            status=status.HTTP_201_CREATED,
        )
