"""URLs for the resource-server tests: plain views, decorated views and DRF views."""

from __future__ import annotations

from django.contrib.auth.context_processors import PermWrapper
from django.http import HttpRequest, JsonResponse
from django.template import Context, Template
from django.urls import include, path
from rest_framework.permissions import DjangoModelPermissions, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from django_sso.contrib.drf import BearerTokenAuthentication, HasScopes
from django_sso.decorators import bearer_required
from example_project.shop.models import Order


def whoami(request: HttpRequest) -> JsonResponse:
    """No decoration: whatever the middleware made of the request."""
    user = request.user
    return JsonResponse(
        {
            "authenticated": user.is_authenticated,
            "username": user.get_username() if user.is_authenticated else None,
            "manage_orders": user.has_perm("shop.manage_orders"),
        }
    )


def perms_template(request: HttpRequest) -> JsonResponse:
    template = Template("{% if perms.shop.manage_orders %}yes{% else %}no{% endif %}")
    text = template.render(Context({"perms": PermWrapper(request.user)}))
    return JsonResponse({"rendered": text})


@bearer_required
def any_token(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"scopes": sorted(request.access_token.scopes)})


@bearer_required(scopes=["app:manage_orders"])
async def async_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"async": True, "username": request.user.get_username()})


@bearer_required(scopes=["app:read", "app:write"])
def two_scopes(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@bearer_required(permissions=["shop.manage_orders", "shop.manage_users"])
def two_permissions(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


class DRFWhoAmI(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response(
            {
                "username": request.user.get_username(),
                "service": getattr(request.user, "is_service", False),
                "scopes": sorted(request.auth.scopes),
            }
        )


class DRFScoped(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [HasScopes]
    required_scopes = ["app:manage_orders"]

    def get(self, request):
        return Response({"ok": True})


class DRFPermissions(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [HasScopes]
    required_permissions = ["shop.manage_orders"]

    def get(self, request):
        return Response({"ok": True})


class DRFModelPermissions(APIView):
    """DRF's own DjangoModelPermissions, on the user's (token-overlaid) has_perms."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [DjangoModelPermissions]
    queryset = Order.objects.none()

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"created": True}, status=201)


urlpatterns = [
    path("plain/whoami/", whoami),
    path("plain/perms/", perms_template),
    path("deco/any/", any_token),
    path("deco/scopes/", two_scopes),
    path("deco/async/", async_view),
    path("deco/permissions/", two_permissions),
    path("drf/whoami/", DRFWhoAmI.as_view()),
    path("drf/scoped/", DRFScoped.as_view()),
    path("drf/permissions/", DRFPermissions.as_view()),
    path("drf/orders/", DRFModelPermissions.as_view()),
    path("", include("example_project.urls")),
]
