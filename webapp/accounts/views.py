from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from webapp.accounts.services import user_signup
from webapp.errors import ServiceError
from webapp.moderation.selectors import sanction_for_credentials, sanction_of_session
from webapp.moderation.services import session_mark_sanctioned
from webapp.moderation.signup import login_address_record
from webapp.ratelimit import RateLimited, client_key, ratelimit_enforce
from webapp.songs.selectors import song_list_for_owner, song_list_public_of


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


class LoginForm(AuthenticationForm):
    """Django's login form, which says why a banned or suspended account cannot log in (to
    whoever knows its password; to anyone else it is a wrong password, as before)."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            sanction = sanction_for_credentials(
                username=self.cleaned_data.get("username") or "",
                password=self.cleaned_data.get("password") or "",
            )
            if sanction is not None:
                if self.request is not None:  # this browser is the sanctioned person's
                    session_mark_sanctioned(session=self.request.session, user_id=sanction.user_id)
                raise ValidationError(sanction.describe(), code="sanctioned") from None
            raise


class LoginView(auth_views.LoginView):
    authentication_form = LoginForm

    def form_valid(self, form):
        response = super().form_valid(form)
        login_address_record(user=form.get_user(), address=self.request.META.get("REMOTE_ADDR"))
        return response


class LogoutView(auth_views.LogoutView):
    """Django's logout, except that a sanctioned account's session (it reads as signed out)
    stays marked as that person's in the fresh session that logging out makes."""

    def post(self, request, *args, **kwargs):
        sanction = sanction_of_session(request.session)
        response = super().post(request, *args, **kwargs)
        if sanction is not None:
            session_mark_sanctioned(session=request.session, user_id=sanction.user_id)
        return response


@require_http_methods(["GET", "POST"])
def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            ratelimit_enforce(domain="signup", key=client_key(request))
            user = user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data.get("email", ""),
                password=form.cleaned_data["password1"],
                address=request.META.get("REMOTE_ADDR"),
            )
        except RateLimited as exc:
            form.add_error(None, str(exc))
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
            return redirect("profile", username=user.username)
    status = 400 if request.method == "POST" else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


def profile(request, username):
    person = get_object_or_404(get_user_model(), username=username, is_active=True)
    is_me = request.user.is_authenticated and request.user.pk == person.pk
    songs = song_list_for_owner(owner=person) if is_me else song_list_public_of(owner=person)
    return render(
        request, "accounts/profile.html", {"person": person, "songs": songs[:100], "is_me": is_me}
    )
