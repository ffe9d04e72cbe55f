# The API image: FastAPI, SQLAlchemy, boto3 and Celery (as a producer) — no torch, no ffmpeg.
# Build from the repository root:  docker build -f infra/api.Dockerfile -t deepfakestream-api .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 deepfakestream
WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p core api worker pipeline migrations \
    && touch core/__init__.py api/__init__.py worker/__init__.py pipeline/__init__.py migrations/__init__.py \
    && pip install ".[api]" \
    && pip uninstall -y deepfakestream \
    && rm -rf core api worker pipeline migrations

COPY core core
COPY lifecycle lifecycle
COPY api api
COPY migrations migrations
# The worker, pipeline and training sources are shipped but never imported by the API (torch is absent).
COPY worker worker
COPY pipeline pipeline
COPY training training
RUN pip install --no-deps -e . && python -c "import api.app, core.migrate" \
    && ! python -c "import torch" 2>/dev/null

USER deepfakestream
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
# Migrations run in their own one-shot container (see docker-compose.yml); `serve --migrate`
# does both for single-container deployments.
CMD ["deepfakestream", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
