"""What a downstream service learns about the caller from a tokensmith access token."""

from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response


def _caller(request):
    user = request.user
    return {
        "user_class": type(user).__name__,
        "id": user.id,
        "username": user.username,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        # Claims TokenUser has no property for are read from the token itself.
        "groups": request.auth.get("groups"),
        "claims": dict(request.auth.payload),
    }


@api_view(["GET"])
@permission_classes([IsAuthenticated])
def whoami(request):
    return Response(_caller(request))


@api_view(["GET"])
@permission_classes([IsAdminUser])
def admin_only(request):
    return Response(_caller(request))
