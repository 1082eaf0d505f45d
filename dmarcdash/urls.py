from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from reports.views.account import login

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", login, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("reports.urls")),
]
