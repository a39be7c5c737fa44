"""Evaluation of a network on a dataset: the test metrics every epoch report and ``stca eval`` print.

Detection: count accuracy over (stream, class) pairs, exact-stream accuracy, event precision / recall /
F1; classification: accuracy, macro precision / recall / F1 and the confusion matrix; plus the mean
loss, cluster counts and how many needed k⁺ points had no admissible step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .config import OBJECTIVES, TASKS, NeuronConfig
from .data import metrics as M
from .data.types import SpikeDataset
from .errors import ConfigError

Progress = Callable[[int, int, str], None]


def _loss_fns():
    from .losses import predict, stca_loss

    return stca_loss, predict


def output_counts(spikes: torch.Tensor, neuron_cfg: NeuronConfig, objective: str, tdp1_spikes: int = 1) -> torch.Tensor:
    """Predicted event counts ``[B, C]``: spike clusters (stca) or single spikes (tdp1; with ``tdp1_spikes``
    asked per event, the spike count divided by it, rounded)."""
    if objective == "tdp1":
        return (spikes.sum(dim=0).double() / int(tdp1_spikes)).round().long()
    from .clusters import count_clusters

    return count_clusters(spikes, neuron_cfg.t_in_steps)


def _predictions(v, s, neuron_cfg, task, objective, tdp1_spikes: int = 1):
    if task == "detect":
        return output_counts(s, neuron_cfg, objective, tdp1_spikes)
    _, predict = _loss_fns()
    return predict(v, s, neuron_cfg, objective)


def _check_compatible(net, dataset: SpikeDataset, neuron_cfg: NeuronConfig, task: str, what: str):
    if dataset.task != task:
        raise ConfigError(f"{what} dataset is for task {dataset.task!r}, the run is for {task!r}", what)
    sizes = list(net.sizes)
    if dataset.n_inputs != sizes[0]:
        raise ConfigError(f"{what} dataset has {dataset.n_inputs} inputs, the network expects {sizes[0]}", what)
    if len(dataset.class_names) != sizes[-1]:
        raise ConfigError(
            f"{what} dataset has {len(dataset.class_names)} classes, the network has {sizes[-1]} outputs", what
        )
    if abs(dataset.dt_ms - neuron_cfg.dt_ms) > 1e-9:
        raise ConfigError(
            f"{what} dataset is encoded at dt = {dataset.dt_ms} ms, the neurons use dt = {neuron_cfg.dt_ms} ms", what
        )


def _net_device_dtype(net):
    w = net.weights[0]
    return w.device, w.dtype


def _n_no_kplus(info) -> int:
    v = getattr(info, "no_kplus", None)
    if v is None:
        return 0
    return int(torch.as_tensor(v).sum().item())


def _per_sample_loss_sum(loss: torch.Tensor, info, batch: int) -> float:
    per = getattr(info, "per_sample", None)
    if per is not None:
        return float(torch.as_tensor(per).detach().double().sum().item())
    return float(loss.detach().item()) * batch


def evaluate(
    net,
    dataset: SpikeDataset,
    neuron_cfg: NeuronConfig,
    task: str,
    objective: str = "stca",
    batch_size: int = 32,
    tolerance_steps: int | None = None,
    progress: Progress | None = None,
    tdp1_spikes: int = 1,
) -> dict:
    """Test metrics of ``net`` on ``dataset`` (no gradients), plus the mean loss per sample.

    detect: ``count_accuracy``, ``stream_accuracy``, ``event_f1`` and ``event_f1_strict`` (one cluster per
    event: split detections count as false positives) (+ ``event_precision``,
    ``event_recall``, ``event_tp/fp/fn``; NaN when no sample carries event times; tolerance default
    T_in steps); classify: ``accuracy``, macro ``precision``, ``recall``, ``f1`` and
    ``confusion_matrix`` (list of lists, row = true class). Both: ``loss``, ``mean_clusters``,
    ``n_no_kplus``, ``n_samples``; ``accuracy`` is the headline number (count accuracy for detect).
    Each sample is judged on its own length (batch padding never creates or hides clusters).
    ``tdp1_spikes``: spikes per event the ``tdp1`` objective was trained to give (``stca_loss``).
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}", "evaluate")
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {OBJECTIVES}, got {objective!r}", "evaluate")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}", "evaluate")
    _check_compatible(net, dataset, neuron_cfg, task, "test")
    n = len(dataset)
    n_classes = len(dataset.class_names)
    out: dict = {"n_samples": n}
    if n == 0:
        out.update(loss=float("nan"), accuracy=float("nan"), mean_clusters=float("nan"), n_no_kplus=0)
        return out
    stca_loss, _ = _loss_fns()
    device, dtype = _net_device_dtype(net)
    tol = neuron_cfg.t_in_steps if tolerance_steps is None else int(tolerance_steps)
    loss_sum, no_kplus, cluster_sum = 0.0, 0, 0.0
    preds, targets, rasters = [], [], []
    n_batches = (n + batch_size - 1) // batch_size
    with torch.no_grad():
        for b in range(n_batches):
            idx = list(range(b * batch_size, min(n, (b + 1) * batch_size)))
            x, target = dataset.batch(idx, dtype=dtype, device=device)
            rec = net(x)
            v, s = rec.voltages[-1], rec.spikes[-1]
            lengths = [dataset[i].spikes.n_steps for i in idx]
            loss, info = stca_loss(
                v, s, target, neuron_cfg, task=task, objective=objective, lengths=lengths, tdp1_spikes=tdp1_spikes
            )
            loss_sum += _per_sample_loss_sum(loss, info, len(idx))
            no_kplus += _n_no_kplus(info)
            if all(T_i == v.shape[0] for T_i in lengths):  # no padding: judge the batch at once
                pieces = [(v, s)]
            else:
                pieces = [(v[:T_i, j : j + 1], s[:T_i, j : j + 1]) for j, T_i in enumerate(lengths)]
            for v_p, s_p in pieces:
                preds.extend(_predictions(v_p, s_p, neuron_cfg, task, objective, tdp1_spikes).cpu().numpy())
                cluster_sum += float(output_counts(s_p, neuron_cfg, "stca").double().sum().item())
                if task == "detect":
                    r = s_p.to(torch.uint8).cpu().numpy()
                    rasters.extend(r[:, j] for j in range(r.shape[1]))
            targets.append(target.cpu().numpy())
            if progress is not None:
                progress(b + 1, n_batches, f"evaluating: batch {b + 1}/{n_batches}")
    true = np.concatenate(targets, axis=0)
    pred = np.stack(preds, axis=0)
    out.update(loss=loss_sum / n, n_no_kplus=no_kplus, mean_clusters=cluster_sum / (n * n_classes))
    if task == "detect":
        out["count_accuracy"] = M.count_accuracy(pred, true)
        out["count_accuracy_floor"] = M.count_accuracy(np.zeros_like(true), true)  # a network that never fires
        out["stream_accuracy"] = M.stream_accuracy(pred, true)
        events = [dataset[i].events for i in range(n)]
        if any(events) or not true.any():
            f1 = M.event_f1(rasters, events, neuron_cfg.t_in_steps, tol)
            strict = M.event_f1(rasters, events, neuron_cfg.t_in_steps, tol, strict=True)
            out.update(
                event_f1=f1["f1"],
                event_precision=f1["precision"],
                event_recall=f1["recall"],
                event_tp=f1["tp"],
                event_fp=f1["fp"],
                event_fn=f1["fn"],
                event_f1_strict=strict["f1"],  # a split detection's extra cluster is a false positive
                event_precision_strict=strict["precision"],
            )
        else:
            out.update(
                event_f1=float("nan"),
                event_precision=float("nan"),
                event_recall=float("nan"),
                event_f1_strict=float("nan"),
                event_precision_strict=float("nan"),
            )
        out["accuracy"] = out["count_accuracy"]
    else:
        rep = M.classification_report(pred.astype(np.int64).ravel(), true.ravel(), n_classes)
        out.update(
            accuracy=rep["accuracy"],
            precision=rep["precision"],
            recall=rep["recall"],
            f1=rep["f1"],
            confusion_matrix=rep["confusion_matrix"].tolist(),
            accuracy_floor=float(np.bincount(true.ravel().astype(np.int64)).max() / true.size),
        )
    return out
