from django.apps import AppConfig


class BenchApiConfig(AppConfig):
    name = "bench_api"
    default_auto_field = "django.db.models.BigAutoField"
