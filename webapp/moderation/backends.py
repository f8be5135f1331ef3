"""Authentication that refuses sanctioned accounts (banned, or suspended until a time).

Django's ModelBackend asks `user_can_authenticate` both when someone logs in and when a session
is turned back into its user on each request (and on each websocket connect, through Channels'
auth middleware). Refusing there is what makes a sanction effective everywhere at once: the
login fails, and an existing session reads as signed out. API tokens are checked in
webapp.api.authentication. Open websockets are closed by the sanction itself
(webapp.moderation.services.user_ban).
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from webapp.moderation.selectors import sanction_in_force


class SanctionAwareBackend(ModelBackend):
    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and sanction_in_force(user_id=user.pk) is None
