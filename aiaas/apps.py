from django.apps import AppConfig


class AiaasConfig(AppConfig):
    """The project package as an app: for its system checks (aiaas/checks.py)."""

    name = "aiaas"
    verbose_name = "aiaas platform"

    def ready(self) -> None:
        from aiaas import checks  # noqa: F401 - registers them
