# syntax=docker/dockerfile:1
# The canary-judge service image (docs/deploy.md). Two stages: the builder turns this checkout
# and every runtime dependency into wheels; the runtime stage installs them into a virtual
# environment from those wheels alone (no compiler, no source tree, no test or lint tools) and
# runs as an unprivileged user.
#
#   docker build -t canary-judge .
#   docker build --build-arg EXTRAS=server,files -t canary-judge .   # + Parquet input files
#
# tests/integration/test_image.py runs this file's build and install commands, CMD and
# HEALTHCHECK outside Docker (no Docker on the test machines); tests/unit/test_deploy.py
# checks its shape.

ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS builder
# Extras to install next to the package; the service needs `server`.
ARG EXTRAS=server
WORKDIR /src
# Only what the wheel is built from (pyproject.toml names README.md and LICENSE).
COPY pyproject.toml README.md LICENSE ./
COPY judge ./judge
COPY metricsources ./metricsources
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels ".[${EXTRAS}]"

FROM ${PYTHON_IMAGE} AS runtime
ARG EXTRAS=server
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib
# The wheels are mounted from the builder for this one step, so no layer keeps them.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --no-index --find-links=/wheels "canary-judge[${EXTRAS}]"
# uid 10001: outside the range of system users, and what the Kubernetes manifests run as.
RUN groupadd --gid 10001 canary-judge \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin canary-judge \
    && install -d -o 10001 -g 10001 /data
# With no settings the store is ./canary-judge.db: here, on a volume.
WORKDIR /data
VOLUME /data
USER 10001:10001
EXPOSE 8080
# Python, not curl: the slim image has no curl, and one more package is one more thing to patch.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
CMD ["canary-judge", "serve", "--host", "0.0.0.0", "--port", "8080"]
