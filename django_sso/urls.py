"""URLconf: ``path("sso/", include("django_sso.urls"))``."""

from django.urls import path

from django_sso import logout, views

app_name = "django_sso"

urlpatterns = [
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("logged-out/", logout.LoggedOutView.as_view(), name="logged_out"),
    path("accounts/", views.ConnectedAccountsView.as_view(), name="accounts"),
    path("<slug:slug>/login/", views.LoginView.as_view(), name="login"),
    path("<slug:slug>/callback/", views.CallbackView.as_view(), name="callback"),
    path(
        "<slug:slug>/backchannel-logout/",
        logout.BackChannelLogoutView.as_view(),
        name="backchannel_logout",
    ),
    path(
        "<slug:slug>/frontchannel-logout/",
        logout.FrontChannelLogoutView.as_view(),
        name="frontchannel_logout",
    ),
]
