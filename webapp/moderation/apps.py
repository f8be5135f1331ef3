from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "webapp.moderation"
    label = "moderation"
    verbose_name = "Moderation"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from webapp.moderation.permissions import moderators_group_ensure

        # Runs after auth has created this app's permissions (auth's receiver connected first).
        post_migrate.connect(moderators_group_ensure, sender=self)
