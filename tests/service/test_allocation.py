"""Unit tests of service.allocation's pure steps: decode, scale, sentences, encode."""

from __future__ import annotations

import asyncio
import time
import warnings

import numpy as np
import pytest
import torch

from ddnn.policies import (
    COST_AWARE,
    ONLINE_POLICY_NAMES,
    Decision,
    PolicyOverrides,
)
from service.allocation import Prediction, _sentence, encode_batch, encode_single, predict
from service.cloud import SimulatedLink
from service.decode import InvalidDemand, decode_demand, decode_windows, scale_windows
from service.pair import PolicyOptions, ServingPair
from tests.factories import demand_payload
from tests.service.conftest import K, N, make_serving_pair

pytestmark = pytest.mark.unit


@pytest.fixture
def pair() -> ServingPair:
    return make_serving_pair()


def test_scale_windows_matches_scaler_transform(pair: ServingPair) -> None:
    windows = np.asarray([demand_payload(N, K, seed=s) for s in range(3)])
    scaled = scale_windows(windows, pair)
    expected = pair.scaler.transform(windows.transpose(0, 2, 1))
    assert scaled.shape == (3, N, K) and scaled.dtype == torch.float32
    np.testing.assert_allclose(scaled.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_decode_demand_too_large_value_rejected(pair: ServingPair) -> None:
    demand = demand_payload(N, K)
    demand[0][1] = 1e35
    with pytest.raises(InvalidDemand, match=r"demand\[0\]\[1\] = 1e\+35 is too large"):
        decode_demand(demand, pair)


def test_decode_demand_returns_batch_of_one(pair: ServingPair) -> None:
    windows = decode_demand(demand_payload(N, K), pair)
    assert windows.shape == (1, K, N)


def test_decode_windows_ragged_batch_names_window(pair: ServingPair) -> None:
    windows = [demand_payload(N, K, seed=s) for s in range(2)]
    windows[1] = windows[1][:2]
    with pytest.raises(InvalidDemand, match=r"windows\[1\] holds 2 lists; the model needs K=4"):
        decode_windows(windows, None, pair, max_batch=8)


def test_sentence_fallback_says_local_exit_and_why() -> None:
    decision = Decision(COST_AWARE, np.array([False]), np.array([0.3]), 0.1)
    text = _sentence(decision, 0, "the cloud did not answer within 50 ms")
    assert text.startswith("The cost_aware policy chose the cloud (predicted C_L - C_R = 0.3")
    assert text.endswith(
        "but the cloud did not answer within 50 ms, so the edge answered with its local exit."
    )


@pytest.mark.parametrize("policy", ONLINE_POLICY_NAMES)
def test_encoded_answers_fit_their_schemas_without_serializer_warnings(
    pair: ServingPair, policy: str
) -> None:
    windows = np.asarray([demand_payload(N, K, seed=s) for s in range(3)], dtype=np.float64)
    options = PolicyOptions(
        default_policy=COST_AWARE, overrides=PolicyOverrides(), rng=np.random.default_rng(0)
    )

    async def run() -> Prediction:
        link = SimulatedLink(pair.cloud, rtt_ms=0.0, jitter_ms=0.0)
        try:
            return await predict(
                pair=pair,
                link=link,
                windows=windows,
                policy=policy,
                requested_cost=0.7,
                options=options,
                cloud_timeout_s=5.0,
                started=time.perf_counter(),
            )
        finally:
            await pair.close()

    prediction = asyncio.run(run())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the batch answer is built with model_construct
        for answer in (encode_batch(prediction), encode_single(prediction)):
            raw = answer.__pydantic_serializer__.to_json(answer)
            assert type(answer).model_validate_json(raw) == answer
