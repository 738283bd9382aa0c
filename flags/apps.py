from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "flags"
    verbose_name = "Feature flags"

    def ready(self) -> None:
        from flags import signals  # noqa: F401 - connects the receivers
