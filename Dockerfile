# syntax=docker/dockerfile:1
# The platform image: API (gunicorn), Celery worker and beat from one image; the role is the
# command (see deploy/docker/entrypoint.sh). Build: docker build -t storage-platform:1.0.0 .

# --- build stage: compile wheels into a virtualenv, with compilers that stay behind ----------
FROM python:3.11.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# gcc and headers for the native packages (pyfastcdc, zstandard) when no wheel fits;
# libpq is not needed: psycopg[binary] ships its own. Not version-pinned on purpose: Debian
# replaces point releases with security updates, so a pin breaks the build within weeks; the
# base image tag pins the distribution and these tools never reach the runtime stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

COPY requirements/base.txt /build/requirements/base.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-virtualenv -r /build/requirements/base.txt

# --- runtime stage: the virtualenv and the code, nothing else ---------------------------------
FROM python:3.11.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="storage-platform" \
      org.opencontainers.image.description="Storage & Backup Platform: API, Celery worker and beat"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=storage_platform.settings \
    DATA_DIR=/var/lib/storage-platform \
    PORT=8000

# A fixed uid/gid so volume ownership is predictable across hosts and rebuilds.
RUN groupadd --system --gid 10001 platform \
    && useradd --system --uid 10001 --gid platform --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin platform \
    && mkdir -p /var/lib/storage-platform \
    && chown platform:platform /var/lib/storage-platform

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Code owned by root and read-only for the service user: a compromised process cannot
# rewrite the application.
COPY --chown=root:root . /app
RUN chmod 0755 /app/deploy/docker/entrypoint.sh

USER 10001:10001
VOLUME ["/var/lib/storage-platform"]
EXPOSE 8000

# Liveness of the API role. Workers and beat override it in docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]

ENTRYPOINT ["/app/deploy/docker/entrypoint.sh"]
CMD ["api"]
