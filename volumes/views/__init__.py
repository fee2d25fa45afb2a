"""HTTP views of the volumes app, one module per resource: `volumes` and `files`."""


def actor_of(request) -> str:
    """Who is calling, for log lines: the token's name or the user name (never a secret)."""
    token = getattr(request, "auth", None)
    if token is not None and hasattr(token, "name"):
        return f"token:{token.name}"
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.get_username()}"
    return "anonymous"
