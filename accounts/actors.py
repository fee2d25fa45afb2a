"""Who is calling, as recorded on job rows, volume changes and log lines."""

from __future__ import annotations


def actor_of(request) -> str:
    """`token:<name>` for an API token, `user:<name>` for an admin session, else `anonymous`.

    Never contains a secret: only the token's display name.
    """
    token = getattr(request, "auth", None)
    if token is not None and hasattr(token, "name"):
        return f"token:{token.name}"
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.get_username()}"
    return "anonymous"
