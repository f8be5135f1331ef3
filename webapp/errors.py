"""Errors that services raise when a rule refuses an action. Views turn them into 4xx answers."""

from __future__ import annotations


class ServiceError(Exception):
    """A rule of the service refused an action; `code` is stable for clients, `message` is human."""

    status_code = 400

    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


class NotFound(ServiceError):
    """Also used for things that exist but are not visible to the caller: never leak existence."""

    status_code = 404

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message, code="not_found")


class Forbidden(ServiceError):
    status_code = 403

    def __init__(self, message: str = "You may not do that.") -> None:
        super().__init__(message, code="forbidden")
