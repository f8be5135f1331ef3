"""Accounts: sign-up and API tokens. Django's auth does the rest (login, passwords, reset)."""

from __future__ import annotations

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from webapp.errors import ServiceError

User = get_user_model()
USERNAME_MAX = 30


def user_check_signup(*, username: str, email: str, password: str) -> None:
    if not username or len(username) > USERNAME_MAX or not username.replace("_", "").isalnum():
        raise ServiceError(
            f"Usernames are 1 to {USERNAME_MAX} letters, digits or underscores.", field="username"
        )
    if User.objects.filter(username__iexact=username).exists():
        raise ServiceError("That username is taken.", code="taken", field="username")
    if email and User.objects.filter(email__iexact=email).exists():
        raise ServiceError("An account with that email exists.", code="taken", field="email")
    try:
        password_validation.validate_password(password, User(username=username, email=email))
    except ValidationError as exc:
        raise ServiceError(" ".join(exc.messages), field="password") from exc


def user_signup(*, username: str, email: str, password: str):
    """Create an account (the caller has run user_check_signup or relies on it being run here)."""
    user_check_signup(username=username, email=email, password=password)
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, email=email, password=password)
    except IntegrityError as exc:  # a concurrent sign-up took the name between check and insert
        raise ServiceError("That username is taken.", code="taken", field="username") from exc


def user_api_token(*, user) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def user_revoke_api_token(*, user) -> None:
    Token.objects.filter(user=user).delete()
