# The worker image: the API's dependencies plus torch (CUDA build from PyPI, which bundles the
# CUDA runtime; the host provides the driver through the NVIDIA container toolkit), timm,
# facenet-pytorch and ffmpeg. Runs on CPU too (DEVICE=auto picks the GPU when one is visible).
# Build from the repository root:  docker build -f infra/worker.Dockerfile -t deepfakestream-worker .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WORK_DIR=/var/lib/deepfakestream/work

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 deepfakestream \
    && mkdir -p /var/lib/deepfakestream/work /models \
    && chown -R deepfakestream /var/lib/deepfakestream
WORKDIR /app

RUN pip install "torch==2.13.0" "torchvision==0.28.0"
# Dependencies first (from a stub of the package), so code changes do not reinstall them.
# facenet-pytorch pins torch<2.3 and numpy<2 in its metadata yet runs with the versions above;
# its MTCNN weights ship inside the wheel, so detection needs no download.
COPY pyproject.toml README.md ./
RUN mkdir -p core api worker pipeline migrations \
    && touch core/__init__.py api/__init__.py worker/__init__.py pipeline/__init__.py migrations/__init__.py \
    && pip install ".[worker]" \
    && pip uninstall -y deepfakestream \
    && rm -rf core api worker pipeline migrations \
    && pip install --no-deps "facenet-pytorch==2.6.0"

COPY core core
COPY lifecycle lifecycle
COPY api api
COPY migrations migrations
COPY worker worker
COPY pipeline pipeline
# `deepfakestream evaluate` and `train` (training from ImageNet weights needs the train extra too).
COPY training training
# The shipped checkpoint (safetensors); mount another at MODEL_PATH to override it.
COPY models models
RUN pip install --no-deps -e . && python -c "import worker.app, pipeline.analyzer"

USER deepfakestream
# The worker refuses to start without a valid checkpoint at MODEL_PATH.
ENV MODEL_PATH=/app/models/deepfakestream.safetensors
# One pool process per GPU; give each container one GPU and a stable hostname.
CMD ["deepfakestream", "worker", "--queues", "probe,analyze,webhooks,maintenance", "--concurrency", "1"]
