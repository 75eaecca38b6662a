"""Stage: the offloaders of one DDNN and the policies' defaults, from that DDNN's exit costs.

The offloaders learn from benefits C_L - C_R the DDNN did not train on: on the DDNN's own
training windows the benefit is optimistic (both exits fit them), so they learn from the
validation windows, split by time: the first `fit_share` (the "fit" windows) train the networks,
the rest (the "choice" windows) early-stop them and choose every threshold, apart from the
benefits the networks learned.

- ml (the paper's): one classifier per C_T of the grid, labelled by the oracle's rule (local iff
  C_L - C_R <= C_T), classes balanced with BCE's pos_weight;
- cost_aware (ours): one regressor of the benefit (standardised, Huber loss: the benefit is
  heavy-tailed because under-provisioning costs are quadratic), swept over the grid;
- two levers of issue 10, off by default (the paper's and ours stay the defaults; the ablation
  measures them): classifier="ct_input", ONE classifier that reads C_T (ddnn.offloader), trained
  on the fit windows once per C_T of the grid and the default C_T, each copy labelled by the
  oracle's rule at its C_T, classes balanced over all copies, early-stopped on the choice
  windows copied the same way, its C_T input scaled by the largest of those C_T; and
  benefit_loss="quantile" or "ranking" for the regressor (training.objectives);
- the C_T grid: 0 and the `ct_quantiles` of the positive benefits (the tail where the cloud
  helps: a C_T above every benefit makes every policy all-local);
- the defaults the bundle carries (ddnn.policies.PolicyDefaults): C_T, the median positive
  benefit (0 if the cloud never helps), and the confidence policy's eta, chosen on the choice
  windows by the table's own rule (Policy.best_threshold).
The knobs of these choices are training.config.OffloaderTraining.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from ddnn.config import ConfigError, DDNNConfig, OffloaderConfig, OffloaderKind
from ddnn.cost import ExitCosts
from ddnn.model import DDNN
from ddnn.offloader import Offloader, window_features, with_transmission_cost
from ddnn.policies import (
    CONFIDENCE,
    COST_AWARE,
    DEFAULT_ML_THRESHOLD,
    ML,
    OFFLOADER_NETWORKS,
    ORACLE,
    Evidence,
    Policy,
    PolicyDefaults,
)
from registry import (
    DDNN_MODEL_NAME,
    OFFLOADER_MODEL_NAME,
    DDNNBundle,
    ModelRef,
    OffloaderBundle,
    register_offloader,
    set_alias,
)
from training import distributed, tracking
from training.config import OffloaderTraining, Settings
from training.data import Prepared, prepare
from training.jobs.common import run_params
from training.jobs.ddnn import TrainedDDNN, settings_for_bundle, trained_from_bundle
from training.loop import EVAL_CHUNK, eval_mode, fit
from training.objectives import Criterion, NetworkLoss, benefit_criterion

logger = logging.getLogger(__name__)

# (fit windows, validation windows) -> what an offloader network reads of each (network_features)
FitFeatures = tuple[torch.Tensor, torch.Tensor]

CT_RULE = "median positive benefit C_L - C_R on the validation windows the offloaders fit"
ETA_RULE = "quantile of U minimising mean(C_L | C_R + C_T) on the choice validation windows"


@dataclass
class TrainedOffloaders:
    w_local: float
    ct_grid: np.ndarray
    defaults: PolicyDefaults
    classifiers: dict[float, Offloader]  # C_T -> classifier (ct_input: one network for all)
    regressor: Offloader  # the cost_aware policy's network
    metrics: dict[str, float]
    run_id: str | None
    windows: PolicyWindows  # which validation windows fitted them and chose the thresholds

    @property
    def default_classifier(self) -> Offloader:
        return self.classifiers[self.defaults.transmission_cost]

    def bundle(self, ddnn_version: str, ddnn_name: str = DDNN_MODEL_NAME) -> OffloaderBundle:
        metadata = {
            "transmission_cost_rule": CT_RULE,
            "confidence_eta_rule": ETA_RULE,
            "ddnn_name": ddnn_name,
            "w_local": self.w_local,
            "run_id": self.run_id,
            **self.metrics,
        }
        networks = {ML.name: self.default_classifier, COST_AWARE.name: self.regressor}
        return OffloaderBundle.from_offloaders(
            networks, ddnn_version=ddnn_version, defaults=self.defaults, metadata=metadata
        )


def transmission_cost_grid(benefit: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """0 and the quantiles of the positive benefits, unique and sorted."""
    positive = benefit[benefit > 0]
    if positive.size == 0:
        return np.zeros(1)
    return np.unique(np.append(np.quantile(positive, list(quantiles)), 0.0))


def default_transmission_cost(benefit: np.ndarray) -> float:
    """The registered classifier's C_T: the median positive benefit (0 if there is none)."""
    positive = benefit[benefit > 0]
    return float(np.quantile(positive, 0.5)) if positive.size else 0.0


@dataclass(frozen=True)
class PolicyWindows:
    """The validation windows the offloaders learn from (fit) and choose thresholds on (choice)."""

    fit: np.ndarray  # indices into the validation windows
    choice: np.ndarray

    @classmethod
    def of(cls, prepared: Prepared, fit_share: float) -> PolicyWindows:
        """The first fit_share of the validation period (by target time) fits, the rest chooses."""
        rows = prepared.val.windows.target_index
        cut = np.quantile(rows, fit_share)
        fit, choice = np.flatnonzero(rows < cut), np.flatnonzero(rows >= cut)
        if fit.size == 0 or choice.size == 0:
            raise ConfigError(
                f"the validation period ({rows.size} windows) is too short to fit offloaders on "
                f"{fit_share:.0%} of it and choose thresholds on the rest"
            )
        return cls(fit, choice)


def train_offloaders(
    settings: Settings,
    prepared: Prepared,
    ddnn: TrainedDDNN,
    *,
    sweep: bool,
    transmission_cost: float | None = None,
) -> TrainedOffloaders:
    """The classifier at the default C_T (and, with sweep or one classifier that reads C_T,
    at every C_T of the grid), the regressor and the confidence policy's eta, from the DDNN's
    training and validation costs."""
    training = settings.offloader
    windows = PolicyWindows.of(prepared, training.fit_share)
    fit = (prepared.val.inputs[windows.fit], ddnn.costs["val"].subset(windows.fit))
    choice = (prepared.val.inputs[windows.choice], ddnn.costs["val"].subset(windows.choice))
    grid = transmission_cost_grid(fit[1].benefit, training.ct_quantiles)
    if transmission_cost is None:
        transmission_cost = default_transmission_cost(fit[1].benefit)
    default_ct = float(transmission_cost)
    # the paper's classifiers cost one training per C_T; one that reads C_T serves every C_T
    every_ct = training.classifier == "ct_input" or sweep
    to_train = sorted(set(grid.tolist()) | {default_ct}) if every_ct else [default_ct]
    name = f"offloader {ddnn.label} C_T={default_ct:.4g}"
    with tracking.run(name, tags={"job": "train-offloader", "model": "offloader"}) as run_id:
        tracking.log_params(
            run_params(
                settings,
                prepared,
                ddnn_run_id=ddnn.run_id,
                w_local=ddnn.w_local,
                transmission_cost=default_ct,
                ct_grid=[round(c, 6) for c in to_train],
            )
        )
        classifiers = train_classifier_grid(
            settings.model, training, fit, choice, to_train, ddnn=ddnn.model
        )
        regressor, regressor_metrics = train_regressor(
            settings.model, training, fit, choice, ddnn=ddnn.model
        )
        u_choice = policy_scores(CONFIDENCE, choice[0], ddnn=ddnn.model, seed=training.seed)
        eta = CONFIDENCE.best_threshold(u_choice, choice[1], default_ct, training.eta_points)
        metrics = {f"{ML.name}_{k}": v for k, v in classifiers[default_ct][1].items()}
        metrics |= {f"{COST_AWARE.name}_{k}": v for k, v in regressor_metrics.items()}
        metrics |= {"confidence_eta": eta}
        tracking.log_metrics(metrics)
    return TrainedOffloaders(
        w_local=ddnn.w_local,
        ct_grid=grid,
        defaults=PolicyDefaults(
            transmission_cost=default_ct,
            confidence_eta=eta,
            ml_reads_transmission_cost=training.classifier == "ct_input",
        ),
        classifiers={c_t: net for c_t, (net, _) in classifiers.items()},
        regressor=regressor,
        metrics=metrics,
        run_id=run_id,
        windows=windows,
    )


@torch.no_grad()
def policy_scores(
    policy: Policy,
    inputs: torch.Tensor,
    *,
    ddnn: DDNN | None = None,
    networks: Mapping[str, Offloader] | None = None,
    seed: int = 0,
    transmission_cost: float | None = None,
) -> np.ndarray:
    """A policy's scores on every window (chunked), through the table: U for confidence
    (seeded MC dropout), P(local) for ml, the predicted benefit for cost_aware. The DDNN's edge
    runs only for a policy that reads its output (Evidence.edge_output); transmission_cost: the
    decision's C_T, read by a classifier that takes it as an input."""
    torch.manual_seed(seed)
    edge = ddnn.edge if ddnn is not None else None
    parts = []
    with eval_mode(edge):
        for chunk in inputs.split(EVAL_CHUNK):
            evidence = Evidence(
                len(chunk),
                x=chunk,
                edge=edge,
                offloaders=networks or {},
                transmission_cost=transmission_cost,
            )
            parts.append(policy.score(evidence))
    return np.concatenate(parts)


# ---------------------------------------------------------------------------------------------
# The networks


def offloader_config(
    model: DDNNConfig, training: OffloaderTraining, kind: OffloaderKind
) -> OffloaderConfig:
    return OffloaderConfig(
        n_steps=model.n_steps,
        n_vnfs=model.n_vnfs,
        hidden=training.hidden,
        kind=kind,
        inputs=training.inputs,
        edge_hidden=model.edge_hidden,
    )


@torch.no_grad()
def network_features(
    config: OffloaderConfig, inputs: torch.Tensor, ddnn: DDNN | None
) -> torch.Tensor:
    """(M, L, sites*K) windows -> (M, F_w): what a network of this config reads of each window,
    computed once (chunked) by the features' owner (ddnn.offloader), with the output of the
    DDNN's edge (in eval mode) if the network reads it."""
    if config.inputs != "edge":
        return torch.cat([window_features(config, chunk) for chunk in inputs.split(EVAL_CHUNK)])
    if ddnn is None:
        raise ConfigError('offloaders with inputs="edge" need the DDNN whose edge they read')
    with eval_mode(ddnn.edge) as edge:
        chunks = inputs.split(EVAL_CHUNK)
        return torch.cat([window_features(config, chunk, edge(chunk)) for chunk in chunks])


def fit_features(
    config: OffloaderConfig,
    train: tuple[torch.Tensor, ExitCosts],
    val: tuple[torch.Tensor, ExitCosts],
    ddnn: DDNN | None,
) -> FitFeatures:
    """The network_features of the fit and of the validation windows."""
    return network_features(config, train[0], ddnn), network_features(config, val[0], ddnn)


def at_each_transmission_cost(
    features: torch.Tensor, transmission_costs: Sequence[float]
) -> torch.Tensor:
    """(M, F_w) -> (P*M, F_w + 1): the windows' features once per C_T, that C_T appended
    (C_T-major, as `_labels`): what a network that reads C_T fits on."""
    return torch.cat([with_transmission_cost(features, c_t) for c_t in transmission_costs])


def transmission_cost_scale(transmission_costs: Sequence[float]) -> float:
    """The ct_scale of a classifier that reads C_T: the largest C_T it learns from, so that its
    C_T input lies in [0, 1] like the min-max scaled windows (1 if every C_T is 0)."""
    largest = max(transmission_costs, default=0.0)
    return float(largest) if largest > 0 else 1.0


def train_classifier_grid(
    model: DDNNConfig,
    training: OffloaderTraining,
    train: tuple[torch.Tensor, ExitCosts],
    val: tuple[torch.Tensor, ExitCosts],
    grid: Sequence[float],
    *,
    ddnn: DDNN | None = None,
) -> dict[float, tuple[Offloader, dict[str, float]]]:
    """The ml classifier at each C_T of the grid, with its metrics there (each a step of the
    run's ml_grid_* metrics): one trained per C_T (classifier="per_ct", the paper's), or one
    that reads C_T, trained once on every C_T of the grid ("ct_input"). `ddnn`: the DDNN whose
    edge the networks read (needed by inputs="edge")."""
    config = offloader_config(model, training, OFFLOADER_NETWORKS[ML.name])
    features = fit_features(config, train, val, ddnn)  # once for the whole grid
    shared = None
    if training.classifier == "ct_input":
        shared = train_ct_input_classifier(
            model, training, train, val, grid, ddnn=ddnn, features=features
        )
    trained = {}
    quiet = not distributed.is_main()
    bar = tqdm(grid, desc="ML offloader per C_T", leave=False, disable=True if quiet else None)
    for step, c_t in enumerate(bar):
        if shared is None:
            net, metrics = train_classifier(
                model, training, train, val, c_t, ddnn=ddnn, features=features
            )
        else:
            net, metrics = shared, classifier_metrics(shared, train, val, c_t, ddnn)
        tracking.log_metrics(
            {f"ml_grid_{k}": v for k, v in metrics.items()} | {"ml_grid_c_t": c_t}, step=step
        )
        trained[c_t] = (net, metrics)
    return trained


def train_classifier(
    model: DDNNConfig,
    training: OffloaderTraining,
    train: tuple[torch.Tensor, ExitCosts],
    val: tuple[torch.Tensor, ExitCosts],
    transmission_cost: float,
    *,
    ddnn: DDNN | None = None,
    features: FitFeatures | None = None,
) -> tuple[Offloader, dict[str, float]]:
    """The paper's ML offloader for one C_T: P(local), labels local iff C_L - C_R <= C_T.
    `features`: the windows' fit_features, if already computed."""
    config = offloader_config(model, training, OFFLOADER_NETWORKS[ML.name])
    if features is None:
        features = fit_features(config, train, val, ddnn)
    net = _fit_classifier(config, training, features, (train[1], val[1]), [transmission_cost])
    return net, classifier_metrics(net, train, val, transmission_cost, ddnn)


def train_ct_input_classifier(
    model: DDNNConfig,
    training: OffloaderTraining,
    train: tuple[torch.Tensor, ExitCosts],
    val: tuple[torch.Tensor, ExitCosts],
    transmission_costs: Sequence[float],
    *,
    ddnn: DDNN | None = None,
    features: FitFeatures | None = None,
) -> Offloader:
    """One ML offloader for every C_T: P(local | C_T), on the windows once per C_T of
    `transmission_costs`, each copy labelled local iff C_L - C_R <= its C_T. `features`: the
    windows' fit_features, if already computed."""
    config = replace(
        offloader_config(model, training, OFFLOADER_NETWORKS[ML.name]),
        transmission_cost_input=True,
    )
    if features is None:
        features = fit_features(config, train, val, ddnn)
    return _fit_classifier(config, training, features, (train[1], val[1]), transmission_costs)


def classifier_metrics(
    net: Offloader,
    train: tuple[torch.Tensor, ExitCosts],
    val: tuple[torch.Tensor, ExitCosts],
    transmission_cost: float,
    ddnn: DDNN | None,
) -> dict[str, float]:
    """A classifier's share of local labels and balanced accuracies at one C_T."""
    y_train, y_val = (_labels(costs, [transmission_cost], x.device) for x, costs in (train, val))
    return {
        "train_share_local_labels": float(y_train.mean()),
        "train_balanced_accuracy": _balanced_accuracy(
            net, train[0], y_train, ddnn, transmission_cost
        ),
        "val_balanced_accuracy": _balanced_accuracy(net, val[0], y_val, ddnn, transmission_cost),
    }


def train_regressor(
    model: DDNNConfig,
    training: OffloaderTraining,
    train: tuple[torch.Tensor, ExitCosts],
    val: tuple[torch.Tensor, ExitCosts],
    *,
    ddnn: DDNN | None = None,
) -> tuple[Offloader, dict[str, float]]:
    """Our cost_aware network: regress the standardised benefit once (training.benefit_loss);
    any C_T thresholds it."""
    device = train[0].device
    benefit = train[1].benefit
    mean, std = float(benefit.mean()), float(max(benefit.std(), 1e-8))

    def standardised(costs: ExitCosts) -> torch.Tensor:
        return torch.as_tensor((costs.benefit - mean) / std, dtype=torch.float32, device=device)

    config = offloader_config(model, training, OFFLOADER_NETWORKS[COST_AWARE.name])
    x_train, x_val = fit_features(config, train, val, ddnn)
    net = _fit_network(
        config,
        training,
        (x_train, standardised(train[1])),
        (x_val, standardised(val[1])),
        NetworkLoss(benefit_criterion(training)),
    )
    net.target_mean.fill_(mean)
    net.target_std.fill_(std)
    predicted = policy_scores(COST_AWARE, val[0], ddnn=ddnn, networks={COST_AWARE.name: net})
    corr = np.corrcoef(predicted, val[1].benefit)[0, 1] if len(predicted) > 1 else math.nan
    metrics = {
        "benefit_mean": mean,
        "benefit_std": std,
        "val_benefit_corr": float(corr) if np.isfinite(corr) else 0.0,
    }
    return net, metrics


def _labels(
    costs: ExitCosts, transmission_costs: Sequence[float], device: torch.device
) -> torch.Tensor:
    """The paper's classes at each C_T, C_T-major (as network_features copies the windows):
    1 (local) iff C_T >= C_L - C_R, i.e. the oracle's decision."""
    labels = np.concatenate([ORACLE.local(costs.benefit, c_t) for c_t in transmission_costs])
    return torch.as_tensor(labels, dtype=torch.float32, device=device)


def _balanced_bce(labels: torch.Tensor) -> Criterion:
    """BCE with the classes of `labels` balanced by pos_weight; with a single class there is
    nothing to balance."""
    n_local = float(labels.sum())
    n_remote = len(labels) - n_local
    pos_weight = torch.tensor(n_remote / n_local if n_local and n_remote else 1.0)

    def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            logits, target, pos_weight=pos_weight.to(logits.device)
        )

    return bce


def _fit_classifier(
    config: OffloaderConfig,
    training: OffloaderTraining,
    features: FitFeatures,
    costs: tuple[ExitCosts, ExitCosts],
    transmission_costs: Sequence[float],
) -> Offloader:
    """A classifier on the oracle's labels at each of `transmission_costs` (one for the paper's;
    several, each appended to a copy of the features, for one that reads C_T), classes
    balanced over all of them."""
    x_train, x_val = features
    y_train, y_val = (_labels(c, transmission_costs, x_train.device) for c in costs)
    if config.transmission_cost_input:
        x_train, x_val = (at_each_transmission_cost(x, transmission_costs) for x in features)
    objective = NetworkLoss(_balanced_bce(y_train))
    return _fit_network(
        config, training, (x_train, y_train), (x_val, y_val), objective, transmission_costs
    )


def _fit_network(
    config: OffloaderConfig,
    training: OffloaderTraining,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    objective: NetworkLoss,
    transmission_costs: Sequence[float] = (),
) -> Offloader:
    """The one training loop, every epoch, keeping the weights with the lowest validation loss,
    on (features, targets) of the fit and validation windows (features: what the network reads,
    C_T's column included for a network that reads it)."""
    if any(len(x) != len(y) for x, y in (train, val)):
        raise ValueError("an offloader's features and targets disagree on the number of rows")
    torch.manual_seed(training.seed)
    net = Offloader(config).to(train[0].device)
    if config.transmission_cost_input:
        net.ct_scale.fill_(transmission_cost_scale(transmission_costs))
    fit(net, train, val, objective, training.loop())
    return net


@torch.no_grad()
def _balanced_accuracy(
    net: Offloader,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    ddnn: DDNN | None,
    transmission_cost: float,
) -> float:
    """The mean recall of both classes of the classifier at C_T on the windows."""
    scores = policy_scores(
        ML, inputs, ddnn=ddnn, networks={ML.name: net}, transmission_cost=transmission_cost
    )
    predicted = torch.from_numpy(ML.local(scores, DEFAULT_ML_THRESHOLD))
    truth = (labels > 0.5).cpu()
    recalls = [
        float((predicted[truth == cls] == cls).float().mean())
        for cls in (True, False)
        if bool((truth == cls).any())
    ]
    return float(np.mean(recalls)) if recalls else 0.0


def offloader_job(
    settings: Settings,
    bundle: DDNNBundle,
    ref: ModelRef | None,
    *,
    transmission_cost: float | None,
    register: bool,
    alias: str | None,
) -> tuple[TrainedOffloaders, ModelRef | None]:
    """`ddnn-train train-offloader`: the classifier (one C_T) and the regressor, for a DDNN."""
    settings = settings_for_bundle(settings, bundle)
    with tracking.run("train-offloader", tags={"job": "train-offloader"}):
        prepared, settings = prepare(settings)
        ddnn = trained_from_bundle(settings, prepared, bundle)
        offloaders = train_offloaders(
            settings, prepared, ddnn, sweep=False, transmission_cost=transmission_cost
        )
    version = ref.version if ref is not None else "unregistered"
    offloaders.bundle(version).save(settings.out / "models" / f"offloader-wL{ddnn.w_local:g}")
    if not register:
        return offloaders, None
    if ref is None:
        raise ConfigError("--register needs the DDNN from the registry (--ddnn-version or --alias)")
    uri = settings.tracking_uri
    offloader_ref = register_offloader(
        offloaders.bundle(ref.version), run_id=offloaders.run_id, tracking_uri=uri
    )
    if alias:
        set_alias(OFFLOADER_MODEL_NAME, offloader_ref.version, alias, tracking_uri=uri)
    return offloaders, offloader_ref
