from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from collab import pages as room_pages
from collab import views as room_views
from webapp import converters  # noqa: F401  (registers share_token and username)
from webapp.accounts import api as accounts_api
from webapp.accounts import views as accounts_views
from webapp.feedback.api import FeedbackApi
from webapp.health import readyz
from webapp.metrics import metrics_view
from webapp.moderation.api import ReportApi
from webapp.songs import api as songs_api
from webapp.songs import views as songs_views


@csrf_exempt
def api_not_found(request):
    """Unknown API paths answer in JSON: an API client never has to parse an HTML error page."""
    return JsonResponse(
        {"error": {"code": "not_found", "message": "No such endpoint."}}, status=404
    )


api_v1 = [
    path("auth/signup/", accounts_api.SignupApi.as_view(), name="api-signup"),
    path("auth/token/", accounts_api.TokenApi.as_view(), name="api-token"),
    path("me/", accounts_api.MeApi.as_view(), name="api-me"),
    path("songs/", songs_api.SongListCreateApi.as_view(), name="api-songs"),
    path("songs/<uuid:song_id>/", songs_api.SongDetailApi.as_view(), name="api-song-detail"),
    path(
        "songs/<uuid:song_id>/download/",
        songs_api.SongDownloadApi.as_view(),
        name="api-song-download",
    ),
    path(
        "songs/<uuid:song_id>/share-token/",
        songs_api.SongShareTokenApi.as_view(),
        name="api-song-share-token",
    ),
    path(
        "shared/<share_token:share_token>/",
        songs_api.SharedSongApi.as_view(),
        name="api-shared-song",
    ),
    path("feed/", songs_api.FeedApi.as_view(), name="api-feed"),
    path("feedback/", FeedbackApi.as_view(), name="api-feedback"),
    path("reports/", ReportApi.as_view(), name="api-reports"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    re_path(r"^.*$", api_not_found),
]

urlpatterns = [
    path("", songs_views.home, name="home"),
    path("songs/new/", songs_views.song_new, name="song-new"),
    path("songs/<uuid:song_id>/", songs_views.song_page, name="song-page"),
    path("s/<share_token:share_token>/", songs_views.song_share, name="song-share"),
    path("library/", songs_views.library, name="library"),
    path("u/<username:username>/", accounts_views.profile, name="profile"),
    # Room pages (collab/pages.py); the room's behaviour is the front end's (frontend/).
    path("rooms/", room_pages.room_list, name="room-list"),
    path("rooms/new/", room_pages.room_new, name="room-new"),
    path("rooms/<uuid:room_id>/", room_pages.room_page, name="room-page"),
    path("rooms/<uuid:room_id>/overlay/", room_pages.room_overlay, name="room-overlay"),
    # A room's music, chunk by chunk, over HTTP (never the websocket): collab/views.py.
    path(
        "rooms/<uuid:room_id>/chunks/<int:sequence>.ogg",
        room_views.chunk_audio,
        name="room-chunk-audio",
    ),
    path(
        "rooms/<uuid:room_id>/auditions/<int:proposal_id>.ogg",
        room_views.audition_audio,
        name="room-audition-audio",
    ),
    path("accounts/signup/", accounts_views.signup, name="signup"),
    # Django's login, saying why a banned or suspended account cannot log in.
    path("accounts/login/", accounts_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", accounts_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("moderation/", include("webapp.moderation.urls")),  # reports queue, actions
    path("api/v1/", include(api_v1)),
    path("healthz", lambda request: JsonResponse({"ok": True}), name="healthz"),
    path("readyz", readyz, name="readyz"),  # database and cache (webapp/health.py)
    path("metrics", metrics_view, name="metrics"),  # Prometheus (webapp/metrics.py)
]


__all__ = ["auth_views", "urlpatterns"]
