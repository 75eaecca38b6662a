"""Shapes of every model, gradient flow across the edge/cloud split, and input checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ddnn.baselines import BASELINES, grid_shape
from ddnn.config import CALENDAR_FEATURES, ConfigError, CostConfig, DDNNConfig
from ddnn.losses import joint_loss
from ddnn.model import DDNN, WindowTransform, check_window

pytestmark = pytest.mark.unit

SMALL = {"cloud_hidden": (8, 4), "head_hidden": (8, 4, 4)}
SHAPES = [(6, 1), (12, 4), (24, 16), (10, 6)]


@pytest.mark.parametrize(("n", "k"), SHAPES)
@pytest.mark.parametrize("variant", ["paper", "default", "window_norm"])
def test_ddnn_exits_have_shape_b_k(n: int, k: int, variant: str) -> None:
    config = {
        "paper": DDNNConfig.paper(n_steps=n, n_vnfs=k, **SMALL),
        "default": DDNNConfig(n_steps=n, n_vnfs=k, **SMALL),
        "window_norm": DDNNConfig(n_steps=n, n_vnfs=k, window_norm=True, **SMALL),
    }[variant]
    out = DDNN(config)(torch.rand(3, n, k))
    assert out.y_local is not None and out.z is not None
    assert out.y_local.shape == (3, k)
    assert out.y_remote.shape == (3, k)
    assert out.z.shape == (3, n, config.edge_hidden)


@pytest.mark.parametrize(("n", "k"), SHAPES)
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_has_remote_exit_only(name: str, n: int, k: int) -> None:
    model = BASELINES[name](DDNNConfig(n_steps=n, n_vnfs=k, **SMALL))
    out = model(torch.rand(2, n, k))
    assert out.y_remote.shape == (2, k)
    assert out.y_local is None


def test_edge_and_cloud_compose_to_ddnn(tiny_ddnn: DDNN) -> None:
    x = torch.rand(5, tiny_ddnn.config.n_steps, tiny_ddnn.config.n_vnfs)
    edge = tiny_ddnn.edge(x)
    whole = tiny_ddnn(x)
    assert whole.y_local is not None
    torch.testing.assert_close(edge.y_local, whole.y_local)
    torch.testing.assert_close(tiny_ddnn.cloud(edge.z, edge.context), whole.y_remote)


def test_context_size_matches_what_crosses_the_network() -> None:
    for config in (DDNNConfig.paper(), DDNNConfig(), DDNNConfig(window_norm=True)):
        edge = DDNN(dataclasses.replace(config, **SMALL)).edge(
            torch.rand(2, config.n_steps, config.n_vnfs)
        )
        assert edge.context.shape == (2, config.context_size)
        assert config.uplink_floats == config.n_steps + config.context_size
    assert (
        DDNNConfig.paper().uplink_floats * 16 == 144 * 16
    )  # z alone: 16x less than N*K raw samples


def test_remote_loss_reaches_edge_lstm(tiny_config: DDNNConfig, cost: CostConfig) -> None:
    model = DDNN(tiny_config)
    x, d = torch.rand(8, tiny_config.n_steps, tiny_config.n_vnfs), torch.rand(8, tiny_config.n_vnfs)
    loss, _ = joint_loss(model(x), d, w_local=0.0, cost=cost)  # remote loss only
    loss.backward()
    edge_grad = model.edge.lstm.weight_ih_l0.grad
    assert edge_grad is not None and edge_grad.abs().sum() > 0
    assert (
        model.edge.local_head.weight.grad is None
        or model.edge.local_head.weight.grad.abs().sum() == 0
    )


def test_local_loss_does_not_touch_cloud(tiny_config: DDNNConfig, cost: CostConfig) -> None:
    model = DDNN(tiny_config)
    x, d = torch.rand(8, tiny_config.n_steps, tiny_config.n_vnfs), torch.rand(8, tiny_config.n_vnfs)
    loss, parts = joint_loss(model(x), d, w_local=1.0, cost=cost)
    loss.backward()
    assert model.edge.local_head.weight.grad is not None
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.cloud.parameters())
    assert set(parts) == {"local", "remote", "joint"}


def test_joint_loss_weights_mix_the_exits(tiny_ddnn: DDNN, cost: CostConfig) -> None:
    x, d = torch.rand(8, 12, 4), torch.rand(8, 4)
    out = tiny_ddnn(x)
    loss, parts = joint_loss(out, d, w_local=0.3, cost=cost)
    assert loss.item() == pytest.approx(0.3 * parts["local"] + 0.7 * parts["remote"], rel=1e-5)
    with pytest.raises(ValueError, match="w_local"):
        joint_loss(out, d, w_local=1.5, cost=cost)


def test_residual_output_starts_near_last_value() -> None:
    config = DDNNConfig(n_steps=6, n_vnfs=2, **SMALL)
    x = torch.rand(4, 6, 2)
    prepared, context = DDNN(config).edge.transform.prepare(x)
    restored = DDNN(config).edge.transform.restore(torch.zeros(4, 2), context)
    torch.testing.assert_close(restored, x[:, -1, :])
    torch.testing.assert_close(prepared, x)


def test_window_norm_round_trips_the_window_mean() -> None:
    config = DDNNConfig(n_steps=6, n_vnfs=2, output_mode="direct", window_norm=True, **SMALL)
    transform = DDNN(config).edge.transform
    x = torch.rand(4, 6, 2)
    prepared, context = transform.prepare(x)
    torch.testing.assert_close(prepared.mean(dim=1), torch.zeros(4, 2), atol=1e-6, rtol=0)
    torch.testing.assert_close(transform.restore(torch.zeros(4, 2), context), x.mean(dim=1))


def test_mc_exits_vary_with_dropout(tiny_ddnn: DDNN) -> None:
    out = tiny_ddnn.edge(torch.rand(3, 12, 4))
    passes = tiny_ddnn.edge.mc_local_exits(out.z, out.context)
    assert passes.shape == (tiny_ddnn.config.mc_passes, 3, 4)
    assert passes.std(dim=0).sum() > 0


@pytest.mark.parametrize(
    ("k", "shape"), [(16, (4, 4)), (12, (3, 4)), (2, (1, 2)), (7, (1, 7)), (1, (1, 1))]
)
def test_grid_shape_layout(k: int, shape: tuple[int, int]) -> None:
    assert grid_shape(k) == shape


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(2, 12, 5), "shape"),
        (torch.rand(12, 4), "shape"),
        (torch.full((1, 12, 4), float("nan")), "NaN"),
    ],
)
def test_check_window_rejects_bad_input(
    tiny_config: DDNNConfig, x: torch.Tensor, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_window(x, tiny_config)


def test_config_round_trips_and_rejects_unknown_fields() -> None:
    config = DDNNConfig(n_steps=10, cloud_hidden=(4, 2))
    assert DDNNConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown"):
        DDNNConfig.from_dict({"n_step": 3})
    with pytest.raises(ConfigError, match="mc_dropout"):
        DDNNConfig(mc_dropout=1.5)


MEMORY = {"n_steps": 6, "n_vnfs": 4, "steps_per_day": 8, "memory_days": 2, **SMALL}


def test_memory_holds_each_days_slot_and_its_change() -> None:
    config = DDNNConfig(**MEMORY)
    assert config.window_length == 2 * 8 + 1
    x = torch.rand(3, config.window_length, config.n_vnfs)
    _, context = DDNN(config).edge.transform.prepare(x)
    assert context.shape == (3, config.context_size)
    memory = context[:, config.n_vnfs :].reshape(3, 4, config.n_vnfs)  # after the last value
    length, last = config.window_length, x[:, -1, :]
    for day in (1, 2):
        slot = length - day * config.steps_per_day  # the target's row, `day` days back
        torch.testing.assert_close(memory[:, day - 1], x[:, slot] - last)
        torch.testing.assert_close(memory[:, 2 + day - 1], x[:, slot] - x[:, slot - 1])


def test_memory_reaches_the_cloud_and_never_the_local_exit() -> None:
    torch.manual_seed(0)
    model = DDNN(DDNNConfig(**MEMORY, zero_init_exit=False)).eval()
    x = torch.rand(2, model.config.window_length, 4)
    older = x.clone()
    older[:, : -model.config.n_steps] += 1.0  # change only what lies before the edge's N steps
    a, b = model(x), model(older)
    assert a.y_local is not None and b.y_local is not None
    torch.testing.assert_close(a.y_local, b.y_local)
    assert not torch.allclose(a.y_remote, b.y_remote)
    for name in sorted(BASELINES):  # the centralized baselines get the same memory
        baseline = BASELINES[name](model.config).eval()
        assert not torch.allclose(baseline(x).y_remote, baseline(older).y_remote), name


def test_memory_needs_the_cloud_to_see_the_context() -> None:
    with pytest.raises(ConfigError, match="memory_days"):
        DDNNConfig(**MEMORY, cloud_sees_context=False)
    with pytest.raises(ValueError, match="cannot hold 2 days"):
        DDNN(DDNNConfig(**MEMORY)).edge.transform.prepare(torch.rand(1, 10, 4))


def test_hierarchical_cloud_sees_every_site_and_the_local_exit_its_own() -> None:
    torch.manual_seed(0)
    config = DDNNConfig(n_steps=6, n_vnfs=4, sites=3, zero_init_exit=False, **SMALL)
    x = torch.rand(2, 6, config.window_width)
    peers_changed = x.clone()
    peers_changed[:, :, 4:] += 1.0  # another site's demand only
    check_window(x, config)
    for model in (DDNN(config), *(BASELINES[n](config) for n in ("centralized_lstm",))):
        model.eval()
        a, b = model(x), model(peers_changed)
        assert a.y_remote.shape == (2, 4)
        assert not torch.allclose(a.y_remote, b.y_remote)
        if a.y_local is not None and b.y_local is not None:
            torch.testing.assert_close(a.y_local, b.y_local)
    wide = BASELINES["centralized_lstm_wide"](config).eval()
    assert not torch.allclose(wide(x).y_remote, wide(peers_changed).y_remote)
    with pytest.raises(ConfigError, match="one site"):
        BASELINES["deepcog"](config)


def test_calendar_reaches_every_cloud_side_model_and_never_the_local_exit() -> None:
    torch.manual_seed(0)
    config = DDNNConfig(n_steps=6, n_vnfs=4, calendar=True, zero_init_exit=False, **SMALL)
    assert config.window_width == 4 + CALENDAR_FEATURES
    assert config.context_size == 4 + CALENDAR_FEATURES  # the last value, then the calendar
    x = torch.rand(2, 6, config.window_width)
    other_time = x.clone()
    other_time[:, -1, 4:] += 1.0  # only the target's calendar
    earlier_rows = x.clone()
    earlier_rows[:, :-1, 4:] += 1.0  # only the calendar of the steps before the target
    check_window(x, config)
    model = DDNN(config).eval()
    _, context = model.edge.transform.prepare(x)
    torch.testing.assert_close(context[:, 4:], x[:, -1, 4:])
    a, b, c = model(x), model(other_time), model(earlier_rows)
    assert a.y_local is not None and b.y_local is not None
    torch.testing.assert_close(a.y_local, b.y_local)
    torch.testing.assert_close(a.y_remote, c.y_remote)
    assert not torch.allclose(a.y_remote, b.y_remote)
    for name in sorted(BASELINES):  # the centralized baselines get the same calendar
        baseline = BASELINES[name](config).eval()
        assert not torch.allclose(baseline(x).y_remote, baseline(other_time).y_remote), name
    with pytest.raises(ConfigError, match="calendar"):
        DDNNConfig(calendar=True, cloud_sees_context=False)


@pytest.mark.parametrize("window_norm", [False, True])
def test_a_peer_s_edge_input_is_what_the_served_site_s_encoder_reads(window_norm: bool) -> None:
    config = DDNNConfig(n_steps=6, n_vnfs=3, sites=2, calendar=True, window_norm=window_norm)
    transform = WindowTransform(config)
    x = torch.rand(4, config.window_length, config.window_width)
    served, peer = x[:, :, :3], x[:, :, 3:6]
    torch.testing.assert_close(transform.edge_input(served), transform.prepare(x)[0])
    assert transform.edge_input(peer).shape == (4, 6, 3)
    assert not torch.equal(transform.edge_input(peer), transform.edge_input(served))
