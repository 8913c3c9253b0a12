"""/api/v1/: the REST API, its OpenAPI schema and its docs page. Every view authenticates
itself (a token or the session, ``webapp.rest.auth``), so none goes through the login
redirect."""

from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from webapp.rest import (
    label_views,
    model_views,
    more_views,
    notification_views,
    project_views,
    run_views,
    views,
)
from webapp.rest.parsers import refuse_unstorable_url


def api(view: Any) -> Callable[..., Any]:
    return login_not_required(refuse_unstorable_url(view.as_view()))


urlpatterns = [
    path("projects/", api(project_views.Projects), name="rest-projects"),
    path("projects/<int:pk>/members/", api(project_views.ProjectMembers),
         name="rest-project-members"),
    path("projects/<int:pk>/members/<int:user_id>/", api(project_views.ProjectMember),
         name="rest-project-member"),
    path("projects/<int:pk>/email/", api(notification_views.ProjectEmail),
         name="rest-project-email"),
    path("projects/<int:pk>/webhooks/", api(notification_views.ProjectWebhooks),
         name="rest-project-webhooks"),
    path("projects/<int:pk>/webhooks/<int:hook>/", api(notification_views.ProjectWebhook),
         name="rest-project-webhook"),
    path("invitations/", api(project_views.Invitations), name="rest-invitations"),
    path("invitations/<int:pk>/", api(project_views.InvitationAnswer),
         name="rest-invitation"),
    path("queue/", api(project_views.Queue), name="rest-queue"),
    path("runs/", api(views.RunList), name="rest-runs"),
    path("runs/<int:pk>/", api(views.RunDetail), name="rest-run"),
    path("runs/<int:pk>/metrics/", api(views.RunMetrics), name="rest-run-metrics"),
    path("runs/<int:pk>/cancel/", api(views.RunCancel), name="rest-run-cancel"),
    path("runs/<int:pk>/studies/", api(views.RunStudy), name="rest-run-study"),
    path("runs/<int:pk>/compressions/", api(views.RunCompression),
         name="rest-run-compression"),
    path("runs/<int:pk>/remedies/", api(run_views.RunRemedies), name="rest-run-remedies"),
    path("runs/<int:pk>/remedies/<slug:key>/", api(run_views.RunRemedyApply),
         name="rest-run-remedy-apply"),
    path("runs/<int:pk>/remedies/<slug:key>/verify/", api(run_views.RunRemedyVerify),
         name="rest-run-remedy-verify"),
    path("runs/<int:pk>/diagnostics/", api(run_views.RunDiagnostics),
         name="rest-run-diagnostics"),
    path("runs/<int:pk>/annotations/", api(run_views.RunAnnotations),
         name="rest-run-annotations"),
    path("runs/<int:pk>/checkpoints/<slug:tag>/", api(run_views.RunCheckpoint),
         name="rest-run-checkpoint"),
    path("runs/<int:pk>/artifacts/", api(run_views.RunArtifacts), name="rest-run-artifacts"),
    path("runs/<int:pk>/artifacts/<path:path>", api(run_views.RunArtifact),
         name="rest-run-artifact"),
    path("runs/<int:pk>/repeats/", api(run_views.RunRepeat), name="rest-run-repeat"),
    path("runs/<int:pk>/predictions/", api(model_views.RunPredictions),
         name="rest-run-predictions"),
    path("runs/<int:pk>/onnx/", api(model_views.RunOnnx), name="rest-run-onnx"),
    path("groups/", api(more_views.GroupList), name="rest-groups"),
    path("groups/<int:pk>/", api(more_views.GroupDetail), name="rest-group"),
    path("groups/compare/", api(more_views.GroupCompare), name="rest-group-compare"),
    path("studies/<int:pk>/", api(more_views.StudyDetail), name="rest-study"),
    path("studies/<int:pk>/promote/", api(more_views.StudyPromote), name="rest-study-promote"),
    path("studies/<int:pk>/checks/", api(more_views.StudyChecks), name="rest-study-checks"),
    path("compare/", api(more_views.Compare), name="rest-compare"),
    path("datasets/", api(more_views.DatasetList), name="rest-datasets"),
    path("datasets/<int:pk>/", api(more_views.DatasetDetail), name="rest-dataset"),
    path("datasets/<int:pk>/label-scans/", api(label_views.LabelScans),
         name="rest-dataset-label-scans"),
    path("datasets/<int:pk>/label-scans/<int:scan>/", api(label_views.LabelScanDetail),
         name="rest-dataset-label-scan"),
    path("datasets/<int:pk>/label-scans/<int:scan>/previews/",
         api(label_views.LabelScanPreviews), name="rest-dataset-label-scan-previews"),
    path("datasets/<int:pk>/versions/", api(label_views.DatasetVersions),
         name="rest-dataset-versions"),
    path("datasets/<int:pk>/diff/", api(label_views.DatasetDiff), name="rest-dataset-diff"),
    path("schema/", api(SpectacularAPIView), name="rest-schema"),
    # Swagger UI from the sidecar's static files, its set-up script served as a file of its own
    # (?script): the pages' Content-Security-Policy allows no inline script.
    path("docs/", login_not_required(refuse_unstorable_url(
        SpectacularSwaggerSplitView.as_view(url_name="rest-schema"))),
         name="rest-docs"),
]
