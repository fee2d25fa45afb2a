"""OpenAPI description of the token authentication (both headers), for drf-spectacular."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiTokenAuthentication"
    name = ["ApiTokenHeader", "BearerToken"]

    def get_security_requirement(self, auto_schema):
        # Either header is enough: two alternative requirements, not one that needs both.
        return [{"ApiTokenHeader": []}, {"BearerToken": []}]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-API-TOKEN",
             "description": "An API token (`sbp_...`). Roles: read < backup < admin."},
            {"type": "http", "scheme": "bearer", "description": "The same API token as `Authorization: Bearer`."},
        ]
