"""Model bundles: tensors plus a JSON config, rebuilt by our own code (never unpickled).

A bundle is a folder with two files:

- ``config.json``: what the bundle is (``kind``), the format version, the model configuration(s),
  and everything needed to use the weights (cost, scaler, metadata; for an offloader, the DDNN
  version it belongs to and the policies' defaults, ``ddnn.policies.PolicyDefaults``, once);
- ``weights.pt``: a dict of tensors (a nested dict for the offloader's networks), written with
  ``torch.save`` and read back with ``torch.load(weights_only=True)``, which refuses anything but
  tensors and plain containers, so loading a bundle never runs code from the store.

Folders are written atomically: to a hidden sibling first, then renamed into place, so a reader
sees a complete bundle or none.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import torch

from ddnn.config import ConfigError, CostConfig, DDNNConfig, OffloaderConfig
from ddnn.model import DDNN
from ddnn.offloader import Offloader
from ddnn.policies import ML, OFFLOADER_NETWORKS, PolicyDefaults
from ddnn.windows import MinMaxScaler, WindowError

# 2: the offloader's policy defaults are one typed value ("defaults"), not metadata + configs
BUNDLE_FORMAT = 2
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
DDNN_KIND = "ddnn"
OFFLOADER_KIND = "offloader"

StateDict = dict[str, torch.Tensor]


class RegistryError(RuntimeError):
    """The store is unreachable, a name/alias/version is unknown, or a bundle is malformed."""


class PairMismatchError(RegistryError):
    """The offloader was not trained for this DDNN version (or does not fit its shapes)."""


@dataclass(frozen=True)
class DDNNBundle:
    """Everything the service needs to rebuild the DDNN and map allocations back to data units."""

    config: DDNNConfig
    cost: CostConfig
    scaler: MinMaxScaler
    state_dict: StateDict
    # source, data fingerprint, interval_minutes, cell_ids, w_local, validation and test costs
    metadata: dict[str, Any]

    @classmethod
    def from_model(
        cls, model: DDNN, *, cost: CostConfig, scaler: MinMaxScaler, metadata: dict[str, Any]
    ) -> DDNNBundle:
        if scaler.n_vnfs != model.config.n_vnfs:
            raise RegistryError(
                f"scaler has {scaler.n_vnfs} VNFs, the model K={model.config.n_vnfs}"
            )
        return cls(model.config, cost, scaler, _cpu_copy(model.state_dict()), dict(metadata))

    def build(self) -> DDNN:
        """A DDNN on the CPU in eval mode with these weights (strict: every key must match)."""
        model = DDNN(self.config)
        _load_strict(model, self.state_dict, "DDNN")
        return model.eval()

    def save(self, directory: Path) -> None:
        config = {
            "kind": DDNN_KIND,
            "format": BUNDLE_FORMAT,
            "config": self.config.to_dict(),
            "cost": self.cost.to_dict(),
            "scaler": self.scaler.to_dict(),
            "metadata": self.metadata,
        }
        _write_bundle(Path(directory), config, self.state_dict)

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        config = _read_config(directory, DDNN_KIND)
        try:
            bundle = cls(
                config=DDNNConfig.from_dict(config["config"]),
                cost=CostConfig.from_dict(config["cost"]),
                scaler=MinMaxScaler.from_dict(config["scaler"]),
                state_dict=_flat_state(_read_weights(directory), directory),
                metadata=dict(config.get("metadata") or {}),
            )
        except (KeyError, TypeError, ConfigError, WindowError) as exc:
            raise RegistryError(f"{directory / CONFIG_FILE}: malformed DDNN bundle: {exc}") from exc
        if bundle.scaler.n_vnfs != bundle.config.n_vnfs:
            raise RegistryError(f"{directory}: the scaler's K does not match the model's K")
        return bundle


@dataclass(frozen=True)
class OffloaderBundle:
    """The offloader networks of one registered DDNN version, keyed by the policy that uses
    each (ddnn.policies.OFFLOADER_NETWORKS), and the policies' defaults."""

    networks: dict[str, tuple[OffloaderConfig, StateDict]]
    ddnn_version: str  # the registered version of the DDNN these were trained against
    defaults: PolicyDefaults  # C_T the classifier was trained for, eta, the ml threshold
    metadata: dict[str, Any]  # how the defaults were chosen, training metrics, run id

    def __post_init__(self) -> None:
        _check_networks(self.networks)
        _check_reads_transmission_cost(self.networks, self.defaults)
        if not str(self.ddnn_version):
            raise RegistryError("offloader bundle: ddnn_version is empty")

    @classmethod
    def from_offloaders(
        cls,
        offloaders: dict[str, Offloader],
        *,
        ddnn_version: str,
        defaults: PolicyDefaults,
        metadata: dict[str, Any],
    ) -> OffloaderBundle:
        networks = {
            key: (net.config, _cpu_copy(net.state_dict())) for key, net in offloaders.items()
        }
        return cls(networks, str(ddnn_version), defaults, dict(metadata))

    def build(self) -> dict[str, Offloader]:
        """One Offloader per network, on the CPU in eval mode."""
        built = {}
        for key, (config, state) in self.networks.items():
            net = Offloader(config)
            _load_strict(net, state, f"offloader {key!r}")
            built[key] = net.eval()
        return built

    def save(self, directory: Path) -> None:
        config = {
            "kind": OFFLOADER_KIND,
            "format": BUNDLE_FORMAT,
            "ddnn_version": self.ddnn_version,
            "defaults": self.defaults.to_dict(),
            "networks": {key: cfg.to_dict() for key, (cfg, _) in self.networks.items()},
            "metadata": self.metadata,
        }
        weights = {key: state for key, (_, state) in self.networks.items()}
        _write_bundle(Path(directory), config, weights)

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        config = _read_config(directory, OFFLOADER_KIND)
        weights = _read_weights(directory)
        try:
            networks = {
                key: (
                    OffloaderConfig.from_dict(cfg),
                    _flat_state(weights[key], directory / WEIGHTS_FILE),
                )
                for key, cfg in config["networks"].items()
            }
            defaults = PolicyDefaults.from_dict(config["defaults"])
            return cls(networks, str(config["ddnn_version"]), defaults, dict(config["metadata"]))
        except (KeyError, TypeError, ConfigError) as exc:
            raise RegistryError(
                f"{directory / CONFIG_FILE}: malformed offloader bundle: {exc!r}"
            ) from exc


def _cpu_copy(state: dict[str, torch.Tensor]) -> StateDict:
    return {key: value.detach().to("cpu").clone() for key, value in state.items()}


def _load_strict(module: torch.nn.Module, state: StateDict, what: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise RegistryError(f"{what}: weights do not fit the configuration: {exc}") from exc


def _check_networks(networks: dict[str, tuple[OffloaderConfig, StateDict]]) -> None:
    if set(networks) != set(OFFLOADER_NETWORKS):
        raise RegistryError(
            f"offloader bundle needs networks {sorted(OFFLOADER_NETWORKS)}, got {sorted(networks)}"
        )
    for key, (config, _) in networks.items():
        if config.kind != OFFLOADER_NETWORKS[key]:
            raise RegistryError(
                f"offloader bundle: network {key!r} must be a {OFFLOADER_NETWORKS[key]}, "
                f"got {config.kind}"
            )
    shapes = {(cfg.n_steps, cfg.n_vnfs) for cfg, _ in networks.values()}
    if len(shapes) > 1:
        raise RegistryError(f"offloader bundle: networks disagree on (N, K): {sorted(shapes)}")


def _check_reads_transmission_cost(
    networks: dict[str, tuple[OffloaderConfig, StateDict]], defaults: PolicyDefaults
) -> None:
    """The defaults say whether the ml classifier reads C_T (resolve_knobs then lets the
    decision's C_T govern it): they must say what its network does."""
    reads = networks[ML.name][0].transmission_cost_input
    if reads != defaults.ml_reads_transmission_cost:
        raise RegistryError(
            f"offloader bundle: the {ML.name!r} network transmission_cost_input={reads}, its "
            f"defaults ml_reads_transmission_cost={defaults.ml_reads_transmission_cost}"
        )


def _write_bundle(directory: Path, config: dict[str, Any], weights: object) -> None:
    """Write config.json and weights.pt to a hidden sibling folder, then rename it into place."""
    try:
        text = json.dumps(config, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{directory}: bundle config is not plain JSON: {exc}") from exc
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    try:
        (staging / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")
        torch.save(weights, staging / WEIGHTS_FILE)
        _replace_directory(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_directory(source: Path, target: Path) -> None:
    """Rename source to target; an existing target is moved aside first, then removed."""
    if not target.exists():
        os.replace(source, target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, retired / target.name)
    os.replace(source, target)
    shutil.rmtree(retired, ignore_errors=True)


def _read_config(directory: Path, kind: str) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{directory}: not a model bundle (no {CONFIG_FILE})") from None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: unreadable bundle config: {exc}") from exc
    if not isinstance(config, dict) or config.get("kind") != kind:
        found = config.get("kind") if isinstance(config, dict) else type(config).__name__
        raise RegistryError(f"{path}: expected a {kind!r} bundle, found kind {found!r}")
    if config.get("format") != BUNDLE_FORMAT:
        raise RegistryError(
            f"{path}: bundle format {config.get('format')!r}, this code reads {BUNDLE_FORMAT} "
            "(retrain and register it with this version of ddnn-train)"
        )
    return config


def _read_weights(directory: Path) -> Any:
    path = directory / WEIGHTS_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RegistryError(f"{directory}: model bundle without {WEIGHTS_FILE}") from None
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        # weights_only=True raises UnpicklingError on anything but tensors and plain containers
        raise RegistryError(f"{path}: unreadable or unsafe weights: {exc}") from exc


def _flat_state(weights: Any, where: Path) -> StateDict:
    if not isinstance(weights, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in weights.items()
    ):
        raise RegistryError(f"{where}: weights must be a dict of named tensors")
    return dict(weights)
