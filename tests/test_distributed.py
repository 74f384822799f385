"""Training under torchrun: two CPU processes (gloo) against one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lawm.distributed import share
from lawm.training import StepBatchSampler

ROOT = Path(__file__).resolve().parents[1]


def run(out: Path, processes: int) -> dict:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
                if processes > 1 else [sys.executable])
    proc = subprocess.run([*launcher, "-m", "tests.distributed_train", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "losses.json").read_text())


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    one, two = run(tmp_path / "one", 1), run(tmp_path / "two", 2)
    assert (one["processes"], two["processes"]) == (1, 2)
    assert len(one["losses"]) == len(two["losses"]) == 8
    assert set(one["batches"]) == {4} and set(two["batches"]) == {2}  # each rank trains on its half
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)
    a, b = torch.load(tmp_path / "one" / "model.pt"), torch.load(tmp_path / "two" / "model.pt")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["last.pt"]


def test_the_ranks_share_each_global_batch_exactly():
    sampler = StepBatchSampler(length=10, batch_size=4, steps=6, seed=0)
    ranks = [list(StepBatchSampler(10, 4, 6, 0, rank=r, processes=2)) for r in (0, 1)]
    for k, (a, b) in enumerate(zip(*ranks)):
        assert sorted(a + b) == sorted(sampler.batch(k)) and len(a) == len(b) == 2
    assert share([5, 6, 7, 8], 1, 2) == [6, 8]
    with pytest.raises(ValueError, match="does not split evenly over 3 processes"):
        StepBatchSampler(10, 4, 6, 0, rank=0, processes=3)
