from django.apps import AppConfig


class CollabConfig(AppConfig):
    name = "collab"
    label = "collab"
    verbose_name = "Rooms"

    def ready(self) -> None:
        from collab.feedback import register_feedback_targets

        register_feedback_targets()
