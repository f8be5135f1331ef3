from django.apps import AppConfig


class CollabConfig(AppConfig):
    name = "collab"
    label = "collab"
    verbose_name = "Rooms"

    def ready(self) -> None:
        from collab.ratelimits import register_rate_limits

        register_rate_limits()
