"""Every policy: one table, one Decision contract, a readable reason, decisions monotone in the
knob, and one resolution order for the knobs (request -> settings -> bundle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddnn.config import ConfigError, DDNNConfig, OffloaderConfig
from ddnn.cost import ExitCosts
from ddnn.model import DDNN
from ddnn.offloader import Offloader
from ddnn.policies import (
    CONFIDENCE,
    COST_AWARE,
    CURVE_POLICIES,
    LOCAL,
    ML,
    OFFLOADER_NETWORKS,
    ONLINE_POLICY_NAMES,
    ORACLE,
    POLICIES,
    RANDOM,
    REMOTE,
    Evidence,
    MissingEvidence,
    Policy,
    PolicyDefaults,
    PolicyOverrides,
    online_policy,
    resolve_knobs,
    uncertainty,
)

pytestmark = pytest.mark.unit

DEFAULTS = PolicyDefaults(transmission_cost=0.1, confidence_eta=0.02)
KNOBS = resolve_knobs(DEFAULTS)


def shares(decisions: list[float]) -> np.ndarray:
    return np.array(decisions)


def oracle_at(c_l: np.ndarray, c_r: np.ndarray, c_t: float) -> np.ndarray:
    return ORACLE.decide(
        Evidence(len(c_l), benefit=c_l - c_r),
        resolve_knobs(DEFAULTS, PolicyOverrides(transmission_cost=c_t)),
    ).local


def test_the_table_names_every_policy_once() -> None:
    assert list(POLICIES) == [
        "oracle",
        "random",
        "confidence",
        "ml",
        "cost_aware",
        "local",
        "remote",
    ]
    assert "oracle" not in ONLINE_POLICY_NAMES and len(ONLINE_POLICY_NAMES) == 6
    assert [p.name for p in CURVE_POLICIES] == [
        "oracle",
        "random",
        "confidence",
        "ml",
        "cost_aware",
    ]
    assert OFFLOADER_NETWORKS == {"ml": "classifier", "cost_aware": "regressor"}
    assert online_policy("ml") is ML
    with pytest.raises(ConfigError, match="unknown policy 'oracle'"):
        online_policy("oracle")


def test_oracle_goes_remote_iff_benefit_exceeds_transmission_cost() -> None:
    decision = ORACLE.decide(
        Evidence(3, benefit=np.array([1.0, 3.0, 2.0]) - np.array([0.5, 0.5, 1.0])),
        resolve_knobs(DEFAULTS, PolicyOverrides(transmission_cost=1.0)),
    )
    # benefits 0.5, 2.5, 1.0 (boundary stays local)
    assert decision.local.tolist() == [True, False, True]
    assert decision.score.tolist() == [0.5, 2.5, 1.0]
    assert "C_L - C_R = 2.5" in decision.reason(1) and "remotely" in decision.reason(1)
    assert ORACLE.rule == "local iff C_L - C_R <= C_T"


def test_oracle_share_grows_with_transmission_cost(rng: np.random.Generator) -> None:
    c_l, c_r = rng.random(200), rng.random(200)
    got = shares([oracle_at(c_l, c_r, c).mean() for c in np.linspace(-1, 1, 21)])
    assert np.all(np.diff(got) >= 0) and got[0] == 0.0 and got[-1] == 1.0


def test_random_share_grows_with_p_and_is_seeded() -> None:
    def share(p: float, seed: int = 1, batch: int = 2000) -> np.ndarray:
        knobs = resolve_knobs(DEFAULTS, PolicyOverrides(random_p_local=p))
        return RANDOM.decide(Evidence(batch, rng=np.random.default_rng(seed)), knobs).local

    got = shares([share(p).mean() for p in (0.0, 0.3, 0.7, 1.0)])
    assert got[0] == 0.0 and got[-1] == 1.0 and np.all(np.diff(got) > 0)
    assert abs(got[1] - 0.3) < 0.05
    assert np.array_equal(share(0.5, seed=7, batch=50), share(0.5, seed=7, batch=50))


def test_confidence_share_grows_with_eta(tiny_config: DDNNConfig) -> None:
    torch.manual_seed(0)
    model = DDNN(tiny_config).eval()
    out = model.edge(torch.rand(64, tiny_config.n_steps, tiny_config.n_vnfs))
    u = uncertainty(model.edge, out).numpy()
    assert u.shape == (64,) and np.all(u > 0)
    etas = np.quantile(u, [0.0, 0.25, 0.5, 0.75]).tolist() + [float(u.max()) + 1]
    got = shares([CONFIDENCE.decide_on(u, eta).share_local for eta in etas])
    assert np.all(np.diff(got) >= 0) and got[0] == 0.0 and got[-1] == 1.0
    evidence = Evidence(64, edge=model.edge, edge_out=out)
    live = CONFIDENCE.decide(evidence, resolve_knobs(DEFAULTS, PolicyOverrides(confidence_eta=1e9)))
    assert live.local.all() and "uncertainty U" in live.reason(0)


@pytest.mark.parametrize("policy", [ML, COST_AWARE], ids=lambda p: p.name)
def test_offloader_decision_contract(policy: Policy) -> None:
    torch.manual_seed(0)
    kind = OFFLOADER_NETWORKS[policy.name]
    offloader = Offloader(OffloaderConfig(n_steps=12, n_vnfs=4, kind=kind)).eval()
    x = torch.rand(32, 12, 4)
    evidence = Evidence(32, x=x, offloaders={policy.name: offloader})
    decision = policy.decide(evidence, KNOBS)
    assert decision.local.shape == (32,) and decision.score.shape == (32,)
    expected = decision.score >= 0.5 if policy is ML else decision.score <= 0.1
    assert np.array_equal(decision.local, expected)
    assert f"{decision.threshold:.4g}" in decision.reason(0)


def test_cost_aware_share_grows_with_request_transmission_cost() -> None:
    torch.manual_seed(0)
    offloader = Offloader(OffloaderConfig(n_steps=12, n_vnfs=4, kind="regressor")).eval()
    x = torch.rand(64, 12, 4)
    scores = offloader.score(x).detach().numpy()
    evidence = Evidence(64, x=x, offloaders={"cost_aware": offloader})
    c_ts = np.quantile(scores, [0.0, 0.3, 0.6, 1.0])
    got = shares(
        [
            COST_AWARE.decide(
                evidence, resolve_knobs(DEFAULTS, PolicyOverrides(transmission_cost=float(c)))
            ).share_local
            for c in c_ts
        ]
    )
    assert np.all(np.diff(got) > 0) and got[-1] == 1.0


def test_fixed_policies() -> None:
    assert LOCAL.decide(Evidence(3), KNOBS).local.all()
    assert not REMOTE.decide(Evidence(3), KNOBS).local.any()
    assert "every sample remotely" in REMOTE.decide(Evidence(1), KNOBS).reason(0)
    assert LOCAL.rule == "always local"


def test_a_policy_without_its_evidence_says_what_it_needs() -> None:
    with pytest.raises(MissingEvidence, match="ml policy needs its offloader network 'ml'"):
        ML.decide(Evidence(2, x=torch.rand(2, 12, 4)), KNOBS)
    with pytest.raises(MissingEvidence, match="oracle policy needs the true C_L - C_R"):
        ORACLE.decide(Evidence(2), KNOBS)


def test_oracle_rule_labels_like_the_paper() -> None:
    """The classifier's labels are the oracle's rule: class 1 (local) iff C_T >= C_L - C_R."""
    labels = ORACLE.local(np.array([1.0, 3.0, 2.0]) - np.array([0.5, 0.5, 1.0]), 1.0)
    assert labels.tolist() == [True, False, True]


def test_knobs_resolve_request_then_settings_then_bundle() -> None:
    request = PolicyOverrides(transmission_cost=0.3)
    settings = PolicyOverrides(transmission_cost=0.2, confidence_eta=0.5)
    knobs = resolve_knobs(DEFAULTS, request, settings)
    assert knobs.transmission_cost == 0.3 and knobs.confidence_eta == 0.5
    assert knobs.ml_transmission_cost == 0.1  # the classifier's C_T is fixed by training
    assert resolve_knobs(DEFAULTS, PolicyOverrides(), settings).transmission_cost == 0.2
    # 0 is a value, not "unset"
    assert resolve_knobs(DEFAULTS, PolicyOverrides(transmission_cost=0.0)).transmission_cost == 0
    bundle_only = resolve_knobs(DEFAULTS)
    assert (bundle_only.transmission_cost, bundle_only.confidence_eta) == (0.1, 0.02)
    assert ML.governing_cost(knobs) == 0.1 and COST_AWARE.governing_cost(knobs) == 0.3
    assert CONFIDENCE.governing_cost(knobs) is None


@pytest.mark.parametrize("policy", [CONFIDENCE, ML, COST_AWARE], ids=lambda p: p.name)
def test_thresholds_sweep_every_distinct_operating_point(
    policy: object, rng: np.random.Generator
) -> None:
    scores = np.round(rng.random(50), 1)  # ties on purpose
    sweep = policy.thresholds(scores)  # type: ignore[attr-defined]
    masks = {tuple(policy.local(scores, t)) for t in sweep}  # type: ignore[attr-defined]
    assert len(masks) == len(np.unique(scores)) + 1  # every share from 0 to all local
    assert {sum(m) for m in masks} >= {0, 50}
    assert len(policy.thresholds(scores, points=5)) <= 6  # type: ignore[attr-defined]


def test_best_threshold_minimises_cost_including_transmission() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    costs = ExitCosts(local=np.array([1.0, 1.0, 5.0, 5.0]), remote=np.array([2.0, 2.0, 1.0, 1.0]))
    # local iff U < eta: keeping the first two local and offloading the rest is cheapest
    eta = CONFIDENCE.best_threshold(scores, costs, transmission_cost=0.5, points=None)
    assert CONFIDENCE.local(scores, eta).tolist() == [True, True, False, False]
    # a huge C_T makes every sample local
    eta = CONFIDENCE.best_threshold(scores, costs, transmission_cost=100.0, points=None)
    assert CONFIDENCE.local(scores, eta).all()


@pytest.mark.parametrize("policy", [ML, COST_AWARE], ids=lambda p: p.name)
def test_an_edge_offloader_scores_with_the_edge_output(policy: Policy, tiny_ddnn: DDNN) -> None:
    config = tiny_ddnn.config
    kind = OFFLOADER_NETWORKS[policy.name]
    offloader = Offloader(
        OffloaderConfig(n_steps=config.n_steps, n_vnfs=config.n_vnfs, kind=kind, inputs="edge")
    ).eval()
    x = torch.rand(16, config.window_length, config.n_vnfs)
    with torch.no_grad():
        out = tiny_ddnn.edge(x)
        expected = offloader.score(x, out).numpy()
    evidence = Evidence(16, x=x, edge_out=out, offloaders={policy.name: offloader})
    decision = policy.decide(evidence, KNOBS)
    np.testing.assert_allclose(decision.score, expected, rtol=1e-6)
    without = Evidence(16, x=x, offloaders={policy.name: offloader})
    with pytest.raises(MissingEvidence, match=f"{policy.name} policy needs the edge output"):
        policy.decide(without, KNOBS)


def test_the_evidence_runs_the_edge_only_for_a_policy_that_reads_it(tiny_ddnn: DDNN) -> None:
    config = tiny_ddnn.config
    window = Offloader(OffloaderConfig(n_steps=config.n_steps, n_vnfs=config.n_vnfs)).eval()
    reader = Offloader(
        OffloaderConfig(n_steps=config.n_steps, n_vnfs=config.n_vnfs, inputs="edge")
    ).eval()
    x = torch.rand(8, config.window_length, config.n_vnfs)
    with torch.no_grad():
        evidence = Evidence(8, x=x, edge=tiny_ddnn.edge.eval(), offloaders={ML.name: window})
        ML.decide(evidence, KNOBS)
        assert evidence.edge_out is None  # the window network read no edge output
        evidence = Evidence(8, x=x, edge=tiny_ddnn.edge, offloaders={ML.name: reader})
        decision = ML.decide(evidence, KNOBS)
        out = evidence.edge_out
        assert out is not None and evidence.edge_output() is out  # computed once, then kept
        torch.testing.assert_close(out.y_local, tiny_ddnn.edge(x).y_local)
        np.testing.assert_allclose(decision.score, reader.score(x, out).numpy(), rtol=1e-6)


def test_a_classifier_that_reads_c_t_is_governed_by_the_decision_s_c_t() -> None:
    defaults = PolicyDefaults(0.1, confidence_eta=0.02, ml_reads_transmission_cost=True)
    knobs = resolve_knobs(defaults, PolicyOverrides(transmission_cost=0.3))
    assert knobs.ml_transmission_cost == 0.3 and ML.governing_cost(knobs) == 0.3
    assert resolve_knobs(defaults).ml_transmission_cost == 0.1  # no override: the bundle's C_T
    torch.manual_seed(0)
    config = OffloaderConfig(n_steps=12, n_vnfs=4, transmission_cost_input=True)
    offloader = Offloader(config).eval()
    x = torch.rand(16, 12, 4)
    scores = {}
    for c_t in (0.0, 5.0):
        evidence = Evidence(16, x=x, offloaders={ML.name: offloader}, transmission_cost=c_t)
        scores[c_t] = ML.decide(evidence, knobs).score
        with torch.no_grad():
            expected = offloader.score(x, transmission_cost=c_t).numpy()
        np.testing.assert_allclose(scores[c_t], expected, rtol=1e-6)
    assert not np.allclose(scores[0.0], scores[5.0])
    with pytest.raises(MissingEvidence, match="ml policy needs the decision's C_T"):
        ML.decide(Evidence(16, x=x, offloaders={ML.name: offloader}), knobs)


def test_defaults_saved_before_a_classifier_read_c_t_still_load() -> None:
    old = {"transmission_cost": 0.1, "confidence_eta": 0.02, "ml_threshold": 0.5}
    defaults = PolicyDefaults.from_dict(old)
    assert not defaults.ml_reads_transmission_cost
    assert PolicyDefaults.from_dict(defaults.to_dict()) == defaults
