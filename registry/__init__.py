"""The model registry: bundles (tensors + JSON) and the MLflow calls that register and load them."""

from registry.bundle import (
    DDNNBundle,
    OffloaderBundle,
    PairMismatchError,
    RegistryError,
)
from registry.client import (
    DDNN_MODEL_NAME,
    DEFAULT_ALIAS,
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    OFFLOADER_MODEL_NAME,
    LoadedPair,
    ModelRef,
    check_pair,
    load_ddnn,
    load_offloader,
    load_pair,
    register_ddnn,
    register_offloader,
    resolve_alias,
    resolve_tracking_uri,
    set_alias,
)

__all__ = [
    "DDNN_MODEL_NAME",
    "DEFAULT_ALIAS",
    "DEFAULT_EXPERIMENT",
    "DEFAULT_TRACKING_URI",
    "OFFLOADER_MODEL_NAME",
    "DDNNBundle",
    "LoadedPair",
    "ModelRef",
    "OffloaderBundle",
    "PairMismatchError",
    "RegistryError",
    "check_pair",
    "load_ddnn",
    "load_offloader",
    "load_pair",
    "register_ddnn",
    "register_offloader",
    "resolve_alias",
    "resolve_tracking_uri",
    "set_alias",
]
