from django.apps import AppConfig


class SafetyConfig(AppConfig):
    """The app exists for one table: each user's daily generation usage (quotas.py)."""

    name = "webapp.safety"
    label = "safety"
    default_auto_field = "django.db.models.BigAutoField"
