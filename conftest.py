"""Root pytest configuration: shared fixtures live in tests/support/ and are registered here."""

pytest_plugins = [
    "tests.support.fixtures_s3",  # moto_server process (real S3 over HTTP)
    "tests.support.fixtures_api",  # API clients and tokens per role
    "tests.support.fixtures_celery",  # real Celery worker processes on real Redis
    "tests.support.fixtures_server",  # a real gunicorn server over the test database
    "tests.support.fixtures_gunicorn",  # the API under real gunicorn
    "tests.support.fixtures_repository",  # a backup repository per test
]
