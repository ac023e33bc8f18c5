"""Example project URLs."""

from django.contrib import admin
from django.urls import include, path

from example_project import views

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("whoami/", views.whoami, name="whoami"),
    path("api/whoami/", views.api_whoami, name="api-whoami"),
    path("api/orders/", views.api_orders, name="api-orders"),
    path("admin/", admin.site.urls),
    path("sso/", include("django_sso.urls")),
    path("shop/", include("example_project.shop.urls")),
]
