from django.contrib import admin
from django.http import HttpRequest

from webapp.notifications.models import Delivery, EmailSubscription, Notification, Webhook


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["url", "project", "created_at"]
    exclude = ["secret"]  # it signs every payload: never shown again after its creation

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made on the project's page, which checks the URL and makes the secret


@admin.register(EmailSubscription)
class EmailSubscriptionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["user", "project", "events"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["event", "project", "experiment", "created_at"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["webhook", "notification", "attempt", "status_code", "succeeded",
                    "created_at"]
