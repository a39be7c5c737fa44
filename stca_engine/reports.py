"""What an epoch reports: scalar results, weight statistics and one probe sample seen through the
network (plain numbers and numpy, so the UI can keep one per epoch and replay them)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .config import NeuronConfig
from .data.types import Event, SpikeDataset
from .evaluation import _loss_fns, _net_device_dtype, _predictions, output_counts

HIST_BINS = 30


@dataclass
class WeightStats:
    """Summary of one weight matrix (``layer`` 0 is the input-side layer)."""

    layer: int
    shape: tuple[int, int]
    mean: float
    std: float
    min: float
    max: float
    hist_counts: np.ndarray  # int64 [HIST_BINS]
    hist_edges: np.ndarray  # float32 [HIST_BINS + 1]


@dataclass
class Probe:
    """One test sample seen through the network after an epoch (compact numpy, float32).

    ``k_star``/``sign`` are the loss's chosen time step and direction per output neuron (−1 / 0 where
    the neuron gives no loss); ``no_kplus[c]``: neuron c needed a k⁺ but no step was admissible (the
    loss's own verdict, so views never re-derive its rule); ``clusters[c]`` lists the ``(first, last)`` step of each output cluster.
    Hidden spikes of the last hidden layer are sparse (``hidden_times``, ``hidden_units``).
    """

    index: int
    name: str
    dt_ms: float
    voltages: np.ndarray  # float32 [T, N_out]
    spikes: np.ndarray  # uint8 [T, N_out]
    hidden_times: np.ndarray  # int32 [n_spikes]
    hidden_units: np.ndarray  # int32 [n_spikes]
    n_hidden: int
    k_star: np.ndarray  # int64 [N_out]
    sign: np.ndarray  # int8 [N_out]
    n_clusters: np.ndarray  # int64 [N_out]
    clusters: list[list[tuple[int, int]]]
    prediction: np.ndarray | int
    target: np.ndarray | int
    events: list[Event]
    no_kplus: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # bool [N_out]

    @property
    def n_steps(self) -> int:
        return int(self.voltages.shape[0])


@dataclass
class EpochReport:
    """What one epoch did (plain numbers and numpy, so the UI can plot and keep one per epoch).

    Accuracies: detect = count accuracy over (stream, class) pairs; classify = accuracy.
    ``mean_clusters`` is the mean cluster count per output neuron and training sample;
    ``n_no_kplus`` counts (sample, neuron) pairs that wanted a k⁺ but had no admissible step.
    ``test_metrics`` holds everything ``evaluate`` returned for the test set.
    ``layer_spikes``: spikes per layer (hidden ..., output) over the epoch's training batches;
    ``n_kplus``: (sample, neuron) pairs trained at a k⁺; ``silent_layers`` names the layers that
    went silent (see there); ``n_revived``: silent hidden (sample, neuron) pairs pushed up because an
    output above them needed a k⁺ and had none (``revive.py``).
    """

    epoch: int
    train_loss: float
    test_loss: float
    train_accuracy: float
    test_accuracy: float
    mean_clusters: float
    n_no_kplus: int
    seconds: float
    n_samples: int
    learning_rates: list[float]
    test_metrics: dict
    weights: list[WeightStats]
    probe: Probe | None
    val_metrics: dict | None = None
    layer_spikes: list[int] = field(default_factory=list)
    n_kplus: int = 0
    n_revived: int = 0

    @property
    def silent_layers(self) -> list[str]:
        """``"hidden i"`` for a hidden layer without a spike in the whole epoch, ``"output"`` when the
        output never fired and no needed k⁺ could be placed (V ≡ 0: no weight can move it up)."""
        out = [f"hidden {i + 1}" for i, n in enumerate(self.layer_spikes[:-1]) if n == 0]
        if self.layer_spikes and self.layer_spikes[-1] == 0 and self.n_kplus == 0 and self.n_no_kplus > 0:
            out.append("output")
        return out

    def summary(self) -> dict:
        """The scalar part, JSON-safe (for CLI logs and history tables)."""
        keys = (
            "epoch",
            "train_loss",
            "test_loss",
            "train_accuracy",
            "test_accuracy",
            "mean_clusters",
            "n_no_kplus",
            "n_revived",
            "seconds",
            "n_samples",
        )
        out = {k: getattr(self, k) for k in keys}
        out["silent_layers"] = ", ".join(self.silent_layers)
        out.update(
            {
                f"test_{k}": v
                for k, v in self.test_metrics.items()
                if isinstance(v, (int, float)) and k not in ("loss", "accuracy")
            }
        )
        if self.val_metrics:
            out.update({f"val_{k}": v for k, v in self.val_metrics.items() if isinstance(v, (int, float))})
        return out


@dataclass
class BatchReport:
    """Passed to the per-batch hook after every optimiser step."""

    epoch: int
    batch: int  # 1-based within the epoch
    n_batches: int
    loss: float
    n_samples: int
    n_no_kplus: int


def weight_stats(net, bins: int = HIST_BINS) -> list[WeightStats]:
    """Mean, std, min, max and a histogram of each weight matrix."""
    stats = []
    for i, w in enumerate(net.weights):
        a = w.detach().double().cpu().numpy()
        counts, edges = (
            np.histogram(a, bins=bins) if np.isfinite(a).all() else (np.zeros(bins, np.int64), np.zeros(bins + 1))
        )
        stats.append(
            WeightStats(
                layer=i,
                shape=tuple(a.shape),
                mean=float(a.mean()),
                std=float(a.std()),
                min=float(a.min()),
                max=float(a.max()),
                hist_counts=counts.astype(np.int64),
                hist_edges=edges.astype(np.float32),
            )
        )
    return stats


def make_probe(
    net, dataset: SpikeDataset, index: int, neuron_cfg: NeuronConfig, task: str, objective: str, tdp1_spikes: int = 1
) -> Probe:
    """Run one sample through ``net`` and keep what the UI draws (see ``Probe``)."""
    from .clusters import cluster_spans

    stca_loss, _ = _loss_fns()
    sample = dataset[index]
    device, dtype = _net_device_dtype(net)
    with torch.no_grad():
        x, target = dataset.batch([index], dtype=dtype, device=device)
        rec = net(x)
        v, s = rec.voltages[-1], rec.spikes[-1]
        _, info = stca_loss(v, s, target, neuron_cfg, task=task, objective=objective, tdp1_spikes=tdp1_spikes)
        pred = _predictions(v, s, neuron_cfg, task, objective, tdp1_spikes)[0].cpu().numpy()
        n_clusters = output_counts(s, neuron_cfg, "stca")[0].cpu().numpy().astype(np.int64)
        if len(rec.spikes) > 1:
            hidden = rec.spikes[-2][:, 0]
            t, u = torch.nonzero(hidden > 0, as_tuple=True)
            h_t, h_u, n_hidden = t.cpu().numpy().astype(np.int32), u.cpu().numpy().astype(np.int32), hidden.shape[1]
        else:
            h_t, h_u, n_hidden = np.zeros(0, np.int32), np.zeros(0, np.int32), 0
    spikes = s[:, 0].to(torch.uint8).cpu().numpy()
    clusters = [
        [(a, b) for a, b, _ in cluster_spans(np.flatnonzero(spikes[:, c]), neuron_cfg.t_in_steps)]
        for c in range(spikes.shape[1])
    ]
    return Probe(
        index=index,
        name=sample.name,
        dt_ms=neuron_cfg.dt_ms,
        voltages=v[:, 0].float().cpu().numpy(),
        spikes=spikes,
        hidden_times=h_t,
        hidden_units=h_u,
        n_hidden=int(n_hidden),
        k_star=info.k_star[0].cpu().numpy().astype(np.int64),
        sign=info.sign[0].cpu().numpy().astype(np.int8),
        n_clusters=n_clusters,
        clusters=clusters,
        prediction=pred if task == "detect" else int(pred),
        target=np.asarray(sample.target).copy() if task == "detect" else int(sample.target),
        events=list(sample.events),
        no_kplus=info.no_kplus[0].cpu().numpy().astype(bool),
    )
