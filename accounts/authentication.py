"""DRF authentication by API token: `X-API-TOKEN: <token>` or `Authorization: Bearer <token>`.

Contract:
* no token header -> `None` (the next authenticator, Django's session for the browsable API,
  may still authenticate; otherwise DRF answers 401 `not_authenticated`);
* a token that is unknown -> 401 `authentication_failed`; expired -> 401 `token_expired`;
  revoked -> 401 `token_revoked`;
* a valid token -> `(TokenPrincipal, ApiToken)`, so `request.auth.role` is the role that
  `accounts.permissions` checks and `request.user.username` is the token's name;
* every refused token counts as a failed authentication of the client
  (`accounts.throttle`); past the limit the answer is 429 `too_many_failures` with
  `Retry-After` instead of 401. A valid token is never counted nor throttled.

The token value is never logged or echoed; only the token's name appears in audit events.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from accounts.bootstrap import sync_bootstrap_tokens_once
from accounts.models import ApiToken, TokenState
from accounts.throttle import record_failure, throttled_message
from accounts.tokens import find_token

TOKEN_HEADER = "HTTP_X_API_TOKEN"
AUTHORIZATION_HEADER = "HTTP_AUTHORIZATION"


class TokenAuthenticationFailed(exceptions.AuthenticationFailed):
    """AuthenticationFailed carrying the stable error code the exception handler renders."""

    platform_code = "authentication_failed"

    def __init__(self, detail=None):
        super().__init__(detail, code=self.platform_code)


class InvalidToken(TokenAuthenticationFailed):
    default_detail = "The API token is not valid."
    platform_code = "authentication_failed"


class ExpiredToken(TokenAuthenticationFailed):
    default_detail = "The API token has expired."
    platform_code = "token_expired"


class RevokedToken(TokenAuthenticationFailed):
    default_detail = "The API token has been revoked."
    platform_code = "token_revoked"


class TooManyFailures(exceptions.Throttled):
    """A client over its failed-authentication limit (429 with Retry-After)."""

    platform_code = "too_many_failures"

    def __init__(self, wait: int):
        # Not Throttled.__init__: it would append its own "Expected available in..." text.
        exceptions.APIException.__init__(self, throttled_message(wait))
        self.wait = wait


def refuse(request, error: TokenAuthenticationFailed):
    """Raise `error`, or `TooManyFailures` when this failure puts the client over its limit."""
    wait = record_failure(request)
    if wait is not None:
        raise TooManyFailures(wait)
    raise error


class TokenPrincipal:
    """The `request.user` of a token request: enough of Django's user interface for DRF,
    templates and the audit log, without a database user per token."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, token: ApiToken):
        self.token = token
        self.username = token.name
        self.pk = None
        self.id = None

    def get_username(self) -> str:
        return self.username

    def has_perm(self, *args, **kwargs) -> bool:  # Django permissions are for admin users only
        return False

    def __str__(self) -> str:
        return f"token:{self.username}"


def token_from_request(request) -> str | None:
    """The presented token, or None when the request carries none.

    `Authorization` with another scheme (Basic, Django session) is not ours: None.
    """
    meta = request.META
    value = meta.get(TOKEN_HEADER)
    if value:
        return value.strip()
    authorization = meta.get(AUTHORIZATION_HEADER, "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    return None


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        plaintext = token_from_request(request)
        if plaintext is None:
            return None
        if not plaintext:
            refuse(request, InvalidToken())
        sync_bootstrap_tokens_once()
        token = find_token(plaintext)
        if token is None:
            refuse(request, InvalidToken())
        # Let the audit log name the token even when it is refused (never the secret).
        request._request.audit_token_name = token.name
        state = token.state()
        if state == TokenState.REVOKED:
            refuse(request, RevokedToken())
        if state == TokenState.EXPIRED:
            refuse(request, ExpiredToken())
        token.record_use()
        return TokenPrincipal(token), token

    def authenticate_header(self, request):
        # Its presence makes DRF answer 401 (not 403) when authentication is missing or fails.
        return 'Bearer realm="api"'
