from django.urls import path

from webapp.projects import views

urlpatterns = [
    path("projects/", views.project_list, name="project-list"),
    path("projects/<int:pk>/", views.project_detail, name="project-detail"),
    path("projects/<int:pk>/invitation/", views.project_invitation, name="project-invitation"),
    path("projects/<int:pk>/members/<int:user_id>/remove/", views.project_member_remove,
         name="project-member-remove"),
    path("projects/<int:pk>/members/<int:user_id>/role/", views.project_member_role,
         name="project-member-role"),
]
