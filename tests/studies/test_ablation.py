"""The ablation command on synthetic data with tiny budgets: one row per configuration, paired
against the recipe, and a clear error for an unknown configuration; every configuration's
overrides are valid settings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ddnn.config import DDNNConfig
from studies.ablation.__main__ import main
from studies.ablation.report import mean_interval, paired_interval
from studies.ablation.variants import VARIANTS
from training.config import OffloaderTraining, TrainConfig

pytestmark = pytest.mark.integration


def test_ablation_writes_a_row_per_configuration(tmp_path: Path) -> None:
    out = tmp_path / "ablation.md"
    main(
        ["--cases", "synthetic", "--groups", "1", "--seeds", "1", "--quick", "--n-steps", "24"]
        + ["--variants", "recipe,wide z (4),offloader edge signals,offloader C_T input"]
        + ["--jobs", "1", "--cache", str(tmp_path / "c"), "--out", str(out)]
    )
    text = out.read_text()
    assert "| recipe |" in text and "| wide z (4) |" in text
    assert "| offloader edge signals |" in text  # offloaders that read the edge, end to end
    assert "| offloader C_T input |" in text  # one classifier for every C_T, end to end
    assert "2 runs per row." in text  # 2 folds x 1 group x 1 seed
    paired = text.split("Gap closed minus the recipe's, run by run (paired):")[1]
    assert "| offloader C_T input |" in paired and "| recipe |" not in paired


def test_unknown_variant_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown variant"):
        main(["--cases", "synthetic", "--variants", "nope", "--out", str(tmp_path / "a.md")])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_overrides_known_settings(name: str) -> None:
    variant = VARIANTS[name]
    DDNNConfig.from_dict(dict(variant.model))
    TrainConfig().updated(**variant.train)
    OffloaderTraining.from_dict(dict(variant.offloader))


@pytest.mark.unit
def test_the_paired_interval_is_over_the_run_by_run_differences() -> None:
    recipe = [SimpleNamespace(value=v) for v in (1.0, 2.0, 3.0)]
    lever = [SimpleNamespace(value=v) for v in (0.5, 1.6, 2.4)]  # 0.5, 0.4, 0.6 lower
    text = paired_interval(lever, recipe, lambda r: r.value)  # type: ignore[arg-type, attr-defined]
    assert text == mean_interval([-0.5, -0.4, -0.6])
    assert text.startswith("-0.5000 [")  # unpaired means would differ by 0.5 with a wide spread
