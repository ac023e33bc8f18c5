from django.urls import path

from example_project.shop import views

app_name = "shop"
urlpatterns = [path("orders/", views.orders, name="orders")]
