"""The moderation pages, under /moderation/ (webapp/urls.py)."""

from django.urls import path

from webapp.moderation import views

app_name = "moderation"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("<slug:target_type>/<str:target_id>/", views.target, name="target"),
]
