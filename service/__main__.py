"""``ddnn-serve`` / ``python -m service``: run the service with uvicorn on the configured port.

Host and port come from the settings (``DDNN_HOST``, default 127.0.0.1; ``PORT`` or
``DDNN_PORT``, default 8000). One process on purpose: the models, the dynamic batcher and the
metrics live in it; scale out with more processes behind a load balancer.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from service.config import get_settings
from service.main import create_app


def main() -> None:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.setswitchinterval(settings.switch_interval_ms / 1e3)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.keep_alive_s,
    )


if __name__ == "__main__":
    main()
