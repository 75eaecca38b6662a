"""The paper's key observations 1-7, each marked yes / no / partly from a case's summary.json,
with the number and interval behind it and, where ours differs, the likely reason."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ddnn.policies import CONFIDENCE, COST_AWARE, ML

REALIZABLE = (CONFIDENCE.name, ML.name, COST_AWARE.name)
YES, PARTLY, NO = "yes", "partly", "no"
Verdict = tuple[str, str]


def _ci(values: list[float]) -> str:
    return f"[{values[0]:+.3f}, {values[1]:+.3f}]"


def obs1_local_exit_helps_the_remote(s: Mapping[str, Any]) -> Verdict:
    block = s["comparisons"]["remote_vs_centralized"]
    value, lo = block["relative"], block["ci"][0]
    verdict = YES if lo > 0 and value >= 0.2 else PARTLY if lo > 0 else NO
    text = (
        f"joint training with a local exit makes the remote exit {value:+.1%} cheaper than the "
        f"centralized LSTM, interval {_ci(block['ci'])} (the paper: 20-50 % cheaper)."
    )
    if verdict != YES:
        text += (
            " Likely reason: with the recipe's residual on the last value, both models sit close "
            "to persistence plus a learned correction, which leaves the local exit's "
            "regularising effect on the gradients little to improve."
        )
    return verdict, text


def obs2_free_local_share(s: Mapping[str, Any]) -> Verdict:
    policies = s["policies"]
    best = max(REALIZABLE, key=lambda p: policies[p]["share_local_at_reference"])
    block = policies[best]
    share, lo = block["share_local_at_reference"], block["share_local_at_reference_ci"][0]
    strict = block["share_local_at_best"]
    verdict = YES if share >= 0.4 and lo > 0 else PARTLY if lo > 0 else NO
    text = (
        f"the best realizable policy ({best}) resolves {share:.0%} of the windows locally at no "
        f"more than the centralized LSTM's cost, interval [{lo:.2f}, "
        f"{block['share_local_at_reference_ci'][1]:.2f}] (the paper: about 40 % 'for free'); "
        f"against the strict reference ({s['references']['strict']}) it is {strict:.0%}."
    )
    if verdict != YES:
        text += (
            " Likely reason: the two exits are close (see the costs), so there is little to gain "
            "by choosing well, and the offloaders learn from a short validation period."
        )
    return verdict, text


def obs3_ml_beats_confidence(s: Mapping[str, Any]) -> Verdict:
    rows = s["ml_minus_confidence"]
    better = [r for r in rows if r[3] < 0]
    worse = [r for r in rows if r[2] > 0]
    verdict = YES if len(better) == len(rows) else PARTLY if better else NO
    shares = ", ".join(f"{r[0]:.1f}" for r in better) or "none"
    text = (
        f"ML is significantly cheaper than confidence at shares {shares} of "
        f"{len(rows)} (the paper: at every share)"
    )
    text += (
        f"; significantly dearer at {', '.join(f'{r[0]:.1f}' for r in worse)}." if worse else "."
    )
    if verdict != YES:
        text += (
            " Likely reason: the classifier learns the benefit C_L - C_R from the raw window and "
            "a few hundred validation windows; with close exits its labels are mostly noise."
        )
    return verdict, text


def obs4_weights_matter(s: Mapping[str, Any]) -> Verdict:
    pairs = s.get("weight_pairs", {})
    diffs = {k: v for k, v in pairs.items() if "_minus_" in k}
    if not diffs:
        return PARTLY, "only one weight pair was trained in this study."
    significant = {k: v for k, v in diffs.items() if v["ci"][0] > 0 or v["ci"][1] < 0}
    scale = s["costs"]["all_remote"]
    large = {k: v for k, v in significant.items() if abs(v["difference"]) >= 0.05 * scale}
    listing = "; ".join(f"{k}: {v['difference']:+.4f} {_ci(v['ci'])}" for k, v in diffs.items())
    verdict = YES if large else PARTLY if significant else NO
    return verdict, (
        f"differences between weight pairs (first pair minus the other): {listing} "
        "(yes: an interval away from 0 and at least 5 % of the remote exit's cost)."
    )


def obs5_local_weight_first(s: Mapping[str, Any]) -> Verdict:
    pairs = s.get("weight_pairs", {})
    high, low = pairs.get("0.9", {}).get("all_local"), pairs.get("0.1", {}).get("all_local")
    if high is None or low is None:
        return PARTLY, "needs the pairs (0.9, 0.1) and (0.1, 0.9)."
    beats = high["ci"][0] > 0
    verdict = YES if beats and not low["ci"][0] > 0 else PARTLY if beats else NO
    return verdict, (
        f"the local exit vs the centralized LSTM (1 - local / centralized): at w_L = 0.9 "
        f"{high['relative_to_centralized']:+.1%} {_ci(high['ci'])}, at w_L = 0.1 "
        f"{low['relative_to_centralized']:+.1%} {_ci(low['ci'])} (the paper: only w_L > w_R "
        "lets the local exit beat the centralized DNN)."
    )


def obs6_few_violations(s: Mapping[str, Any]) -> Verdict:
    under = s.get("under_provisioned", {})
    if not under:
        return PARTLY, "not measured in this run."
    worst = max(under.values(), key=lambda v: v["ci"][1])
    verdict = YES if worst["ci"][1] < 0.5 else NO
    listing = "; ".join(f"{k} {v['share']:.1%}" for k, v in under.items())
    return verdict, (
        f"share of allocations below the demand (an MSE model would be near 50 %): {listing}; "
        f"the highest interval ends at {worst['ci'][1]:.1%}."
    )


def obs7_latency(s: Mapping[str, Any]) -> Verdict:
    latency = s["latency_ms"]
    shares = sorted(int(k) for k in latency if k.isdigit())
    values = [latency[str(k)] for k in shares]
    decreasing = all(a > b for a, b in zip(values, values[1:], strict=False))
    at_half = latency.get("50")
    central = latency.get("centralized_lstm")
    text = f"T falls from {values[0]:.2f} ms at {shares[0]} % local to {values[-1]:.2f} ms at {shares[-1]} %"
    if at_half is not None and central:
        text += f"; at 50 % it is {1 - at_half / central:.0%} below the centralized LSTM's {central:.2f} ms"
    return (YES if decreasing else NO), text + " (measured compute times, the paper's RTT)."


OBSERVATIONS: tuple[Callable[[Mapping[str, Any]], Verdict], ...] = (
    obs1_local_exit_helps_the_remote,
    obs2_free_local_share,
    obs3_ml_beats_confidence,
    obs4_weights_matter,
    obs5_local_weight_first,
    obs6_few_violations,
    obs7_latency,
)


def key_observations(summary: Mapping[str, Any]) -> list[Verdict]:
    return [observation(summary) for observation in OBSERVATIONS]
