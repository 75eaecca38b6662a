"""Send one allocation request to a running service and show the answer.

    .venv/bin/python examples/sample_request.py [--url http://127.0.0.1:8000] [--policy cost_aware]

It asks the service for N and K first, then sends K random windows of N samples in data units
(and, to a DDNN that reads the calendar, the slot's time: this hour's, in UTC).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from datetime import UTC, datetime

import httpx


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")
    parser.add_argument("--policy", default="cost_aware")
    parser.add_argument("--transmission-cost", type=float, default=None)
    args = parser.parse_args()
    models = httpx.get(f"{args.url}/v1/models", timeout=10).json()
    demand = [
        [random.uniform(50, 150) for _ in range(models["n_steps"])] for _ in range(models["n_vnfs"])
    ]
    body: dict[str, object] = {"demand": demand, "policy": args.policy}
    if args.transmission_cost is not None:
        body["transmission_cost"] = args.transmission_cost
    if models.get("reads_calendar"):
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        body["target_time"] = hour.isoformat()
    answer = httpx.post(f"{args.url}/v1/allocations", json=body, timeout=10)
    sys.stdout.write(f"HTTP {answer.status_code}\n{json.dumps(answer.json(), indent=2)}\n")


if __name__ == "__main__":
    main()
