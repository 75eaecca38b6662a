"""Epoch functions: train_one_epoch, validate, fit (early stopping). No CLI, no env, no MLflow."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ddnn.config import CostConfig
from ddnn.losses import joint_loss
from ddnn.model import ExitOutputs
from training.config import TrainConfig

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class FitResult:
    best_epoch: int
    best_val: float
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed before building the model so that a run is reproducible."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def learning_rate(epoch: int, config: TrainConfig) -> float:
    """The schedule as a pure function of the epoch: constant or cosine decay to 5 %."""
    if config.schedule == "constant" or config.epochs <= 1:
        return config.lr
    progress = epoch / (config.epochs - 1)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def cost_for_epoch(epoch: int, config: TrainConfig, cost: CostConfig) -> CostConfig:
    """Optional warm-up: the first epochs use a symmetric cost (c1 = c2 scale), then Eq. 3."""
    if epoch < config.warmup_epochs:
        return CostConfig(c1=cost.c2, c2=cost.c2)
    return cost


def batches(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator).to(device)
    return list(order.split(batch_size))


def train_one_epoch(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    w_local: float,
    cost: CostConfig,
    config: TrainConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """One pass over the training windows; returns the mean loss parts."""
    model.train()
    totals: dict[str, float] = {}
    index_batches = batches(len(inputs), config.batch_size, generator, inputs.device)
    if config.max_steps_per_epoch:
        index_batches = index_batches[: config.max_steps_per_epoch]
    for idx in index_batches:
        out: ExitOutputs = model(inputs[idx])  # forward on both exits
        loss, parts = joint_loss(out, targets[idx], w_local, cost)  # joint cost loss (Eq. 7)
        loss.backward()  # backward
        if config.clip_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)  # clip
        optimizer.step()  # step
        optimizer.zero_grad(set_to_none=True)  # zero_grad
        for key, value in parts.items():
            totals[key] = totals.get(key, 0.0) + value
    return {key: value / len(index_batches) for key, value in totals.items()}


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = 1024) -> ExitOutputs:
    """Both exits for all inputs in eval mode (restoring the previous mode)."""
    was_training = model.training
    model.eval()
    outs = [model(chunk) for chunk in inputs.split(batch_size)]
    model.train(was_training)
    y_local = (
        None
        if outs[0].y_local is None
        else torch.cat([o.y_local for o in outs if o.y_local is not None])
    )
    return ExitOutputs(y_remote=torch.cat([o.y_remote for o in outs]), y_local=y_local)


@torch.no_grad()
def validate(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    w_local: float,
    cost: CostConfig,
) -> dict[str, float]:
    """Mean per-sample cost of each exit and the joint loss on held-out windows."""
    _, parts = joint_loss(predict(model, inputs), targets, w_local, cost)
    return parts


def selection_metric(parts: dict[str, float], w_local: float) -> float:
    """What early stopping watches: the joint cost for a DDNN, the remote cost otherwise."""
    return parts.get("joint", parts["remote"])


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    w_local: float,
    cost: CostConfig,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train with early stopping on the validation cost; the model ends with its best weights."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    result = FitResult(best_epoch=-1, best_val=math.inf)
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(config.epochs):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(epoch, config)
        epoch_cost = cost_for_epoch(epoch, config, cost)
        train_parts = train_one_epoch(
            model,
            *train,
            optimizer,
            w_local=w_local,
            cost=epoch_cost,
            config=config,
            generator=generator,
        )
        val_parts = validate(model, *val, w_local=w_local, cost=cost)
        metrics = {f"train_{k}": v for k, v in train_parts.items()}
        metrics |= {f"val_{k}": v for k, v in val_parts.items()} | {
            "lr": learning_rate(epoch, config)
        }
        result.history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        score = selection_metric(val_parts, w_local)
        if epoch >= config.warmup_epochs and score < result.best_val:
            result.best_epoch, result.best_val = epoch, score
            best_state = copy.deepcopy(model.state_dict())
        elif epoch >= config.warmup_epochs and epoch - result.best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    return result
