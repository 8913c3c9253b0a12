from django.contrib import admin

from webapp.datasets.models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "project", "kind", "size", "created_at")
    readonly_fields = ("folder", "source", "prepared", "info", "report")
