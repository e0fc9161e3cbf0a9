from django.db import models


class Report(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    submitted_by = models.CharField(max_length=255, help_text="client_id of the API client that posted it")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return self.title
