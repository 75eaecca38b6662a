"""The offloader networks' inputs: the window, its summary, or the summary plus the edge's own
signals (the local exit's change from the last value and the last step of z)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ddnn.config import ConfigError, DDNNConfig, OffloaderConfig, OffloaderInputs, OutputMode
from ddnn.model import DDNN
from ddnn.offloader import (
    SUMMARY_FEATURES,
    Offloader,
    edge_signals,
    n_features,
    offloader_features,
    summary_features,
    window_features,
)

pytestmark = pytest.mark.unit

N, K = 12, 4


def edge_config(model: DDNNConfig) -> OffloaderConfig:
    return OffloaderConfig(
        n_steps=model.n_steps, n_vnfs=model.n_vnfs, inputs="edge", edge_hidden=model.edge_hidden
    )


def edge_pass(model: DDNNConfig, batch: int = 5) -> tuple[torch.Tensor, DDNN]:
    torch.manual_seed(0)
    return torch.rand(batch, model.window_length, model.n_vnfs), DDNN(model).eval()


@pytest.mark.parametrize("edge_hidden", [1, 3])
def test_edge_features_are_the_summary_the_local_change_and_the_last_z(edge_hidden: int) -> None:
    model = DDNNConfig(n_steps=N, n_vnfs=K, edge_hidden=edge_hidden, zero_init_exit=False)
    x, ddnn = edge_pass(model)
    with torch.no_grad():
        out = ddnn.edge(x)
        features = offloader_features(edge_config(model), x, out)
    assert features.shape == (5, SUMMARY_FEATURES * K + K + edge_hidden)
    summary, local_change, last_z = features.split([SUMMARY_FEATURES * K, K, edge_hidden], dim=1)
    torch.testing.assert_close(summary, summary_features(x))
    torch.testing.assert_close(local_change, out.y_local - x[:, -1, :])
    torch.testing.assert_close(last_z, out.z[:, -1, :])
    torch.testing.assert_close(edge_signals(x, out), features[:, SUMMARY_FEATURES * K :])


@pytest.mark.parametrize(
    ("output_mode", "expected"),
    [("residual", "zero"), ("direct", "mean minus last")],
)
def test_the_local_change_is_in_the_window_units(output_mode: OutputMode, expected: str) -> None:
    """A zero local head answers the last value (residual) or the window's mean (direct) once
    window_norm's standardisation is undone: the change is in the window's own scaled units."""
    model = DDNNConfig(
        n_steps=N, n_vnfs=K, output_mode=output_mode, window_norm=True, zero_init_exit=True
    )
    x, ddnn = edge_pass(model)
    x = 5.0 * x + 2.0  # far from standardised units, so a mix-up would show
    with torch.no_grad():
        change = edge_signals(x, ddnn.edge(x))[:, :K]
    want = torch.zeros_like(change) if expected == "zero" else x.mean(dim=1) - x[:, -1, :]
    torch.testing.assert_close(change, want)


def test_features_read_the_served_site_edge_window() -> None:
    model = DDNNConfig(n_steps=N, n_vnfs=K, sites=2, zero_init_exit=False)
    x = torch.rand(3, N + 4, 2 * K)  # a longer window with a second site's columns
    with torch.no_grad():
        out = DDNN(model).eval().edge(x)
    features = offloader_features(edge_config(model), x, out)
    torch.testing.assert_close(features[:, -model.edge_hidden :], out.z[:, -1, :])
    torch.testing.assert_close(features[:, : SUMMARY_FEATURES * K], summary_features(x[:, -N:, :K]))


@pytest.mark.parametrize("inputs", ["window", "summary", "edge"])
def test_the_first_layer_takes_the_features(inputs: OffloaderInputs) -> None:
    config = OffloaderConfig(n_steps=N, n_vnfs=K, hidden=(8,), inputs=inputs, edge_hidden=2)
    net = Offloader(config).eval()
    expected = {"window": N * K, "summary": 6 * K, "edge": 6 * K + K + 2}[inputs]
    assert n_features(config) == expected == net.net[0].in_features
    assert isinstance(net.norm, torch.nn.BatchNorm1d) == (inputs != "window")
    assert net.needs_edge == (inputs == "edge")


def test_an_edge_offloader_without_the_edge_output_says_so() -> None:
    net = Offloader(OffloaderConfig(n_steps=N, n_vnfs=K, inputs="edge")).eval()
    with pytest.raises(ValueError, match="needs the edge's output"):
        net.score(torch.rand(2, N, K))


def test_a_config_saved_before_edge_inputs_still_loads() -> None:
    old = {"n_steps": N, "n_vnfs": K, "hidden": [8], "kind": "regressor", "inputs": "summary"}
    config = OffloaderConfig.from_dict(old)
    assert config.edge_hidden == DDNNConfig().edge_hidden
    assert OffloaderConfig.from_dict(config.to_dict()) == config


def test_config_rejects_unknown_inputs_and_sizes() -> None:
    with pytest.raises(ConfigError, match="unknown inputs"):
        OffloaderConfig(inputs="raw")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="invalid sizes"):
        OffloaderConfig(inputs="edge", edge_hidden=0)


def ct_input_config(inputs: OffloaderInputs = "window") -> OffloaderConfig:
    return OffloaderConfig(n_steps=N, n_vnfs=K, hidden=(8,), inputs=inputs, edge_hidden=2)


@pytest.mark.parametrize("inputs", ["window", "summary"])
def test_a_classifier_that_reads_c_t_scores_each_c_t(inputs: OffloaderInputs) -> None:
    torch.manual_seed(0)
    config = replace(ct_input_config(inputs), transmission_cost_input=True)
    net = Offloader(config).eval()
    assert n_features(config) == n_features(ct_input_config(inputs)) + 1
    assert net.net[0].in_features == n_features(config) and net.reads_transmission_cost
    x = torch.rand(5, N, K)
    with torch.no_grad():
        low, high = net.score(x, transmission_cost=0.0), net.score(x, transmission_cost=5.0)
    assert not torch.allclose(low, high)
    with pytest.raises(ValueError, match="needs the decision's C_T"):
        net.score(x)


def test_the_c_t_input_is_divided_by_the_network_s_scale() -> None:
    torch.manual_seed(0)
    net = Offloader(replace(ct_input_config(), transmission_cost_input=True)).eval()
    x = torch.rand(5, N, K)
    with torch.no_grad():
        at_one = net.score(x, transmission_cost=1.0)
        net.ct_scale.fill_(4.0)
        torch.testing.assert_close(net.score(x, transmission_cost=4.0), at_one)
    features = offloader_features(net.config, x, transmission_cost=4.0)
    torch.testing.assert_close(features[:, :-1], window_features(net.config, x))
    assert features[:, -1].tolist() == [4.0] * 5  # in cost units: the network scales it


def test_a_network_that_does_not_read_c_t_ignores_it() -> None:
    torch.manual_seed(0)
    net = Offloader(ct_input_config()).eval()
    x = torch.rand(5, N, K)
    with torch.no_grad():
        torch.testing.assert_close(net.score(x, transmission_cost=3.0), net.score(x))
    assert not net.reads_transmission_cost and "ct_scale" not in net.state_dict()


def test_only_a_classifier_reads_c_t_and_older_configs_do_not() -> None:
    with pytest.raises(ConfigError, match="transmission_cost_input is for a classifier"):
        OffloaderConfig(kind="regressor", transmission_cost_input=True)
    old = {"n_steps": N, "n_vnfs": K, "hidden": [8], "kind": "classifier", "inputs": "window"}
    assert not OffloaderConfig.from_dict(old).transmission_cost_input
