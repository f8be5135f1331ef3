from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.services import (
    USERNAME_MAX,
    user_api_token,
    user_revoke_api_token,
    user_signup,
)
from webapp.errors import Forbidden, ServiceError
from webapp.moderation.selectors import sanction_for_credentials
from webapp.moderation.signup import login_address_record
from webapp.ratelimit import client_key, ratelimit_enforce
from webapp.safety.quotas import quota_get


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    is_staff = serializers.BooleanField()
    date_joined = serializers.DateTimeField()


class QuotaSerializer(serializers.Serializer):
    """Today's generation quota (UTC day); null limits and `left`s: no limit (staff)."""

    day = serializers.DateField()
    resets_at = serializers.DateTimeField()
    exempt = serializers.BooleanField()
    seconds_limit = serializers.FloatField(allow_null=True)
    seconds_used = serializers.FloatField()
    seconds_left = serializers.FloatField(allow_null=True)
    songs_limit = serializers.IntegerField(allow_null=True)
    songs_used = serializers.IntegerField()
    songs_left = serializers.IntegerField(allow_null=True)


class MeSerializer(UserSerializer):
    quota = QuotaSerializer()


class SignupSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=USERNAME_MAX)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    password = serializers.CharField(max_length=128, write_only=True)


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, write_only=True)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    user = UserSerializer()


class SignupApi(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []

    @extend_schema(request=SignupSerializer, responses={201: TokenSerializer})
    def post(self, request):
        ratelimit_enforce(domain="signup", key=client_key(request))
        form = SignupSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = user_signup(**form.validated_data, address=request.META.get("REMOTE_ADDR"))
        body = {"token": user_api_token(user=user), "user": UserSerializer(user).data}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenApi(APIView):
    """Exchange a username and password for an API token; DELETE revokes it."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(request=CredentialsSerializer, responses={200: TokenSerializer})
    def post(self, request):
        ratelimit_enforce(domain="auth", key=client_key(request))
        form = CredentialsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = authenticate(request, **form.validated_data)
        if user is None:
            sanction = sanction_for_credentials(**form.validated_data)
            if sanction is not None:
                raise Forbidden(sanction.describe())
            raise ServiceError("Wrong username or password.", code="bad_credentials")
        login_address_record(user=user, address=request.META.get("REMOTE_ADDR"))
        return Response({"token": user_api_token(user=user), "user": UserSerializer(user).data})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        user_revoke_api_token(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        quota = quota_get(user=request.user).as_dict()
        return Response({**UserSerializer(request.user).data, "quota": quota})
