"""Every test in this directory is a pure engine test: mark it `engine` here, once."""

import pathlib

import pytest

from backups import engine

_HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.engine)


@pytest.fixture(params=["local", "s3"])
def any_backend(request, tmp_path):
    """The same engine test against a local directory and a real S3 server (moto_server)."""
    if request.param == "local":
        return engine.LocalBackend(str(tmp_path / "repo"))
    bucket = request.getfixturevalue("s3_bucket")
    from backups.engine.backends.s3 import S3Backend

    return S3Backend(bucket.name, "repo", client=bucket.client)
