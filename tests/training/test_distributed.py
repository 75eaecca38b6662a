"""training.distributed without a process group: torchrun's environment, shards, no-ops alone.

The real thing (torchrun, 2 ranks on gloo, against one process) is tests/e2e/test_torchrun.py.
"""

from __future__ import annotations

import pytest
import torch

from training import distributed

pytestmark = pytest.mark.unit


def test_launch_context_reads_torchrun_environment() -> None:
    alone = distributed.launch_context({}, device="cpu")
    assert (alone.rank, alone.world_size, alone.is_main, alone.enabled) == (0, 1, True, False)
    second = distributed.launch_context(
        {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}, device="cpu"
    )
    assert (second.rank, second.world_size, second.local_rank, second.is_main) == (3, 4, 1, False)
    assert second.device == "cpu"


def test_launch_context_gives_each_cuda_rank_its_own_gpu() -> None:
    context = distributed.launch_context(
        {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, device="cuda"
    )
    assert context.device == "cuda:1"
    assert distributed.launch_context({}, device="cuda").device == "cuda"  # alone: unchanged


def test_launch_context_refuses_a_rank_outside_the_world() -> None:
    with pytest.raises(ValueError, match="RANK=2"):
        distributed.launch_context({"WORLD_SIZE": "2", "RANK": "2"})


def test_alone_everything_is_the_identity() -> None:
    batch = torch.arange(10)
    shard = distributed.shard(batch)
    assert torch.equal(shard.index, batch) and (shard.share, shard.grad_scale) == (1.0, 1.0)
    assert distributed.shard_rows(10) == slice(0, 10)
    assert distributed.all_sum({"a": 1.5}) == {"a": 1.5}
    model = torch.nn.Linear(2, 1)
    assert distributed.wrap(model) is model
    assert distributed.is_main()


@pytest.mark.parametrize("size", [31, 32, 1])
def test_shards_cover_the_global_batch_and_weight_it_exactly(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = torch.randperm(100)[:size]
    shards = []
    for rank in range(2):
        monkeypatch.setattr(distributed, "_world", lambda rank=rank: (rank, 2))
        shards.append(distributed.shard(batch))
    weighted = [s for s in shards if s.share > 0]
    assert torch.equal(torch.cat([s.index for s in weighted]), batch)  # every row once, in order
    assert sum(s.share for s in shards) == pytest.approx(1.0)
    # DDP averages over 2 ranks: sum(grad_scale * shard mean) / 2 = the global batch's mean
    for s in shards:
        assert s.grad_scale == pytest.approx(2 * s.share)
    if size == 1:  # the second rank computes one row with no weight, so its backward still runs
        assert shards[1].share == shards[1].grad_scale == 0.0 and len(shards[1].index) == 1


def test_held_out_rows_are_split_into_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = []
    for rank in range(3):
        monkeypatch.setattr(distributed, "_world", lambda rank=rank: (rank, 3))
        blocks.append(distributed.shard_rows(10))
    assert [(b.start, b.stop) for b in blocks] == [(0, 3), (3, 6), (6, 10)]
