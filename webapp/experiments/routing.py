from django.urls import path

from webapp.experiments import consumers

websocket_urlpatterns = [
    path("ws/runs/", consumers.RunListConsumer.as_asgi()),
    path("ws/runs/<int:pk>/", consumers.RunConsumer.as_asgi()),
]
