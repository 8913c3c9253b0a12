from django.urls import path, re_path

from webapp.experiments import consumers

websocket_urlpatterns = [
    path("ws/runs/", consumers.RunListConsumer.as_asgi()),
    path("ws/runs/<int:pk>/", consumers.RunConsumer.as_asgi()),
    path("ws/studies/<int:pk>/", consumers.StudyConsumer.as_asgi()),
]

# After the routes above in the router: what none of them serves is refused, not a crash.
not_found = re_path(r"", consumers.NotFoundConsumer.as_asgi())
