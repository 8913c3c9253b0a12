from django.urls import path

from webapp.notifications import views

urlpatterns = [
    path("settings/notifications/", views.notification_index, name="notifications"),
    path("projects/<int:pk>/notifications/", views.project_notifications,
         name="project-notifications"),
    path("webhooks/<int:pk>/delete/", views.webhook_delete, name="webhook-delete"),
]
