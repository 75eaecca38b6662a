"""Bundles: tensors + JSON, written atomically, read back without unpickling code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ddnn.config import ConfigError, DDNNConfig
from ddnn.policies import PolicyDefaults
from registry import DDNNBundle, OffloaderBundle, RegistryError
from registry.bundle import CONFIG_FILE, WEIGHTS_FILE
from tests.factories import random_windows
from tests.registry.conftest import offloader_bundle_for

pytestmark = pytest.mark.unit


def windows(config: DDNNConfig) -> torch.Tensor:
    inputs, _ = random_windows(5, config.n_steps, config.n_vnfs, seed=3)
    return torch.from_numpy(inputs)


class Boom:
    """Not a tensor: torch.load(weights_only=True) must refuse to rebuild it."""


def test_ddnn_round_trip_gives_identical_outputs(ddnn_bundle: DDNNBundle, tmp_path: Path) -> None:
    ddnn_bundle.save(tmp_path / "ddnn")
    loaded = DDNNBundle.load(tmp_path / "ddnn")
    x = windows(ddnn_bundle.config)
    before, after = ddnn_bundle.build()(x), loaded.build()(x)
    assert torch.equal(before.y_remote, after.y_remote)
    assert before.y_local is not None and after.y_local is not None
    assert torch.equal(before.y_local, after.y_local)
    assert loaded.config == ddnn_bundle.config and loaded.cost == ddnn_bundle.cost
    assert loaded.metadata == ddnn_bundle.metadata
    assert (loaded.scaler.maximum == ddnn_bundle.scaler.maximum).all()


def test_offloader_round_trip_gives_identical_scores(
    tmp_path: Path, tiny_config: DDNNConfig
) -> None:
    bundle = offloader_bundle_for(tiny_config, "7")
    bundle.save(tmp_path / "off")
    loaded = OffloaderBundle.load(tmp_path / "off")
    x = windows(tiny_config)
    before, after = bundle.build(), loaded.build()
    for key in ("ml", "cost_aware"):
        assert torch.equal(before[key].score(x), after[key].score(x))
        assert not after[key].training
    assert loaded.ddnn_version == "7" and loaded.defaults == bundle.defaults
    assert loaded.defaults.transmission_cost == 0.05


def test_an_offloader_bundle_that_reads_the_edge_round_trips(
    tmp_path: Path, ddnn_bundle: DDNNBundle
) -> None:
    config = ddnn_bundle.config
    bundle = offloader_bundle_for(config, "7", inputs="edge")
    bundle.save(tmp_path / "off")
    loaded = OffloaderBundle.load(tmp_path / "off")
    x = windows(config)
    with torch.no_grad():
        out = ddnn_bundle.build().edge(x)
    before, after = bundle.build(), loaded.build()
    for key in ("ml", "cost_aware"):
        assert after[key].config == before[key].config and after[key].needs_edge
        assert torch.equal(before[key].score(x, out), after[key].score(x, out))


def test_an_offloader_bundle_saved_before_edge_inputs_still_loads(
    tmp_path: Path, tiny_config: DDNNConfig
) -> None:
    bundle = offloader_bundle_for(tiny_config, "7", inputs="summary")
    bundle.save(tmp_path / "off")
    config = json.loads((tmp_path / "off" / CONFIG_FILE).read_text())
    for network in config["networks"].values():
        del network["edge_hidden"]  # the field arrived with inputs="edge"
    (tmp_path / "off" / CONFIG_FILE).write_text(json.dumps(config))
    loaded = OffloaderBundle.load(tmp_path / "off")
    x = windows(tiny_config)
    before, after = bundle.build(), loaded.build()
    for key in ("ml", "cost_aware"):
        assert after[key].config == before[key].config
        assert torch.equal(before[key].score(x), after[key].score(x))


def test_an_offloader_bundle_whose_classifier_reads_c_t_round_trips(
    tmp_path: Path, tiny_config: DDNNConfig
) -> None:
    bundle = offloader_bundle_for(tiny_config, "7", reads_transmission_cost=True)
    bundle.networks["ml"][1]["ct_scale"].fill_(2.5)  # a scale set by training travels with it
    bundle.save(tmp_path / "off")
    loaded = OffloaderBundle.load(tmp_path / "off")
    assert loaded.defaults.ml_reads_transmission_cost and loaded.defaults == bundle.defaults
    before, after = bundle.build()["ml"], loaded.build()["ml"]
    assert after.reads_transmission_cost and float(after.ct_scale) == 2.5
    x = windows(tiny_config)
    for c_t in (0.0, 1.0):
        assert torch.equal(before.score(x, None, c_t), after.score(x, None, c_t))
    assert not torch.equal(after.score(x, None, 0.0), after.score(x, None, 1.0))


def test_an_offloader_bundle_says_what_its_classifier_reads(tiny_config: DDNNConfig) -> None:
    reads = offloader_bundle_for(tiny_config, "7", reads_transmission_cost=True)
    paper = offloader_bundle_for(tiny_config, "7")
    for networks, defaults in ((reads.networks, paper.defaults), (paper.networks, reads.defaults)):
        with pytest.raises(RegistryError, match="ml_reads_transmission_cost"):
            OffloaderBundle(networks, "7", defaults, {})


def test_an_offloader_bundle_saved_before_a_classifier_read_c_t_still_loads(
    tmp_path: Path, tiny_config: DDNNConfig
) -> None:
    bundle = offloader_bundle_for(tiny_config, "7")
    bundle.save(tmp_path / "off")
    config = json.loads((tmp_path / "off" / CONFIG_FILE).read_text())
    del config["defaults"]["ml_reads_transmission_cost"]  # the fields arrived with the lever
    for network in config["networks"].values():
        del network["transmission_cost_input"]
    (tmp_path / "off" / CONFIG_FILE).write_text(json.dumps(config))
    loaded = OffloaderBundle.load(tmp_path / "off")
    assert loaded.defaults == bundle.defaults
    x = windows(tiny_config)
    before, after = bundle.build(), loaded.build()
    for key in ("ml", "cost_aware"):
        assert after[key].config == before[key].config
        assert torch.equal(before[key].score(x), after[key].score(x))


def test_build_is_strict_and_in_eval_mode(ddnn_bundle: DDNNBundle) -> None:
    assert not ddnn_bundle.build().training
    state = dict(ddnn_bundle.state_dict)
    state.pop(next(iter(state)))
    broken = DDNNBundle(ddnn_bundle.config, ddnn_bundle.cost, ddnn_bundle.scaler, state, {})
    with pytest.raises(RegistryError, match="do not fit"):
        broken.build()


def test_load_refuses_pickled_objects(ddnn_bundle: DDNNBundle, tmp_path: Path) -> None:
    ddnn_bundle.save(tmp_path / "ddnn")
    torch.save({"weight": Boom()}, tmp_path / "ddnn" / WEIGHTS_FILE)
    with pytest.raises(RegistryError, match="unsafe"):
        DDNNBundle.load(tmp_path / "ddnn")


def test_load_names_the_problem(ddnn_bundle: DDNNBundle, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not a model bundle"):
        DDNNBundle.load(tmp_path)
    ddnn_bundle.save(tmp_path / "ddnn")
    with pytest.raises(RegistryError, match="expected a 'offloader' bundle"):
        OffloaderBundle.load(tmp_path / "ddnn")
    config = json.loads((tmp_path / "ddnn" / CONFIG_FILE).read_text())
    config["config"]["n_steps"] = "many"
    (tmp_path / "ddnn" / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(RegistryError, match="malformed"):
        DDNNBundle.load(tmp_path / "ddnn")


def test_offloader_bundle_needs_its_defaults_and_networks(
    tiny_config: DDNNConfig, tmp_path: Path
) -> None:
    bundle = offloader_bundle_for(tiny_config, "1")
    with pytest.raises(ConfigError, match="confidence_eta"):
        PolicyDefaults(transmission_cost=0.1, confidence_eta=-1.0)
    with pytest.raises(RegistryError, match="needs networks"):
        OffloaderBundle({"ml": bundle.networks["ml"]}, "1", bundle.defaults, bundle.metadata)
    bundle.save(tmp_path / "off")
    config = json.loads((tmp_path / "off" / CONFIG_FILE).read_text())
    del config["defaults"]
    (tmp_path / "off" / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(RegistryError, match="malformed offloader bundle"):
        OffloaderBundle.load(tmp_path / "off")


def test_bundle_of_an_older_format_is_refused_with_the_remedy(
    ddnn_bundle: DDNNBundle, tmp_path: Path
) -> None:
    ddnn_bundle.save(tmp_path / "ddnn")
    config = json.loads((tmp_path / "ddnn" / CONFIG_FILE).read_text())
    config["format"] = 1
    (tmp_path / "ddnn" / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(RegistryError, match="format 1.*retrain"):
        DDNNBundle.load(tmp_path / "ddnn")


def test_save_replaces_a_bundle_and_leaves_no_staging_folder(
    ddnn_bundle: DDNNBundle, tmp_path: Path
) -> None:
    ddnn_bundle.save(tmp_path / "ddnn")
    ddnn_bundle.save(tmp_path / "ddnn")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddnn"]
    assert sorted(p.name for p in (tmp_path / "ddnn").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]


def test_metadata_must_be_plain_json(ddnn_bundle: DDNNBundle, tmp_path: Path) -> None:
    bad = DDNNBundle(
        ddnn_bundle.config,
        ddnn_bundle.cost,
        ddnn_bundle.scaler,
        ddnn_bundle.state_dict,
        {"x": Boom()},
    )
    with pytest.raises(RegistryError, match="plain JSON"):
        bad.save(tmp_path / "ddnn")
    assert not list(tmp_path.iterdir())
