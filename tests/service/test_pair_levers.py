"""The service serves one site's DDNN: a hierarchical one (the studies' lever a request cannot
feed) is refused at load with a reason; one that reads the calendar warms up on windows with the
calendar's columns (tests/service/test_calendar.py serves it), and a DDNN with cloud memory asks
for windows as long as its memory."""

from __future__ import annotations

import pytest
import torch

from ddnn.config import DDNNConfig
from ddnn.model import DDNN
from service.pair import place_models

pytestmark = pytest.mark.unit

SMALL = {"n_steps": 6, "n_vnfs": 4, "cloud_hidden": (8,), "head_hidden": (8,)}


def test_a_hierarchical_ddnn_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="serves one site"):
        place_models(DDNN(DDNNConfig(sites=2, **SMALL)), {}, torch.device("cpu"))


def test_a_ddnn_that_reads_the_calendar_warms_up_on_its_columns() -> None:
    ddnn, _ = place_models(DDNN(DDNNConfig(calendar=True, **SMALL)), {}, torch.device("cpu"))
    assert ddnn.config.window_width == 4 + 4


def test_a_ddnn_with_memory_warms_up_on_windows_of_its_memory() -> None:
    config = DDNNConfig(memory_days=1, steps_per_day=8, **SMALL)
    ddnn, _ = place_models(DDNN(config), {}, torch.device("cpu"))
    assert ddnn.config.window_length == 9
