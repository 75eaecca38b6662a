"""The domain of the paper: cost, data, the distributed LSTM, baselines, offloading, evaluation.

Pure torch/numpy: no HTTP, no MLflow, no device choice, no printing.
"""

from ddnn.config import ConfigError, CostConfig, DDNNConfig, OffloaderConfig
from ddnn.cost import sample_cost, sample_cost_np, slot_cost, slot_cost_np
from ddnn.data import DataError, DemandSeries, load_demand, synthetic_demand
from ddnn.model import DDNN, CloudModel, EdgeModel, EdgeOutput, ExitOutputs
from ddnn.offloader import Offloader
from ddnn.policies import Decision
from ddnn.windows import Dataset, MinMaxScaler, WindowSet, prepare_dataset

__all__ = [
    "DDNN",
    "CloudModel",
    "ConfigError",
    "CostConfig",
    "DDNNConfig",
    "DataError",
    "Dataset",
    "Decision",
    "DemandSeries",
    "EdgeModel",
    "EdgeOutput",
    "ExitOutputs",
    "MinMaxScaler",
    "Offloader",
    "OffloaderConfig",
    "WindowSet",
    "load_demand",
    "prepare_dataset",
    "sample_cost",
    "sample_cost_np",
    "slot_cost",
    "slot_cost_np",
    "synthetic_demand",
]
