"""Accounts: sign-up and API tokens. Django's auth does the rest (login, passwords, reset)."""

from __future__ import annotations

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from webapp.errors import ServiceError
from webapp.moderation.models import SignupBlock
from webapp.moderation.signup import (
    login_address_record,
    signup_check_address,
    signup_check_email,
    signup_flag,
)

User = get_user_model()
USERNAME_MAX = 30


def user_check_signup(
    *, username: str, email: str, password: str, address: str | None = None
) -> SignupBlock | None:
    """Refuses a sign-up that breaks a rule, or that a sanctioned person makes again (their
    email, or an address their banned account signed in from lately: webapp.moderation.signup).
    Returns the address block to flag the new account with, when sign-ups from it are flagged
    rather than refused."""
    if not username or len(username) > USERNAME_MAX or not username.replace("_", "").isalnum():
        raise ServiceError(
            f"Usernames are 1 to {USERNAME_MAX} letters, digits or underscores.", field="username"
        )
    if User.objects.filter(username__iexact=username).exists():
        raise ServiceError("That username is taken.", code="taken", field="username")
    # A sanctioned person's email first: "taken" would not say why.
    signup_check_email(email=email, username=username)
    if email and User.objects.filter(email__iexact=email).exists():
        raise ServiceError("An account with that email exists.", code="taken", field="email")
    try:
        password_validation.validate_password(password, User(username=username, email=email))
    except ValidationError as exc:
        raise ServiceError(" ".join(exc.messages), field="password") from exc
    return signup_check_address(address=address, username=username)


def user_signup(*, username: str, email: str, password: str, address: str | None = None):
    """Create an account (after user_check_signup, run here), from the client at `address`
    (REMOTE_ADDR): remembered as the account's first login address, and checked against the
    addresses of banned accounts."""
    flag = user_check_signup(username=username, email=email, password=password, address=address)
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, email=email, password=password)
    except IntegrityError as exc:  # a concurrent sign-up took the name between check and insert
        raise ServiceError("That username is taken.", code="taken", field="username") from exc
    login_address_record(user=user, address=address)
    if flag is not None:
        signup_flag(user=user, block=flag)
    return user


def user_api_token(*, user) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def user_revoke_api_token(*, user) -> None:
    Token.objects.filter(user=user).delete()
