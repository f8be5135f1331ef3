"""One error shape for the whole API: {"error": {"code", "message", "fields"?}} and a 4xx status.

Errors a user can cause (validation, permissions, unknown ids, malformed JSON, rate limits) get a
clear message; anything else is DRF's or Django's 500 path and is logged with context.
"""

from __future__ import annotations

import math

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from webapp.errors import ServiceError
from webapp.ratelimit import RateLimited


def _message_of(detail) -> str:
    if isinstance(detail, list) and detail:
        return _message_of(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        return f"{key}: {_message_of(value)}"
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, RateLimited):
        response = Response(
            {"error": {"code": "rate_limited", "message": str(exc)}},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
        )
        response["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"error": {"code": "too_large", "message": "The request body is too large."}},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, ServiceError):
        body = {"code": exc.code, "message": exc.message}
        if exc.field:
            body["fields"] = {exc.field: [exc.message]}
        return Response({"error": body}, exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    body: dict = {"code": getattr(exc, "default_code", "error")}
    if isinstance(exc, exceptions.ValidationError):
        body["code"] = "invalid"
        body["message"] = _message_of(detail)
        body["fields"] = detail if isinstance(detail, dict) else {"non_field_errors": detail}
    else:
        body["message"] = _message_of(
            detail.get("detail", detail) if isinstance(detail, dict) else detail
        )
    response.data = {"error": body}
    return response
