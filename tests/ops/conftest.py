"""Fixtures for the Ansible collection tests: a real platform API (pytest-django's
`live_server`, a threaded HTTP server over the test database) with role tokens, clients of
the collection pointed at it, and a way to run a module's logic in-process."""

from __future__ import annotations

import pytest

from tests.ops.collection import import_collection_module

# A broker database of our own (Redis DB 6, the ops tag's), so worker tests do not consume
# other suites' messages.
OPS_BROKER_URL = "redis://127.0.0.1:6379/6"


class ModuleRun:
    """What a module's handler needs from AnsibleModule: validated params and check mode.

    The parameters go through Ansible's own ArgumentSpecValidator, so defaults, types and
    choices are applied exactly as `ansible-playbook` would.
    """

    def __init__(self, spec: dict, params: dict, check_mode: bool):
        from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

        validated = ArgumentSpecValidator(spec).validate(params)
        if validated.error_messages:
            raise ValueError("; ".join(validated.error_messages))
        self.params = validated.validated_parameters
        self.check_mode = check_mode


@pytest.fixture
def platform_url(live_server) -> str:
    return live_server.url


@pytest.fixture
def platform_client(platform_url, tokens):
    """`platform_client(role)`: the collection's PlatformClient with that role's token."""
    client_module = import_collection_module("module_utils.platform_client")

    def for_role(role: str = "admin", **options):
        options.setdefault("retries", 0)
        return client_module.PlatformClient(platform_url, tokens[role], **options)

    return for_role


@pytest.fixture
def run_module_logic(platform_url, tokens, platform_client):
    """`run_module_logic("volume", {...}, role="admin", check_mode=False)` → the module's result
    dict, computed by the module's own handler against the live API."""

    def run(name: str, params: dict, *, role: str = "admin", check_mode: bool = False) -> dict:
        module = import_collection_module(f"modules.{name}")
        full = {"api_url": platform_url, "api_token": tokens[role], **params}
        return module.handle(ModuleRun(module.argument_spec(), full, check_mode), platform_client(role))

    return run
