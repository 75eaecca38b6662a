"""``ddnn-serve`` / ``python -m service``: run the service with uvicorn on the configured port.

Host and port come from the settings (``DDNN_HOST``, default 127.0.0.1; ``PORT`` or
``DDNN_PORT``, default 8000). One process on purpose: the models, the dynamic batcher and the
metrics live in it; scale out with more processes behind a load balancer. The port answers
before the models are loaded (``/healthz`` yes, ``/readyz`` not yet); invalid or impossible
settings (``DDNN_DEVICE=cuda`` without CUDA) end the process at once with exit status 1 and a
message naming the setting.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from service.config import get_settings
from service.main import create_app
from service.runtime import ImpossibleSetting, check_settings


def main() -> None:
    try:
        settings = get_settings()
        check_settings(settings)
    except (ValidationError, ImpossibleSetting) as exc:
        raise SystemExit(f"ddnn-serve: cannot start: {exc}") from None
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
