"""The dashboard's routing page, in the `dashboard` namespace (aiaas/urls_tenant.py)."""

from django.urls import path

from routing.web import views
from routing.web.charts import ROUTING_CHARTS

urlpatterns = [
    path("routing/", views.routing, name="routing"),
    *ROUTING_CHARTS.urls(),
]
