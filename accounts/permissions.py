"""DRF permission: which role a request needs, declared on the view.

A view states its needs with class attributes; nothing else in a view checks roles:

* `read_role` (default `read`) for GET/HEAD/OPTIONS,
* `write_role` (default `admin`) for every other method,
* `action_roles = {"backup": "backup", ...}` to override per ViewSet action.

No token (or a bad one) gives 401; a valid token with too small a role gives 403. A token
whose scope forbids the request's verb, or a volume-limited token on an endpoint that reaches
past its volumes, gets 403 too (`accounts.scopes.check_scope`, declared the same way).
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.roles import Role, role_allows
from accounts.scopes import check_scope


def request_role(request) -> str | None:
    """The role of the caller: the API token's role, or for a Django admin session
    (browsable API) `admin` for superusers and `read` for other staff."""
    token = getattr(request, "auth", None)
    if token is not None and hasattr(token, "role"):
        return token.role
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False) and user.is_active:
        if user.is_superuser:
            return Role.ADMIN
        if user.is_staff:
            return Role.READ
    return None


def required_role(request, view) -> str:
    action = getattr(view, "action", None)
    action_roles = getattr(view, "action_roles", {})
    if action in action_roles:
        return action_roles[action]
    if request.method in SAFE_METHODS:
        return getattr(view, "read_role", Role.READ)
    return getattr(view, "write_role", Role.ADMIN)


class RolePermission(BasePermission):
    message = "Your token's role does not allow this."

    def has_permission(self, request, view) -> bool:
        if not role_allows(request_role(request), required_role(request, view)):
            return False
        check_scope(request, view)  # raises its own 403, naming the scope's refusal
        return True
