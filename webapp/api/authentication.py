from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from webapp.moderation.selectors import sanction_in_force


class StrictTokenAuthentication(TokenAuthentication):
    """Token auth that refuses malformed keys before they reach the database (PostgreSQL rejects
    a NUL byte in a query with an error, which must be a 401 here, not a 500)."""

    def authenticate_credentials(self, key: str):
        if not key.isalnum() or len(key) > 64:
            raise AuthenticationFailed("Invalid token.")
        user, token = super().authenticate_credentials(key)
        # A banned or suspended account's tokens stop working at once (docs/moderation.md).
        sanction = sanction_in_force(user_id=user.pk)
        if sanction is not None:
            raise AuthenticationFailed(sanction.describe())
        return user, token
