from django.urls import path

from webapp.datasets import views

urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/new/", views.dataset_new, name="dataset-new"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset-detail"),
    path("datasets/<int:pk>/labels/", views.dataset_labels, name="dataset-labels"),
    path("datasets/<int:pk>/labels/scan/", views.dataset_labels_scan, name="dataset-labels-scan"),
    path("datasets/<int:pk>/labels/apply/", views.dataset_labels_apply,
         name="dataset-labels-apply"),
    path("datasets/<int:pk>/diff/", views.dataset_diff, name="dataset-diff"),
]
