"""The platform, not the engine, decides how engine errors map to HTTP statuses."""

from __future__ import annotations

import inspect

import pytest

from backups.engine import errors as engine_errors
from backups.storage import UnsupportedStorage
from storage_platform.errors import ENGINE_ERROR_STATUS, engine_error_status, exception_handler

ENGINE_ERROR_CLASSES = [value for value in vars(engine_errors).values()
                        if inspect.isclass(value) and issubclass(value, engine_errors.EngineError)]


def test_the_engine_carries_no_http_status():
    assert not [cls.__name__ for cls in ENGINE_ERROR_CLASSES if "http_status" in vars(cls)]


@pytest.mark.parametrize("error_class", ENGINE_ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_engine_error_gets_a_status_from_the_table(error_class):
    assert engine_error_status(error_class()) in set(ENGINE_ERROR_STATUS.values())


@pytest.mark.parametrize(("error", "expected"), [
    (engine_errors.SnapshotNotFound(), 404),
    (engine_errors.PathNotFound(), 404),
    (engine_errors.RepositoryLocked(), 409),
    (engine_errors.BackendUnavailable(), 503),
    (engine_errors.ObjectCorrupt(), 502),  # not listed: its base class BackendError's status
    (engine_errors.InvalidRetentionPolicy(), 400),
    (engine_errors.DataIntegrityError(), 500),
    (UnsupportedStorage(), 500),
])
def test_the_handler_renders_engine_errors_with_the_tables_status(error, expected):
    response = exception_handler(error, {})
    assert response.status_code == expected
    assert response.data["code"] == error.code and response.data["message"] == error.message
