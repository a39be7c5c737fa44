"""Data-parallel training: 2 CPU processes under torchrun follow the same trajectory as 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stca_engine import distributed as D
from stca_engine.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

# A tiny detection problem built directly from the shared types: 2 classes, each a fixed burst
# pattern on its own afferents; streams hold 1-2 events. Trained for 2 epochs with SGD.
SCRIPT = r"""
import json, sys
import numpy as np, torch
from stca_engine import distributed as D
from stca_engine.config import NeuronConfig
from stca_engine.data.types import Event, Sample, SpikeDataset, SpikeTrain
from stca_engine.network import SNN
from stca_engine.config import TrainConfig
from stca_engine.trainer import Trainer

def make(n, seed):
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        k = int(rng.integers(1, 3)); t0 = 5; times = []; units = []; events = []; target = np.zeros(2, np.int64)
        for _ in range(k):
            c = int(rng.integers(0, 2)); L = 30
            tt = rng.integers(0, L, 40); uu = rng.integers(0, 8, 40) + 8 * c
            times += list(tt + t0); units += list(uu); events.append(Event(c, t0, t0 + L)); target[c] += 1
            t0 += L + 60
        samples.append(Sample(SpikeTrain.merge([SpikeTrain(times, units, 16, t0, 3.0)], t0), target, events, f"s{i}"))
    return SpikeDataset(samples, 16, ["a", "b"], "detect", 3.0)

ctx = D.setup("cpu")
torch.set_num_threads(1)
cfg = NeuronConfig()
train, test = make(22, 1), make(6, 2)
tc = TrainConfig(task="detect", objective="stca", hidden=[12], epochs=2, batch_size=5, optimizer="sgd",
                 lr=0.05, lr_hidden=0.05, seed=3, dtype="float64", device="cpu")
D.check_batches(len(train), tc.batch_size, ctx)
net = SNN([16, 12, 2], cfg, dtype=torch.float64, seed=3, init_std=0.3)
tnet, ttrain = D.prepare_trainer_inputs(net, train, ctx)
trainer = Trainer(tnet, ttrain, test, cfg, tc)
reports = trainer.fit(callback=lambda r: D.merge_report(r, len(train), tc.batch_size, 2, "detect", ctx) and None)
if ctx.is_main:
    out = {"weights": [w.detach().tolist() for w in net.weights],
           "reports": [{k: r.summary()[k] for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy",
                                                   "mean_clusters", "n_no_kplus")} for r in reports]}
    json.dump(out, open(sys.argv[1], "w"))
D.teardown(ctx)
if ctx.enabled:
    D.exit_worker(0)
"""


def _run(cmd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update({"OMP_NUM_THREADS": "1", **(env_extra or {})})
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_two_processes_match_one(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    _run([sys.executable, str(script), str(one)])
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "0",
            "--rdzv_backend",
            "c10d",
            "--rdzv_endpoint",
            "127.0.0.1:0",
            str(script),
            str(two),
        ]
    )
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    for wa, wb in zip(a["weights"], b["weights"]):
        np.testing.assert_allclose(np.array(wb), np.array(wa), rtol=1e-9, atol=1e-12)
    init = torch.randn(12, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.3
    assert not np.allclose(np.array(a["weights"][0]), init.numpy()), "training must have moved the weights"
    for ra, rb in zip(a["reports"], b["reports"]):
        for k, v in ra.items():
            assert rb[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def test_shards_partition_each_batch_and_scale_to_the_mean():
    for n in range(1, 30):
        for world in (1, 2, 3, 4):
            parts = [D.shard_bounds(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(parts[i][1] == parts[i + 1][0] for i in range(world - 1))
            sizes = [b - a for a, b in parts]
            assert max(sizes) - min(sizes) <= 1
            ctx = D.DistContext(rank=0, world_size=world)
            # DDP averages: (1/W) sum_r scale_r * mean_r == (1/n) sum of all per-sample gradients
            assert sum(D.loss_scale(s, n, ctx) for s in sizes) / world == pytest.approx(1.0)


def test_gradient_scaling_reproduces_the_full_batch_gradient():
    """Without processes: scaled shard gradients averaged as DDP does equal the full-batch gradient."""
    torch.manual_seed(0)
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    xs = torch.randn(7, 5, dtype=torch.float64)

    def grad_of(rows, scale):
        w.grad = None
        out = D._GradScale.apply(torch.tanh(xs[rows] @ w), scale)
        (out**2).mean().backward()
        return w.grad.clone()

    full = grad_of(list(range(7)), 1.0)
    world = 3
    avg = (
        sum(
            grad_of(
                list(range(*D.shard_bounds(7, r, world))),
                D.loss_scale(
                    D.shard_bounds(7, r, world)[1] - D.shard_bounds(7, r, world)[0],
                    7,
                    D.DistContext(rank=r, world_size=world),
                ),
            )
            for r in range(world)
        )
        / world
    )
    torch.testing.assert_close(avg, full, rtol=1e-12, atol=1e-14)


def test_too_small_batches_are_refused():
    ctx = D.DistContext(rank=0, world_size=2)
    D.check_batches(10, 4, ctx)  # batches 4, 4, 2
    with pytest.raises(ConfigError, match="at least 2 samples"):
        D.check_batches(9, 4, ctx)  # last batch of 1
    with pytest.raises(ConfigError, match="at least 2 samples"):
        D.check_batches(10, 1, ctx)
    D.check_batches(9, 4, D.SINGLE)
    assert D.local_batch_sizes(9, 4, D.DistContext(rank=1, world_size=2)) == [2, 2, 0]
