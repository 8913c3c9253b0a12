"""The MLflow-compatible tracking API (under /api/2.0/), the native client's (under
/api/fitboard/v1/) and the tokens page."""

from django.urls import path

from webapp.tracking import artifacts, mlflow_views, native_views, views

M = "api/2.0/mlflow/"
A = "api/2.0/mlflow-artifacts/artifacts"
N = "api/fitboard/v1/"

api_urlpatterns = [
    path(M + "experiments/get-by-name", mlflow_views.experiment_get_by_name,
         name="mlflow-experiment-get-by-name"),
    path(M + "experiments/get", mlflow_views.experiment_get, name="mlflow-experiment-get"),
    path(M + "experiments/create", mlflow_views.experiment_create,
         name="mlflow-experiment-create"),
    path(M + "experiments/search", mlflow_views.experiment_search,
         name="mlflow-experiment-search"),
    path(M + "runs/create", mlflow_views.run_create, name="mlflow-run-create"),
    path(M + "runs/update", mlflow_views.run_update, name="mlflow-run-update"),
    path(M + "runs/get", mlflow_views.run_get, name="mlflow-run-get"),
    path(M + "runs/search", mlflow_views.run_search, name="mlflow-run-search"),
    path(M + "runs/log-batch", mlflow_views.log_batch, name="mlflow-log-batch"),
    path(M + "runs/log-metric", mlflow_views.log_metric, name="mlflow-log-metric"),
    path(M + "runs/log-parameter", mlflow_views.log_param, name="mlflow-log-param"),
    path(M + "runs/set-tag", mlflow_views.set_tag, name="mlflow-set-tag"),
    path(M + "logged-models/search", mlflow_views.logged_model_search,
         name="mlflow-logged-model-search"),
    path(M + "metrics/get-history", mlflow_views.metric_history, name="mlflow-metric-history"),
    path(A, artifacts.artifact_list, name="mlflow-artifact-list"),
    path(A + "/<path:artifact_path>", artifacts.artifact, name="mlflow-artifact"),
    path(N + "runs/create", native_views.run_create, name="fitboard-run-create"),
    path(N + "runs/log", native_views.run_log, name="fitboard-run-log"),
    path(N + "runs/heartbeat", native_views.run_heartbeat, name="fitboard-run-heartbeat"),
    path(N + "runs/finish", native_views.run_finish, name="fitboard-run-finish"),
]

urlpatterns = [
    *api_urlpatterns,
    path("settings/tokens/", views.token_list, name="api-tokens"),
    path("settings/tokens/<int:pk>/revoke/", views.token_revoke, name="api-token-revoke"),
    path("experiments/<int:pk>/artifacts/<path:path>", views.artifact_download,
         name="artifact-download"),
]
