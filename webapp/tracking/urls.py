"""The MLflow-compatible tracking API (under /api/2.0/), the native client's (under
/api/fitboard/v1/) and the tokens page."""

from django.urls import path

from webapp.tracking import artifacts, logged_models, mlflow_views, native_views, views

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
    path(M + "experiments/update", mlflow_views.experiment_update,
         name="mlflow-experiment-update"),
    path(M + "experiments/delete", mlflow_views.experiment_delete,
         name="mlflow-experiment-delete"),
    path(M + "experiments/set-experiment-tag", mlflow_views.experiment_set_tag,
         name="mlflow-experiment-set-tag"),
    path(M + "experiments/delete-experiment-tag", mlflow_views.experiment_delete_tag,
         name="mlflow-experiment-delete-tag"),
    path(M + "runs/create", mlflow_views.run_create, name="mlflow-run-create"),
    path(M + "runs/update", mlflow_views.run_update, name="mlflow-run-update"),
    path(M + "runs/get", mlflow_views.run_get, name="mlflow-run-get"),
    path(M + "runs/search", mlflow_views.run_search, name="mlflow-run-search"),
    path(M + "runs/log-batch", mlflow_views.log_batch, name="mlflow-log-batch"),
    path(M + "runs/log-metric", mlflow_views.log_metric, name="mlflow-log-metric"),
    path(M + "runs/log-parameter", mlflow_views.log_param, name="mlflow-log-param"),
    path(M + "runs/set-tag", mlflow_views.set_tag, name="mlflow-set-tag"),
    path(M + "runs/delete-tag", mlflow_views.delete_tag, name="mlflow-delete-tag"),
    path(M + "runs/delete", mlflow_views.run_delete, name="mlflow-run-delete"),
    path(M + "runs/restore", mlflow_views.run_restore, name="mlflow-run-restore"),
    path(M + "runs/log-inputs", mlflow_views.log_inputs, name="mlflow-log-inputs"),
    path(M + "runs/outputs", mlflow_views.log_outputs, name="mlflow-log-outputs"),
    path(M + "runs/log-model", mlflow_views.log_model, name="mlflow-log-model"),
    path(M + "logged-models", logged_models.create, name="mlflow-logged-model-create"),
    path(M + "logged-models/search", logged_models.search_models,
         name="mlflow-logged-model-search"),
    path(M + "logged-models/<str:model_id>", logged_models.logged_model,
         name="mlflow-logged-model"),
    path(M + "logged-models/<str:model_id>/params", logged_models.log_params,
         name="mlflow-logged-model-params"),
    path(M + "logged-models/<str:model_id>/tags", logged_models.set_tags,
         name="mlflow-logged-model-tags"),
    path(M + "logged-models/<str:model_id>/tags/<path:tag_key>", logged_models.delete_tag,
         name="mlflow-logged-model-tag-delete"),
    path(M + "metrics/get-history", mlflow_views.metric_history, name="mlflow-metric-history"),
    path(A, artifacts.artifact_list, name="mlflow-artifact-list"),
    path(A + "/<path:artifact_path>", artifacts.artifact, name="mlflow-artifact"),
    path(N + "runs/create", native_views.run_create, name="fitboard-run-create"),
    path(N + "runs/resume", native_views.run_resume, name="fitboard-run-resume"),
    path(N + "runs/log", native_views.run_log, name="fitboard-run-log"),
    path(N + "runs/heartbeat", native_views.run_heartbeat, name="fitboard-run-heartbeat"),
    path(N + "runs/finish", native_views.run_finish, name="fitboard-run-finish"),
    # Last: any other MLflow call gets MLflow's error, not an HTML page; under /api/3.0/ too
    # (MLflow 3's traces, GenAI data sets and scorers), whose 404 page the client quoted.
    path("api/2.0/<path:unknown>", mlflow_views.unknown_endpoint, name="mlflow-unknown"),
    path("api/3.0/<path:unknown>", mlflow_views.unknown_endpoint, {"api": "3.0"},
         name="mlflow-unknown-3"),
]

urlpatterns = [
    *api_urlpatterns,
    path("settings/tokens/", views.token_list, name="api-tokens"),
    path("settings/tokens/<int:pk>/revoke/", views.token_revoke, name="api-token-revoke"),
    path("experiments/<int:pk>/artifacts/<path:path>", views.artifact_download,
         name="artifact-download"),
]
