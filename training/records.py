"""One run's test windows, as the pooled analysis needs them (training.summary), and their files.

A `WindowRecord` holds, for one DDNN (one data set, fold, group of cells, seed and weight pair)
and every test window: its bootstrap block (fold and day), both exits' costs, the cost of every
model that never offloads (the baselines and the DDNN's own exits), each policy's score, the
local masks of the classifier at each C_T (the paper's: one per C_T) and of the knobs chosen
on validation, and what Fig. 4 draws. Records of many runs are pooled by concatenation; they
are saved as .npz files so that a study can resume and recompute its report without training
again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddnn.cost import ExitCosts
from ddnn.policies import CONFIDENCE, COST_AWARE, ML, Knobs

ALL_LOCAL, ALL_REMOTE = "all_local", "all_remote"  # the DDNN's exits, as models of their own
MILAN_UTC_OFFSET_MINUTES = 60  # blocks are local days in Milan (CET = UTC+1)


@dataclass
class WindowRecord:
    fold: str
    group: int
    seed: int
    w_local: float
    blocks: np.ndarray  # (M,) "fold/YYYY-MM-DD" of each target (local day)
    exits: ExitCosts
    references: dict[str, np.ndarray]  # never-offloading model -> (M,) test cost
    reference_val: dict[str, float]  # never-offloading model -> mean validation cost
    scores: dict[str, np.ndarray]  # policy name -> (M,) score
    ml_grid: np.ndarray  # (P, M) local masks of the classifier at each C_T of the grid
    ct_grid: np.ndarray  # (P,)
    chosen: dict[str, np.ndarray]  # policy name -> (M,) local mask at the knobs chosen on val
    figure: dict[str, np.ndarray] = field(default_factory=dict)  # Fig. 4: time, demand, y_L, y_R
    val_best_cost: float = float("nan")  # the champion rule's score
    # exit ("local", "remote") -> (M,) share of the window's K allocations below the demand
    under: dict[str, np.ndarray] = field(default_factory=dict)
    # model -> {"best": epoch of the kept weights, "run": epochs trained} (early stopping's work)
    epochs: dict[str, dict[str, int]] = field(default_factory=dict)
    # policy -> its gap closed / share at the centralized LSTM's cost on the choice windows of
    # validation (what the ablation compares offloaders on)
    validation: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def n_windows(self) -> int:
        return int(self.exits.local.size)

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "blocks": self.blocks.astype(str),
            "exits/local": self.exits.local,
            "exits/remote": self.exits.remote,
            "ml_grid": self.ml_grid,
            "ct_grid": self.ct_grid,
        }
        for prefix, mapping in (
            ("references", self.references),
            ("scores", self.scores),
            ("chosen", self.chosen),
            ("figure", self.figure),
            ("under", self.under),
        ):
            arrays |= {f"{prefix}/{key}": value for key, value in mapping.items()}
        meta = {
            "fold": self.fold,
            "group": self.group,
            "seed": self.seed,
            "w_local": self.w_local,
            "reference_val": self.reference_val,
            "val_best_cost": self.val_best_cost,
            "epochs": self.epochs,
            "validation": self.validation,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.partial.npz")
        np.savez_compressed(staging, **arrays)  # type: ignore[arg-type]
        staging.replace(path)  # a reader sees a whole record or none

    @classmethod
    def load(cls, path: Path) -> WindowRecord:
        with np.load(path) as stored:
            arrays = {key: stored[key] for key in stored.files}
        meta: dict[str, Any] = json.loads(str(arrays.pop("meta")))

        def section(prefix: str) -> dict[str, np.ndarray]:
            return {
                key.split("/", 1)[1]: value
                for key, value in arrays.items()
                if key.startswith(prefix + "/")
            }

        return cls(
            fold=meta["fold"],
            group=int(meta["group"]),
            seed=int(meta["seed"]),
            w_local=float(meta["w_local"]),
            blocks=arrays["blocks"],
            exits=ExitCosts(arrays["exits/local"], arrays["exits/remote"]),
            references=section("references"),
            reference_val={k: float(v) for k, v in meta["reference_val"].items()},
            scores=section("scores"),
            ml_grid=arrays["ml_grid"],
            ct_grid=arrays["ct_grid"],
            chosen=section("chosen"),
            figure=section("figure"),
            val_best_cost=float(meta["val_best_cost"]),
            under=section("under"),
            epochs=meta.get("epochs", {}),
            validation=meta.get("validation", {}),
        )


def day_blocks(fold: str, target_times: np.ndarray) -> np.ndarray:
    """(M,) "fold/YYYY-MM-DD": the fold and the local (Milan) day of each target."""
    local = target_times.astype("datetime64[m]") + np.timedelta64(MILAN_UTC_OFFSET_MINUTES, "m")
    days = local.astype("datetime64[D]").astype(str)
    return np.char.add(f"{fold}/", days)


def chosen_masks(scores: Mapping[str, np.ndarray], knobs: Knobs) -> dict[str, np.ndarray]:
    """Each online curve policy's local mask at the knobs chosen on validation."""
    return {
        policy.name: policy.local(scores[policy.name], policy.threshold(knobs))
        for policy in (CONFIDENCE, ML, COST_AWARE)
    }
