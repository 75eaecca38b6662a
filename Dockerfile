# The allocation service: ddnn + registry + service only (no training code), CPU torch.
#   docker build -t ddnn-service .
#   docker run -p 8000:8000 -e DDNN_TRACKING_URI=http://mlflow:5000 ddnn-service
# Settings are DDNN_* environment variables (service/config.py); PORT sets the port.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DDNN_HOST=0.0.0.0 \
    PORT=8000

RUN groupadd --gid 10001 ddnn \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin ddnn
WORKDIR /app

# Dependencies in their own layer, before the code: CPU-only torch from the PyTorch index (the
# PyPI wheel pulls CUDA), then the serving dependencies of pyproject.toml (not the training
# extras: matplotlib, tqdm), with the repository's pins.
COPY constraints.txt ./
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install --no-cache-dir -c constraints.txt \
        "numpy>=2.0,<3" \
        "mlflow==3.17.2" \
        "fastapi>=0.115,<1" \
        "uvicorn>=0.30,<1" \
        "pydantic>=2.7,<3" \
        "pydantic-settings>=2.4,<3" \
        "httpx>=0.27,<1" \
        "prometheus-client>=0.20,<1"

COPY ddnn/ ddnn/
COPY registry/ registry/
COPY service/ service/

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=2)"]
# The same entry point as the `ddnn-serve` console script (uvicorn on service.main's app).
CMD ["python", "-m", "service"]
