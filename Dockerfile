# Two images from one file; their dependencies come from pyproject.toml (docker/requirements.py),
# so they cannot drift from what `make install` and the tests use:
#   docker build --target train -t ddnn-train .    # ddnn + registry + training (ddnn-train)
#   docker build -t ddnn-serve .                    # ddnn + registry + service, no training code
#   docker run -p 8000:8000 -e DDNN_TRACKING_URI=http://mlflow:5000 ddnn-serve
# TORCH_INDEX picks the torch build: the CPU wheels by default; a CUDA index for a GPU image
# (e.g. --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126).
# Settings are DDNN_* environment variables (service/config.py); PORT sets the port.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true
RUN groupadd --gid 10001 ddnn \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin ddnn
WORKDIR /app
# Dependencies in their own layers, before the code: torch from TORCH_INDEX at the repository's
# pin, then the core requirements of pyproject.toml.
COPY pyproject.toml constraints.txt ./
COPY docker/requirements.py docker/
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX}" -c constraints.txt torch \
    && python docker/requirements.py > /tmp/core.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/core.txt

FROM base AS train
RUN python docker/requirements.py train > /tmp/train.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/train.txt
COPY ddnn/ ddnn/
COPY registry/ registry/
COPY training/ training/
USER 10001:10001
# The same entry point as the `ddnn-train` console script.
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]

FROM base AS serve
RUN python docker/requirements.py serve > /tmp/serve.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/serve.txt
COPY ddnn/ ddnn/
COPY registry/ registry/
COPY service/ service/
ENV DDNN_HOST=0.0.0.0 \
    PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=2)"]
# The same entry point as the `ddnn-serve` console script (uvicorn on service.main's app).
CMD ["python", "-m", "service"]
