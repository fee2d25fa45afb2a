# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation shared by every module: connection options, and polling options (``.wait``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the platform API, without C(/api/v1), for example C(https://backup.example.com).
      - If not set, the environment variable E(STORAGE_PLATFORM_URL) is used.
    type: str
    required: true
  api_token:
    description:
      - API token, sent in the C(Authorization) header as a bearer token. The role must allow the operation
        (C(read) for info modules, C(backup) to trigger backups and verifies, C(admin) for
        volumes and restores).
      - If not set, the environment variable E(STORAGE_PLATFORM_TOKEN) is used.
      - Never logged and never returned.
    type: str
    required: true
  validate_certs:
    description:
      - Verify the API's TLS certificate. Turn off only for a test installation with a self-signed certificate.
    type: bool
    default: true
  request_timeout:
    description:
      - Seconds to wait for one HTTP answer (not for a whole job; see O(wait_timeout) where it exists).
    type: int
    default: 30
notes:
  - Reads are retried on connection errors and HTTP 502/503/504; writes are never retried,
    so a task never starts two backups by itself.
  - The platform's error answers (C(code), C(message), C(detail)) are returned as RV(error_code),
    RV(msg) and RV(detail) when a task fails.
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
