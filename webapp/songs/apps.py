from django.apps import AppConfig


class SongsConfig(AppConfig):
    name = "webapp.songs"
    label = "songs"

    def ready(self) -> None:
        from webapp.songs import signals  # noqa: F401
