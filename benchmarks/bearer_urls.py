"""The benchmark's views: the same tiny JSON answer behind four kinds of authentication."""

from __future__ import annotations

import jwt
from django.http import HttpRequest, JsonResponse
from django.urls import path
from mozilla_django_oidc.contrib.drf import OIDCAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from benchmarks.bearer_settings import API, OP_ISSUER
from django_sso.contrib.drf import BearerTokenAuthentication, HasScopes
from django_sso.decorators import bearer_required

#: The provider's signing key, loaded once by ``benchmarks.bearer`` before the timed runs.
FLOOR_KEY: list = []


def plain(request: HttpRequest) -> JsonResponse:
    """(d) No authentication at all."""
    return JsonResponse({"sub": None})


def floor(request: HttpRequest) -> JsonResponse:
    """(b) The floor: one ``jwt.decode`` with a key already in memory, nothing else."""
    token = request.META["HTTP_AUTHORIZATION"][len("Bearer ") :]
    claims = jwt.decode(token, FLOOR_KEY[0], algorithms=["RS256"], audience=API, issuer=OP_ISSUER)
    return JsonResponse({"sub": claims["sub"]})


@bearer_required(scopes=["app:manage_orders"])
def django_sso_view(request: HttpRequest) -> JsonResponse:
    """(a) django_sso's bearer authentication, with a scope check."""
    return JsonResponse({"sub": request.access_token.subject})


class DjangoSSODRF(APIView):
    """(a, DRF) django_sso's DRF classes."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [HasScopes]
    required_scopes = ["app:manage_orders"]

    def get(self, request):
        return Response({"sub": request.auth.subject})


class MozillaDRF(APIView):
    """(c) mozilla-django-oidc's DRF ``OIDCAuthentication``: UserInfo at every request."""

    authentication_classes = [OIDCAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"sub": request.user.get_username()})


urlpatterns = [
    path("plain/", plain),
    path("floor/", floor),
    path("sso/", django_sso_view),
    path("sso-drf/", DjangoSSODRF.as_view()),
    path("mozilla-drf/", MozillaDRF.as_view()),
]
