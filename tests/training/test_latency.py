"""Table II's summary and markdown, the confidence policy's J passes included."""

from __future__ import annotations

import pytest

from ddnn.config import PAPER_RTT_MS
from training.latency import LatencyTable

pytestmark = pytest.mark.unit


def test_latency_summary_has_every_share_and_the_centralized_models() -> None:
    table = LatencyTable(
        {}, {5: 40.0, 95: 3.0}, {"centralized_lstm": 43.0}, PAPER_RTT_MS, {5: 40.5, 95: 3.4}
    )
    assert table.summary() == {
        "5": 40.0,
        "95": 3.0,
        "centralized_lstm": 43.0,
        "confidence": {"5": 40.5, "95": 3.4},
    }
    markdown = table.markdown()
    assert "| DDNN, ML policy | 95 | 3.000 |" in markdown
    assert "| DDNN, confidence policy | 95 | 3.400 |" in markdown
