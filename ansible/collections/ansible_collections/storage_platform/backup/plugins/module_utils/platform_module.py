# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The argument spec every module shares, and the glue from AnsibleModule to the client.

The options here are documented once, in the ``storage_platform.backup.platform`` doc
fragment (and ``.wait`` for the polling options); tests check that the two stay equal.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import (
    ENVIRONMENT_FALLBACKS,
    PlatformApiError,
    PlatformClient,
    job_id_of,
)


def platform_argument_spec():
    """Connection options shared by every module (doc fragment ``platform``).

    ``api_url`` and ``api_token`` are checked by the client rather than with
    ``required=True``, so that the error names the environment variable too.
    """
    return dict(
        api_url=dict(type="str", fallback=(env_fallback, [ENVIRONMENT_FALLBACKS["api_url"]])),
        api_token=dict(type="str", no_log=True, fallback=(env_fallback, [ENVIRONMENT_FALLBACKS["api_token"]])),
        validate_certs=dict(type="bool", default=True),
        request_timeout=dict(type="int", default=30),
    )


def wait_argument_spec(wait_timeout=600):
    """Polling options of modules that start a job (doc fragment ``platform.wait``)."""
    return dict(
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=wait_timeout),
        poll_interval=dict(type="float", default=2.0),
    )


def build_argument_spec(module_options, wait=False):
    """The full spec of a module: shared options, polling options if it waits, its own."""
    spec = platform_argument_spec()
    if wait:
        spec.update(wait_argument_spec())
    spec.update(module_options)
    return spec


def client_from_module(module):
    params = module.params
    return PlatformClient(
        params["api_url"], params["api_token"], timeout=params["request_timeout"],
        validate_certs=params["validate_certs"],
    )


def run_module(argument_spec, handler, supports_check_mode=True, **module_kwargs):
    """Build the module, run `handler(module, client)` → result dict, exit or fail cleanly.

    A `PlatformApiError` becomes ``fail_json`` with the platform's error code and detail, so
    a playbook sees "POST /api/v1/volumes failed with HTTP 400 (validation_error): ..." and
    never a Python traceback.
    """
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=supports_check_mode, **module_kwargs)
    try:
        client = client_from_module(module)
        result = handler(module, client)
    except PlatformApiError as error:
        module.fail_json(**error.as_result())
    failure = result.pop("failed_msg", None)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


def wait_for_jobs(client, items, params):
    """Wait for the job of every item (backup or job answer) within one shared deadline.

    Answers ``(jobs, failures)``: the final job of each item in order, and one message per
    job that did not succeed. `JobTimeout` propagates (the task fails with the job's state).
    """
    deadline = client.monotonic() + params["wait_timeout"]
    jobs, failures = [], []
    for item in items:
        job_id = job_id_of(item)
        if not job_id:
            failures.append("no job in the platform's answer: %r" % (item,))
            jobs.append(None)
            continue
        remaining = max(1, deadline - client.monotonic())
        job = client.wait_for_job(job_id, timeout=remaining, interval=params["poll_interval"])
        jobs.append(job)
        if job.get("status") != "succeeded":
            failures.append("%s job %s %s: %s" % (job.get("kind") or "the", job_id, job.get("status"),
                                                  job.get("error") or "no error given"))
    return jobs, failures
