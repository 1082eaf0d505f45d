from django.urls import path

from .views import intake, reports

urlpatterns = [
    path("", reports.home, name="home"),
    path("upload/", intake.upload, name="upload"),
    path("ingestion/", intake.ingestion, name="ingestion"),
    path("ingestion/<int:intake_id>/replay/", intake.replay, name="replay"),
    path("api/v1/intake", intake.api_intake, name="api-intake"),
]
