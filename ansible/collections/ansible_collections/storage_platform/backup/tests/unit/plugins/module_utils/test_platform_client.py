# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client's configuration errors name the same fallback variables as the argument spec."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import (
    ENVIRONMENT_FALLBACKS,
    PlatformApiError,
    PlatformClient,
    job_id_of,
)
from ansible_collections.storage_platform.backup.plugins.module_utils.platform_module import platform_argument_spec


@pytest.mark.parametrize("url, token, option", [("", "token", "api_url"), ("https://backup.example.com", "", "api_token")])
def test_a_missing_connection_option_names_its_environment_variable(url, token, option):
    with pytest.raises(PlatformApiError) as caught:
        PlatformClient(url, token)
    assert caught.value.message == "%s is required: set the %s option or the %s environment variable" % (
        option, option, ENVIRONMENT_FALLBACKS[option])
    assert caught.value.code == "configuration"


def test_the_argument_spec_falls_back_to_the_same_variables():
    spec = platform_argument_spec()
    for option, variable in ENVIRONMENT_FALLBACKS.items():
        assert spec[option]["fallback"][1] == [variable]
    assert spec["api_token"]["no_log"] is True


def test_job_ids_come_from_nested_jobs_bare_ids_and_job_answers():
    assert job_id_of({"job": {"id": "j-1"}}) == "j-1"
    assert job_id_of({"job": "j-2"}) == "j-2"
    assert job_id_of({"kind": "verify", "id": "j-3"}) == "j-3"
    assert job_id_of({"id": "backup-without-job"}) is None
    assert job_id_of(None) is None
