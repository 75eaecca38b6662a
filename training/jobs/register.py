"""Stage: choose the champion weight pair and register it with its offloader under an alias.

The champion rule: among the weight pairs that did not collapse (training.jobs.common), the
lowest validation cost at the best operating point of the cost-aware policy's validation curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from registry import (
    DDNN_MODEL_NAME,
    DEFAULT_ALIAS,
    OFFLOADER_MODEL_NAME,
    ModelRef,
    register_ddnn,
    register_offloader,
    set_alias,
)
from training.config import Settings
from training.data import Prepared
from training.jobs.ddnn import ddnn_bundle
from training.jobs.evaluate import EvaluatedDDNN


class ChampionRefusedError(RuntimeError):
    """No weight pair may become champion (every candidate collapsed to a constant)."""


def choose_champion(candidates: Sequence[EvaluatedDDNN]) -> EvaluatedDDNN:
    """The non-collapsed weight pair with the lowest validation cost at its best operating point."""
    healthy = [c for c in candidates if not c.ddnn.collapsed]
    if not healthy:
        listing = "; ".join(
            f"{c.ddnn.label}: collapsed exits {c.ddnn.collapsed_exits}" for c in candidates
        )
        raise ChampionRefusedError(
            "no weight pair may become champion: every DDNN's validation cost is not clearly "
            f"below the best constant ({listing}). Nothing was registered; see docs/recipe.md "
            "for the training recipe."
        )
    return min(healthy, key=lambda c: c.record.val_best_cost)


def register_champion(
    settings: Settings, champion: EvaluatedDDNN, prepared: Prepared, alias: str = DEFAULT_ALIAS
) -> tuple[ModelRef, ModelRef]:
    """Register the DDNN and its offloader bundle, then move `alias` to both."""
    uri = settings.tracking_uri
    ddnn = champion.ddnn
    bundle = ddnn_bundle(ddnn.model, settings, prepared, ddnn.w_local, ddnn.costs, ddnn.run_id)
    ddnn_ref = register_ddnn(bundle, run_id=ddnn.run_id, tracking_uri=uri)
    offloader_bundle = champion.offloaders.bundle(ddnn_ref.version)
    offloader_ref = register_offloader(
        offloader_bundle, run_id=champion.offloaders.run_id, tracking_uri=uri
    )
    set_alias(DDNN_MODEL_NAME, ddnn_ref.version, alias, tracking_uri=uri)
    set_alias(OFFLOADER_MODEL_NAME, offloader_ref.version, alias, tracking_uri=uri)
    offloader_bundle.save(settings.out / "models" / f"offloader-wL{ddnn.w_local:g}")
    return ddnn_ref, offloader_ref


def champion_block(
    refs: tuple[ModelRef, ModelRef] | None,
    champion: EvaluatedDDNN,
    refused: Exception | None,
    alias: str,
) -> dict[str, Any]:
    """summary.json's "champion": what was registered under which alias, or why nothing was."""
    w_local = champion.ddnn.w_local
    if refs is None:
        reason = str(refused) if refused else "registration skipped"
        return {"registered": False, "reason": reason, "w_local": w_local}
    return {
        "registered": True,
        "alias": alias,
        "ddnn": {"name": refs[0].name, "version": refs[0].version},
        "offloader": {"name": refs[1].name, "version": refs[1].version},
        "w_local": w_local,
    }
