from django.urls import path
from django.views.generic import RedirectView

from webapp.experiments import compression_views, group_views, model_views, tuning_views, views

urlpatterns = [
    path("", views.experiment_list, name="experiment-list"),
    # Every run's address starts /experiments/: the folder itself, typed or trimmed from one,
    # was a 404.
    path("experiments/", RedirectView.as_view(pattern_name="experiment-list", query_string=True),
         name="experiment-list-folder"),
    path("queue/", views.queue_page, name="queue"),
    path("experiments/new/", views.experiment_new, name="experiment-new"),
    path("experiments/<int:pk>/", views.experiment_detail, name="experiment-detail"),
    path("experiments/<int:pk>/cancel/", views.experiment_cancel, name="experiment-cancel"),
    path("experiments/<int:pk>/delete/", views.experiment_delete, name="experiment-delete"),
    path("datasets/<int:pk>/delete/", views.dataset_delete, name="dataset-delete"),
    path("experiments/<int:pk>/annotate/", views.experiment_annotate,
         name="experiment-annotate"),
    path("compare/", views.compare_page, name="compare"),
    path("compare/data/", views.compare_data, name="compare-data"),
    path("compare/export.<str:fmt>", views.compare_export, name="compare-export"),
    path("experiments/<int:pk>/metrics/", views.experiment_metrics, name="experiment-metrics"),
    path("experiments/<int:pk>/diagnostics/", views.experiment_diagnostics,
         name="experiment-diagnostics"),
    path("experiments/<int:pk>/remedies/<slug:key>/", views.remedy_apply, name="remedy-apply"),
    path("experiments/<int:pk>/compress/", compression_views.compress_new, name="compress-new"),
    path(
        "experiments/<int:pk>/checkpoint/<slug:tag>/",
        views.checkpoint_download,
        name="checkpoint-download",
    ),
    path("experiments/<int:pk>/onnx/", model_views.checkpoint_onnx, name="checkpoint-onnx"),
    path("experiments/<int:pk>/try/", model_views.try_model, name="try-model"),
    path("experiments/<int:pk>/tune/", tuning_views.study_new, name="study-new"),
    path("experiments/<int:pk>/repeat/", group_views.run_repeat, name="run-repeat"),
    path("experiments/<int:pk>/remedies/<slug:key>/verify/", group_views.remedy_verify,
         name="remedy-verify"),
    path("groups/<int:pk>/", group_views.group_detail, name="group-detail"),
    path("groups/compare/", group_views.group_compare, name="group-compare"),
    path("groups/compare/export.json", group_views.group_compare_export,
         name="group-compare-export"),
    path("studies/<int:pk>/", tuning_views.study_detail, name="study-detail"),
    path("studies/<int:pk>/data/", tuning_views.study_data, name="study-data"),
    path("studies/<int:pk>/promote/", tuning_views.study_promote, name="study-promote"),
    path("studies/<int:pk>/check/", tuning_views.study_check, name="study-check"),
]
