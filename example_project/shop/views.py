"""Shop pages guarded by permissions that sign-in can grant."""

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, JsonResponse


@permission_required("shop.manage_orders", raise_exception=True)
def orders(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"orders": []})
