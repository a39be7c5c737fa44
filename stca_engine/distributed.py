"""Data-parallel training across processes (``torchrun --nproc_per_node N -m stca_engine train ...``).

Every process builds the same datasets (same seed; rank 0 encodes first so the others read the
on-disk cache), walks the same shuffled minibatches, and runs only **its contiguous share of each
minibatch**. Gradients are summed across processes by DistributedDataParallel's all-reduce; each
process scales its local mean loss by ``n_local · world / n_batch`` so that DDP's average equals
the full minibatch's mean gradient exactly (also when the batch does not split evenly, e.g. the
last one). So N processes follow the same trajectory as one process, up to float rounding.

gloo on CPU, nccl on GPU. Outside torchrun (no ``WORLD_SIZE``) everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistContext()


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when absent)."""
    raw = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    try:
        n = int(raw)
    except ValueError:
        raise ConfigError(f"must be an integer, got {raw!r}", "WORLD_SIZE") from None
    if n < 1:
        raise ConfigError(f"must be >= 1, got {n}", "WORLD_SIZE")
    return n


def setup(device: str | torch.device | None = None) -> DistContext:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...).

    ``device`` None picks CUDA (one GPU per local rank, nccl) when present, else CPU (gloo).
    Returns ``SINGLE`` when not launched by torchrun.
    """
    world = env_world_size()
    if world == 1:
        dev = torch.device(device) if device is not None else None
        return DistContext(device=dev if dev is not None else torch.device("cpu"))
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device is None:
        dev = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    # the 2..N processes share the machine's cores: one intra-op thread pool each would oversubscribe
    if dev.type == "cpu":
        per_proc = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world)))
        torch.set_num_threads(per_proc)
    return DistContext(rank, world, local_rank, backend, dev)


def teardown(ctx: DistContext) -> None:
    """Leave the process group together: a rank that tears down while another still talks to it can
    make gloo abort the process, so everyone meets at a barrier first."""
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            try:
                dist.barrier()
            finally:
                dist.destroy_process_group()


def exit_worker(code: int = 0):
    """End a torchrun worker without the interpreter's normal shutdown.

    After the process group is gone, a worker's C++ destructors at interpreter exit occasionally hit
    a still-joinable thread ("terminate called without an active exception", SIGABRT), and torchrun
    then kills the other ranks mid-write. Everything the run writes is closed by now, so skip them.
    """
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """``[a, b)`` of this rank's contiguous share of ``n`` items; shares differ by at most one and
    together partition ``range(n)`` in order."""
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"rank {rank} outside 0..{world - 1}", "distributed")
    base, extra = divmod(int(n), world)
    a = rank * base + min(rank, extra)
    return a, a + base + (1 if rank < extra else 0)


def shard(indices, ctx: DistContext):
    """This process's share of a minibatch's sample indices (all of them when not distributed)."""
    if not ctx.enabled:
        return indices
    a, b = shard_bounds(len(indices), ctx.rank, ctx.world_size)
    return indices[a:b]


def loss_scale(n_local: int, n_batch: int, ctx: DistContext) -> float:
    """Factor for the local *mean* loss so that DDP's gradient average is the full batch's mean.

    DDP computes (1/W) Σ_r g_r. With g_r the gradient of ``scale_r · mean_r`` and
    ``scale_r = n_r W / n``, that is (1/n) Σ_r n_r mean-gradient_r = the mean over all n samples.
    """
    if n_batch <= 0:
        raise ConfigError(f"empty minibatch (n_batch = {n_batch})", "distributed")
    return float(n_local) * ctx.world_size / float(n_batch)


def wrap(net: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``DistributedDataParallel(net)`` when distributed, else ``net``.

    Parameters start identical on every rank (same seed), and DDP also broadcasts rank 0's at
    construction; the SNN has no buffers to keep in sync.
    """
    if not ctx.enabled:
        return net
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DDP(net, device_ids=ids)


def all_reduce_sum(values, ctx: DistContext) -> np.ndarray:
    """Element-wise sum over processes of a float vector (e.g. per-batch loss sums for reports)."""
    arr = np.asarray(values, dtype=np.float64)
    if not ctx.enabled:
        return arr
    import torch.distributed as dist

    t = torch.as_tensor(arr, dtype=torch.float64)
    if ctx.backend == "nccl":
        t = t.to(ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ------------------------------------------------------------------------------------------------
# plugging data parallelism into the (single-process) Trainer without changing it
# ------------------------------------------------------------------------------------------------
class _GradScale(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``scale`` (see ``loss_scale``)."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return (None if g is None else g * ctx.scale), None


class _ShardState:
    """The current minibatch's loss scale, written by ``ShardedDataset.batch`` and read by ``DDPNet``."""

    def __init__(self):
        self.scale = 1.0


def check_batches(n_train: int, batch_size: int, ctx: DistContext) -> None:
    """Every minibatch must give each process at least one sample (no process may sit out a step)."""
    if not ctx.enabled:
        return
    last = n_train % batch_size or batch_size
    smallest = min(batch_size, n_train, last)
    if smallest < ctx.world_size:
        raise ConfigError(
            f"with {ctx.world_size} processes every minibatch needs at least {ctx.world_size} samples, but "
            f"{n_train} training samples in batches of {batch_size} leave one of {smallest}; "
            "change --batch or the number of processes",
            "distributed",
        )


def local_batch_sizes(n_train: int, batch_size: int, ctx: DistContext) -> list[int]:
    """This process's number of samples in each minibatch of an epoch."""
    sizes = []
    for a in range(0, n_train, batch_size):
        n_b = min(batch_size, n_train - a)
        lo, hi = shard_bounds(n_b, ctx.rank, ctx.world_size)
        sizes.append(hi - lo)
    return sizes


def sharded(dataset, ctx: DistContext, state: _ShardState):
    """A view of ``dataset`` whose ``batch(indices)`` returns only this process's share."""
    from .data.types import SpikeDataset

    class ShardedDataset(SpikeDataset):
        def batch(self, indices, dtype=torch.float32, device=None):
            indices = list(indices)
            mine = shard(indices, ctx)
            state.scale = loss_scale(len(mine), len(indices), ctx)
            return SpikeDataset.batch(self, mine, dtype=dtype, device=device)

        def lengths(self, indices):
            return SpikeDataset.lengths(self, shard(list(indices), ctx))

    return ShardedDataset(dataset.samples, dataset.n_inputs, dataset.class_names, dataset.task, dataset.dt_ms)


class DDPNet(torch.nn.Module):
    """``DistributedDataParallel`` around an ``SNN`` that still looks like the ``SNN`` to the Trainer
    (``weights``, ``sizes``, ``output_spiking`` ... come from the wrapped network).

    In training (grad enabled) the output spikes and every layer's voltages pass through ``_GradScale``
    with the current minibatch's ``loss_scale``, so DDP's gradient average is the full minibatch's gradient.
    """

    def __init__(self, net: torch.nn.Module, ctx: DistContext, state: _ShardState):
        super().__init__()
        self.ddp = wrap(net, ctx)
        object.__setattr__(self, "_inner", net)
        object.__setattr__(self, "_state", state)

    @property
    def inner(self) -> torch.nn.Module:
        return self._inner

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._inner, name)

    def forward(self, x, record: bool = False):
        rec = self.ddp(x, record=record)
        if torch.is_grad_enabled():
            s = self._state.scale
            # every layer's V: the loss reads the output's, revive.py may read the hidden ones
            rec.voltages = [_GradScale.apply(v, s) for v in rec.voltages]
            rec.spikes[-1] = _GradScale.apply(rec.spikes[-1], s)
        return rec


def prepare_trainer_inputs(net, train, ctx: DistContext):
    """``(net, train)`` to hand to ``Trainer``: unchanged when not distributed, else the DDP wrapper and
    the sharded view of the training set."""
    if not ctx.enabled:
        return net, train
    state = _ShardState()
    return DDPNet(net, ctx, state), sharded(train, ctx, state)


def merge_report(report, n_train: int, batch_size: int, n_classes: int, task: str, ctx: DistContext):
    """Turn this process's view of an epoch's *training* numbers into the whole job's (in place).

    ``train_loss`` (local loss sum / n), ``mean_clusters`` (local sum / (n·C)), ``n_no_kplus``,
    ``n_kplus`` and ``layer_spikes`` add up over processes; ``train_accuracy`` is re-weighted by each process's number of judged pairs.
    Test metrics are computed on the full test set by every process and need no merging.
    """
    if not ctx.enabled:
        return report
    n_local = sum(local_batch_sizes(n_train, batch_size, ctx))
    judged = n_local * (n_classes if task == "detect" else 1)
    total_judged = n_train * (n_classes if task == "detect" else 1)
    n_layers = len(report.layer_spikes)
    sums = all_reduce_sum(
        [
            report.train_loss,
            report.mean_clusters,
            report.n_no_kplus,
            report.train_accuracy * judged,
            report.n_kplus,
            *report.layer_spikes,
        ],
        ctx,
    )
    report.train_loss = float(sums[0])
    report.mean_clusters = float(sums[1])
    report.n_no_kplus = int(round(sums[2]))
    report.train_accuracy = float(sums[3] / total_judged)
    report.n_kplus = int(round(sums[4]))
    report.layer_spikes = [int(round(x)) for x in sums[5 : 5 + n_layers]]
    return report
