from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        from tenants import checks, openapi  # noqa: F401 - register the checks and the OpenAPI auth scheme
