"""Each library at its own prefix; ``/signed-in/`` is where all three send a successful sign-in."""

from django.http import HttpResponse
from django.urls import include, path

urlpatterns = [
    path("sso/", include("django_sso.urls")),
    path("allauth/", include("allauth.urls")),
    path("mozilla/", include("mozilla_django_oidc.urls")),
    path("signed-in/", lambda request: HttpResponse("signed in")),
]
