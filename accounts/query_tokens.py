"""Refuse API tokens in URL query strings.

A URL is written to access logs, proxy logs, browser history and `Referer` headers; a token
in it leaks to all of them. So a request whose query string carries a parameter named like
a credential (`token`, `api_token`, `access_token`, `api_key`, ...; the list is
`storage_platform.logging.CREDENTIAL_QUERY_PARAMETERS`) or a value shaped like a platform
token (`sbp_` + 40 or more characters) is answered 400 `token_in_query_string`, on every
path, before any view runs, and the token is not looked up. The log filter (`storage_platform.logging`) masks such values in the
access log line that the server writes anyway.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from storage_platform.errors import error_response
from storage_platform.logging import CREDENTIAL_QUERY_PARAMETERS

# A generated token is `sbp_` + 43 characters; file names that merely start with `sbp_` pass.
_TOKEN_VALUE = re.compile(r"sbp_[A-Za-z0-9_\-]{40,}")


def query_string_carries_token(query_string: str) -> bool:
    if not query_string:
        return False
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if name.strip().lower() in CREDENTIAL_QUERY_PARAMETERS or _TOKEN_VALUE.search(value):
            return True
    # parse_qsl drops malformed pairs; a token shape anywhere in the raw text still counts.
    return bool(_TOKEN_VALUE.search(query_string))


class RefuseQueryStringTokensMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if query_string_carries_token(request.META.get("QUERY_STRING", "")):
            return error_response(
                "token_in_query_string",
                "API tokens are not accepted in the URL query string (URLs end up in logs); "
                "send the X-API-TOKEN or Authorization: Bearer header instead.",
                400,
            )
        return self.get_response(request)
