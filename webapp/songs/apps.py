from django.apps import AppConfig


class SongsConfig(AppConfig):
    name = "webapp.songs"
    label = "songs"
