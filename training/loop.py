"""The one training loop, for the DDNN, the centralized baselines and the offloaders.

What a model is trained on is an `Objective` (training.objectives): the loss of a batch and the
number early stopping watches. Everything else is the same for every model: AdamW, the schedule,
clipping, capped steps per epoch, validation after each epoch, early stopping with the best
weights restored. No CLI, no environment, no MLflow. Under torchrun the same loop runs on
every rank (training.distributed: DDP, a shard of each batch, validation summed over ranks).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from ddnn.model import ExitOutputs
from training import distributed
from training.config import TrainConfig

EpochCallback = Callable[[int, dict[str, float]], None]
Tensors = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets)
EVAL_CHUNK = 1024  # windows per forward pass outside training


class Objective(Protocol):
    """The loss of one batch (with the parts to log), and what early stopping watches."""

    def loss(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, epoch: int | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """epoch is None on validation windows (the objective as reported, no warm-up)."""
        ...

    def selection(self, parts: dict[str, float]) -> float:
        """The validation number that early stopping minimises."""
        ...


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


def batches(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator).to(device)
    return list(order.split(batch_size))


def train_one_epoch(
    model: nn.Module,
    train: Tensors,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    *,
    epoch: int,
    config: TrainConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """One pass over (at most max_steps_per_epoch batches of) the training windows."""
    inputs, targets = train
    model.train()
    totals: dict[str, float] = {}
    index_batches = batches(len(inputs), config.batch_size, generator, inputs.device)
    if config.max_steps_per_epoch:
        index_batches = index_batches[: config.max_steps_per_epoch]
    for idx in index_batches:
        part = distributed.shard(idx)  # this rank's rows of the batch (all of them in one process)
        loss, parts = objective.loss(model, inputs[part.index], targets[part.index], epoch)
        (loss * part.grad_scale).backward()  # backward (DDP averages the ranks' gradients)
        if config.clip_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)  # clip
        optimizer.step()  # step
        optimizer.zero_grad(set_to_none=True)  # zero_grad
        for key, value in parts.items():
            totals[key] = totals.get(key, 0.0) + part.share * value
    totals = distributed.all_sum(totals)
    return {key: value / len(index_batches) for key, value in totals.items()}


ModuleOrNone = TypeVar("ModuleOrNone", bound=nn.Module | None)


@contextmanager
def eval_mode(model: ModuleOrNone) -> Iterator[ModuleOrNone]:
    """The model in eval mode (no dropout, running statistics) inside, its own mode after
    (None: nothing to do)."""
    if model is None:
        yield model
        return
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def validate(model: nn.Module, data: Tensors, objective: Objective) -> dict[str, float]:
    """The objective's parts on held-out windows (eval mode, chunked, mean over windows; each
    rank computes its block of windows and the weighted parts are summed over the ranks)."""
    inputs, targets = data
    totals: dict[str, float] = {}
    rows = distributed.shard_rows(len(inputs))
    with eval_mode(model):
        for start in range(rows.start, rows.stop, EVAL_CHUNK):
            chunk = slice(start, min(start + EVAL_CHUNK, rows.stop))
            _, parts = objective.loss(model, inputs[chunk], targets[chunk], None)
            weight = len(inputs[chunk]) / len(inputs)
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + weight * value
    return distributed.all_sum(totals)


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = EVAL_CHUNK) -> ExitOutputs:
    """Both exits for all inputs in eval mode (restoring the previous mode)."""
    with eval_mode(model):
        outs = [model(chunk) for chunk in inputs.split(batch_size)]
    y_local = (
        None
        if outs[0].y_local is None
        else torch.cat([o.y_local for o in outs if o.y_local is not None])
    )
    return ExitOutputs(y_remote=torch.cat([o.y_remote for o in outs]), y_local=y_local)


def fit(
    model: nn.Module,
    train: Tensors,
    val: Tensors,
    objective: Objective,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train with early stopping on the validation objective; the model ends with its best
    weights. Epochs of a warm-up (config.warmup_epochs) never count as the best."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    result = FitResult(best_epoch=-1, best_val=math.inf)
    best_state = copy.deepcopy(model.state_dict())
    stepped = distributed.wrap(model)  # DDP under torchrun, else the model itself
    for epoch in range(config.epochs):
        lr = learning_rate(epoch, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        train_parts = train_one_epoch(
            stepped, train, objective, optimizer, epoch=epoch, config=config, generator=generator
        )
        val_parts = validate(model, val, objective)
        metrics = {f"train_{k}": v for k, v in train_parts.items()}
        metrics |= {f"val_{k}": v for k, v in val_parts.items()} | {"lr": lr}
        result.history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        score = objective.selection(val_parts)
        if epoch < config.warmup_epochs:
            continue
        if score < result.best_val:
            result.best_epoch, result.best_val = epoch, score
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - result.best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return result
