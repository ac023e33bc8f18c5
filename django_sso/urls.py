"""URLconf: ``path("sso/", include("django_sso.urls"))``."""

from django.urls import path

from django_sso import views

app_name = "django_sso"

urlpatterns = [
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("<slug:slug>/login/", views.LoginView.as_view(), name="login"),
    path("<slug:slug>/callback/", views.CallbackView.as_view(), name="callback"),
]
