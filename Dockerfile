# Three images from one file; their dependencies come from pyproject.toml (docker/requirements.py)
# at the versions of constraints.txt, so they cannot drift from what `make install` and the tests use:
#   docker build -t ddnn-serve .                      # ddnn + registry + service (no training code)
#   docker build --target train -t ddnn-train .       # ddnn + registry + training + data/ (ddnn-train)
#   docker build --target mlflow -t ddnn-mlflow .     # mlflow server for PostgreSQL + S3 (no torch)
#   docker run -p 8000:8000 -e DDNN_TRACKING_URI=http://mlflow:5000 ddnn-serve
# TORCH_INDEX picks the torch build: the CPU wheels by default; a CUDA index for a GPU image
# (e.g. --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126; run it with a GPU).
# Settings are DDNN_* environment variables (service/config.py, docs/deployment.md); PORT sets
# the port. Every image runs as uid 10001 in /var/lib/ddnn, its home and the one writable folder:
# the default SQLite store (sqlite:///mlflow.db) and ./results land there.
ARG PYTHON_IMAGE=python:3.11-slim

# ---- the requirement lists alone: the install layers below change only when these lists do,
# not with every edit of pyproject.toml
FROM ${PYTHON_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml ./
COPY docker/requirements.py docker/
RUN mkdir /requirements \
    && python docker/requirements.py > /requirements/core.txt \
    && python docker/requirements.py --only serve > /requirements/serve.txt \
    && python docker/requirements.py --only train > /requirements/train.txt \
    && python docker/requirements.py --only mlflow-server > /requirements/mlflow-server.txt

# ---- the user, the writable working folder and the environment every image shares
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
# results/ exists, owned by the user, so that a volume mounted there (compose's train-results)
# starts writable for it
RUN groupadd --gid 10001 ddnn \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/ddnn --create-home \
        --shell /usr/sbin/nologin ddnn \
    && install -d -o 10001 -g 10001 /var/lib/ddnn/results
COPY constraints.txt /etc/ddnn/constraints.txt

# ---- torch (CPU or CUDA) and the core (ddnn + registry), before any code
FROM runtime AS base
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY --from=requirements /requirements/core.txt /etc/ddnn/
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX}" -c /etc/ddnn/constraints.txt torch \
    && pip install --no-cache-dir -c /etc/ddnn/constraints.txt -r /etc/ddnn/core.txt
# the code lives in /app (read-only for the user); processes run in their home
ENV PYTHONPATH=/app
WORKDIR /var/lib/ddnn

FROM base AS train
COPY --from=requirements /requirements/train.txt /etc/ddnn/
RUN pip install --no-cache-dir -c /etc/ddnn/constraints.txt -r /etc/ddnn/train.txt
COPY ddnn/ /app/ddnn/
COPY registry/ /app/registry/
COPY training/ /app/training/
# the embedded Milano block (the default data of compose.yaml and deploy/train-job.yaml)
COPY data/ /app/data/
USER 10001:10001
# The same entry point as the `ddnn-train` console script; under torchrun: `torchrun ... -m training`.
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]

FROM runtime AS mlflow
COPY --from=requirements /requirements/mlflow-server.txt /etc/ddnn/
RUN pip install --no-cache-dir -c /etc/ddnn/constraints.txt -r /etc/ddnn/mlflow-server.txt
WORKDIR /var/lib/ddnn
# mlflow server reads its options from these (and MLFLOW_BACKEND_STORE_URI,
# MLFLOW_ARTIFACTS_DESTINATION, MLFLOW_SERVER_ALLOWED_HOSTS: see compose.yaml)
ENV MLFLOW_HOST=0.0.0.0 \
    MLFLOW_PORT=5000 \
    MLFLOW_SERVE_ARTIFACTS=true
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MLFLOW_PORT', '5000') + '/health', timeout=2)"]
ENTRYPOINT ["python", "-m", "mlflow", "server"]

# ---- the default target: the allocation service (edge, cloud or both: DDNN_ROLE)
FROM base AS serve
COPY --from=requirements /requirements/serve.txt /etc/ddnn/
RUN pip install --no-cache-dir -c /etc/ddnn/constraints.txt -r /etc/ddnn/serve.txt
COPY ddnn/ /app/ddnn/
COPY registry/ /app/registry/
COPY service/ /app/service/
ENV DDNN_HOST=0.0.0.0 \
    PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=2)"]
# The same entry point as the `ddnn-serve` console script (uvicorn on service.main's app).
CMD ["python", "-m", "service"]
