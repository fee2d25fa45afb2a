# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation shared by the modules: authorship and connection options (every module),
polling options (``.wait``), and the attributes of read-only modules (``.info``) and of
modules that manage a resource's state (``.state``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
author:
  - Storage & Backup Platform team (!UNKNOWN)
options:
  api_url:
    description:
      - Base URL of the platform API, without C(/api/v1), for example C(https://backup.example.com).
      - If not set, the environment variable E(STORAGE_PLATFORM_URL) is used; the task fails when neither is set.
    type: str
  api_token:
    description:
      - API token, sent in the C(Authorization) header as a bearer token. The role must allow the operation
        (C(read) for info modules, C(backup) to trigger backups and verifies, C(admin) for
        volumes and restores).
      - If not set, the environment variable E(STORAGE_PLATFORM_TOKEN) is used; the task fails when neither is set.
      - Never logged and never returned.
    type: str
  validate_certs:
    description:
      - Verify the API's TLS certificate. Turn off only for a test installation with a self-signed certificate.
    type: bool
    default: true
  request_timeout:
    description:
      - Seconds to wait for one HTTP answer (not for a whole job).
    type: int
    default: 30
attributes:
  action_group:
    description: Use C(group/storage_platform.backup.backup) in C(module_defaults) to set the connection options once per play.
    support: full
    membership:
      - storage_platform.backup.backup
notes:
  - Reads are retried on connection errors and HTTP 502/503/504; writes are never retried,
    so a task never starts two backups by itself.
  - When a call fails, the task fails with the platform's error answer (C(code), C(message),
    C(detail)) in the C(error_code), C(msg) and C(detail) keys of its result, and the HTTP status in C(status).
"""

    WAIT = r"""
options:
  wait:
    description:
      - Wait until the job the call started reaches a terminal state (V(succeeded), V(failed), V(cancelled)).
      - A job that ends V(failed) or V(cancelled) fails the task.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the job before failing the task; the job keeps running on the platform.
    type: int
    default: 600
  poll_interval:
    description:
      - Longest pause in seconds between two polls of the job (polling starts faster and backs off to this).
    type: float
    default: 2.0
"""

    INFO = r"""
attributes:
  check_mode:
    description: The module only reads, so check mode runs it fully and changes nothing.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
"""

    STATE = r"""
attributes:
  check_mode:
    description: Reports what would change without changing it.
    support: full
  diff_mode:
    description: Returns the managed fields before and after.
    support: full
"""
