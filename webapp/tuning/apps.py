from django.apps import AppConfig


class TuningConfig(AppConfig):
    name = "webapp.tuning"
    label = "tuning"
    verbose_name = "Tuning"
