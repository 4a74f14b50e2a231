from django.urls import path

from . import views

urlpatterns = [
    path("whoami", views.whoami),
    path("admin-only", views.admin_only),
]
