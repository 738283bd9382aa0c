from django.apps import AppConfig


class RequestLogsConfig(AppConfig):
    name = "request_logs"
