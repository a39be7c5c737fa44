"""Training loop: epochs of shuffled minibatches, SGD/Adam, per-epoch reports, evaluation.

No Streamlit here. The CLI calls ``Trainer.fit``; the app runs ``Trainer.step_epoch`` in a worker
thread and stops it between batches through ``Trainer.stop_event`` (Pause / Stop buttons). Every
run is repeatable for a seed: the network is initialised from ``seed`` and the minibatch order of
epoch ``e`` comes from a ``torch.Generator`` seeded with ``seed + e``.

A non-finite loss, voltage or gradient stops the run: the weights after the last successful
optimiser step (or the initial ones) are put back and ``TrainingError`` says in which epoch and
batch it happened. Weights edited from outside between epochs are not "good" until a step succeeds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .config import NeuronConfig, check_setting_names
from .data import metrics as M
from .data.types import Event, SpikeDataset
from .errors import ConfigError, TrainingError

TASKS = ("detect", "classify")
OBJECTIVES = ("stca", "tdp1", "margin")
OPTIMIZERS = ("sgd", "adam")
SELECTIONS = ("last", "best-val")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
ADAM_DEFAULT_LR = 1e-3
HIST_BINS = 30
_WHERE = "train config"

Progress = Callable[[int, int, str], None]


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Settings of one training run (validated by ``validate()``, called by ``Trainer``).

    ``lr`` is the output layer's learning rate and ``lr_hidden`` that of every other layer.
    ``None`` means the paper preset: SGD ``lr = 1e-2 / V0`` and ``lr_hidden = lr / V0`` (the
    hidden layers see inputs scaled by V0 once more); Adam ``lr = 1e-3`` and ``lr_hidden = lr``.
    ``init_std``: new networks start with weights ~ N(0, init_std²) (paper: 0.01; small networks with
    few inputs need more to fire at all). ``event_tolerance_ms`` widens event spans for event F1 (``None``: T_in, the cluster interval).
    ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...

    Against memorising the training clips (docs/RESULTS.md, "real sound"): ``augment`` (see
    ``augment.Augment``: spike jitter, dropped spikes, time stretch, noise spikes; training batches only),
    ``dropout`` on the spikes each hidden layer passes on (training only, inverted scaling),
    ``weight_decay`` (L2, in the optimiser), ``lr_step_epoch`` (after that many epochs the learning
    rates are multiplied by ``lr_step_factor``) and ``select``: ``"last"`` keeps the last epoch's
    weights, ``"best-val"`` the weights of the epoch that scored best on the validation set (carved from
    the training clips; never the test set).
    """

    task: str = "detect"
    objective: str = "stca"
    hidden: list[int] = field(default_factory=lambda: [300])
    epochs: int = 20
    batch_size: int = 16
    optimizer: str = "sgd"
    lr: float | None = None
    lr_hidden: float | None = None
    momentum: float = 0.0
    init_std: float = 0.01
    seed: int = 0
    probe_index: int = 0
    device: str = "auto"
    dtype: str = "float32"
    event_tolerance_ms: float | None = None
    augment: dict = field(default_factory=dict)
    dropout: float = 0.0
    weight_decay: float = 0.0
    lr_step_epoch: int | None = None
    lr_step_factor: float = 0.1
    select: str = "last"

    def validate(self, check_device: bool = True) -> TrainConfig:
        """Check and normalise every setting (``ConfigError`` naming it). ``check_device=False`` skips
        asking whether a CUDA device is present (a saved config may come from another machine)."""

        def bad(name, problem):
            raise ConfigError(f"{name}: {problem}", _WHERE)

        def integer(name, lo):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                bad(name, f"must be an integer, got {v!r}")
            if v < lo:
                bad(name, f"must be >= {lo}, got {v}")
            setattr(self, name, int(v))

        def positive(name, allow_none=True, allow_zero=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(float(v)):
                bad(name, f"must be a finite number, got {v!r}")
            if float(v) < 0 or (float(v) == 0 and not allow_zero):
                bad(name, f"must be {'>= 0' if allow_zero else '> 0'}, got {v}")
            setattr(self, name, float(v))

        if self.task not in TASKS:
            bad("task", f"must be one of {TASKS}, got {self.task!r}")
        if self.objective not in OBJECTIVES:
            bad("objective", f"must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.objective == "margin" and self.task != "classify":
            bad("objective", "'margin' (non-spiking output, max-V rule) is for task 'classify' only")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.dtype not in DTYPES:
            bad("dtype", f"must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if isinstance(self.hidden, (int, np.integer)):
            self.hidden = [int(self.hidden)]
        if not isinstance(self.hidden, (list, tuple)):
            bad("hidden", f"must be a list of layer sizes, got {self.hidden!r}")
        hidden = []
        for h in self.hidden:
            if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 1 <= h <= 100_000:
                bad("hidden", f"layer sizes must be integers in 1..100000, got {list(self.hidden)!r}")
            hidden.append(int(h))
        self.hidden = hidden
        integer("epochs", 0)
        integer("batch_size", 1)
        integer("seed", 0)
        integer("probe_index", 0)
        positive("lr")
        positive("lr_hidden")
        for name in ("lr", "lr_hidden"):
            if getattr(self, name) is not None and getattr(self, name) > 1e3:
                bad(name, f"must be <= 1000, got {getattr(self, name)}")
        positive("event_tolerance_ms", allow_zero=True)
        positive("momentum", allow_none=False, allow_zero=True)
        positive("init_std", allow_none=False, allow_zero=True)
        if self.momentum >= 1:
            bad("momentum", f"must be < 1, got {self.momentum}")
        if self.momentum and self.optimizer != "sgd":
            bad("momentum", "applies to optimizer 'sgd' only")
        if self.select not in SELECTIONS:
            bad("select", f"must be one of {SELECTIONS}, got {self.select!r}")
        positive("weight_decay", allow_none=False, allow_zero=True)
        positive("dropout", allow_none=False, allow_zero=True)
        if self.dropout >= 1:
            bad("dropout", f"must be < 1, got {self.dropout}")
        positive("lr_step_factor", allow_none=False)
        if self.lr_step_epoch is not None:
            integer("lr_step_epoch", 1)
        if not isinstance(self.augment, dict):
            bad("augment", f"must be a dict of augment settings, got {self.augment!r}")
        from .augment import Augment

        try:
            check_setting_names(Augment, self.augment, "augment", _WHERE)
            full = Augment.from_dict(self.augment).to_dict()  # checks every value
            self.augment = {k: full[k] for k in self.augment}
        except TypeError as exc:
            bad("augment", str(exc))
        if not isinstance(self.device, str) or not self.device:
            bad("device", f"must be 'auto', 'cpu' or 'cuda[:n]', got {self.device!r}")
        if self.device != "auto":
            try:
                dev = torch.device(self.device)
            except (RuntimeError, ValueError):
                bad("device", f"must be 'auto', 'cpu' or 'cuda[:n]', got {self.device!r}")
            if check_device and dev.type == "cuda" and not torch.cuda.is_available():
                bad("device", f"{self.device!r} asked for, but no CUDA device is available")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["augment"] = dict(self.augment)
        return d

    @classmethod
    def from_dict(cls, d: dict, check_device: bool = True) -> TrainConfig:
        """Inverse of ``to_dict`` (validated); unknown keys are an error, missing keys take defaults."""
        check_setting_names(cls, d, "training", _WHERE)
        return cls(**d).validate(check_device=check_device)

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            from .device import default_device

            return default_device()
        return torch.device(self.device)

    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def learning_rates(train_cfg: TrainConfig, neuron_cfg: NeuronConfig, n_layers: int) -> list[float]:
    """Per-layer learning rates, input-side layer first (see ``TrainConfig``)."""
    if train_cfg.optimizer == "sgd":
        lr_out = train_cfg.lr if train_cfg.lr is not None else 1e-2 / neuron_cfg.v0
        lr_hidden = train_cfg.lr_hidden if train_cfg.lr_hidden is not None else lr_out / neuron_cfg.v0
    else:
        lr_out = train_cfg.lr if train_cfg.lr is not None else ADAM_DEFAULT_LR
        lr_hidden = train_cfg.lr_hidden if train_cfg.lr_hidden is not None else lr_out
    return [lr_hidden] * (n_layers - 1) + [lr_out]


# ------------------------------------------------------------------------------------------------
# reports
# ------------------------------------------------------------------------------------------------
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
    the neuron gives no loss); ``clusters[c]`` lists the ``(first, last)`` step of each output cluster.
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
    went silent (see there).
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


# ------------------------------------------------------------------------------------------------
# helpers shared by training and evaluation
# ------------------------------------------------------------------------------------------------
def _loss_fns():
    from .losses import predict, stca_loss

    return stca_loss, predict


def output_counts(spikes: torch.Tensor, neuron_cfg: NeuronConfig, objective: str) -> torch.Tensor:
    """Predicted event counts ``[B, C]``: spike clusters (stca) or single spikes (tdp1)."""
    if objective == "tdp1":
        return spikes.sum(dim=0).round().long()
    from .clusters import count_clusters

    return count_clusters(spikes, neuron_cfg.t_in_steps)


def _predictions(v, s, neuron_cfg, task, objective):
    if task == "detect":
        return output_counts(s, neuron_cfg, objective)
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
) -> dict:
    """Test metrics of ``net`` on ``dataset`` (no gradients), plus the mean loss per sample.

    detect: ``count_accuracy``, ``stream_accuracy``, ``event_f1`` (+ ``event_precision``,
    ``event_recall``, ``event_tp/fp/fn``; NaN when no sample carries event times; tolerance default
    T_in steps); classify: ``accuracy``, macro ``precision``, ``recall``, ``f1`` and
    ``confusion_matrix`` (list of lists, row = true class). Both: ``loss``, ``mean_clusters``,
    ``n_no_kplus``, ``n_samples``; ``accuracy`` is the headline number (count accuracy for detect).
    Each sample is judged on its own length (batch padding never creates or hides clusters).
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
            loss, info = stca_loss(v, s, target, neuron_cfg, task=task, objective=objective, lengths=lengths)
            loss_sum += _per_sample_loss_sum(loss, info, len(idx))
            no_kplus += _n_no_kplus(info)
            if all(T_i == v.shape[0] for T_i in lengths):  # no padding: judge the batch at once
                pieces = [(v, s)]
            else:
                pieces = [(v[:T_i, j : j + 1], s[:T_i, j : j + 1]) for j, T_i in enumerate(lengths)]
            for v_p, s_p in pieces:
                preds.extend(_predictions(v_p, s_p, neuron_cfg, task, objective).cpu().numpy())
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
            out.update(
                event_f1=f1["f1"],
                event_precision=f1["precision"],
                event_recall=f1["recall"],
                event_tp=f1["tp"],
                event_fp=f1["fp"],
                event_fn=f1["fn"],
            )
        else:
            out.update(event_f1=float("nan"), event_precision=float("nan"), event_recall=float("nan"))
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


def make_probe(net, dataset: SpikeDataset, index: int, neuron_cfg: NeuronConfig, task: str, objective: str) -> Probe:
    """Run one sample through ``net`` and keep what the UI draws (see ``Probe``)."""
    from .clusters import cluster_spans

    stca_loss, _ = _loss_fns()
    sample = dataset[index]
    device, dtype = _net_device_dtype(net)
    with torch.no_grad():
        x, target = dataset.batch([index], dtype=dtype, device=device)
        rec = net(x)
        v, s = rec.voltages[-1], rec.spikes[-1]
        _, info = stca_loss(v, s, target, neuron_cfg, task=task, objective=objective)
        pred = _predictions(v, s, neuron_cfg, task, objective)[0].cpu().numpy()
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
    )


# ------------------------------------------------------------------------------------------------
# the trainer
# ------------------------------------------------------------------------------------------------
class Trainer:
    """Trains an ``SNN`` with STCA (or TDP1 / margin) on a ``SpikeDataset``.

    ``net`` may be ``None``: the network ``[n_inputs, *hidden, n_classes]`` is then built from the
    seed (``margin`` gets a non-spiking output layer). A given network keeps its device and dtype,
    and ``cfg.hidden``/``cfg.dtype``/``cfg.init_std`` are set from it. ``stop_event`` (a ``threading.Event``) is
    checked between batches; an epoch interrupted that way continues where it stopped on the next
    ``step_epoch`` call, with the same minibatch order, so a paused run ends exactly like an
    unpaused one.
    """

    def __init__(
        self,
        net,
        train: SpikeDataset,
        test: SpikeDataset | None,
        neuron_cfg: NeuronConfig,
        train_cfg: TrainConfig,
        on_batch: Callable[[BatchReport], None] | None = None,
        val: SpikeDataset | None = None,
    ):
        if not isinstance(neuron_cfg, NeuronConfig):
            raise ConfigError(f"neuron_cfg must be a NeuronConfig, got {type(neuron_cfg).__name__}", "Trainer")
        self.cfg = train_cfg.validate()
        self.neuron_cfg = neuron_cfg
        self.train, self.test = train, test
        self.val = val if val is not None and len(val) else None
        if self.cfg.select == "best-val" and self.val is None:
            raise ConfigError("select 'best-val' needs a validation set (carve one from the training clips)", _WHERE)
        if len(train) == 0:
            raise ConfigError("the training set is empty", "train")
        if net is None:
            from .network import SNN

            sizes = [train.n_inputs, *self.cfg.hidden, len(train.class_names)]
            net = SNN(
                sizes,
                neuron_cfg,
                dtype=self.cfg.torch_dtype(),
                device=self.cfg.resolved_device(),
                output_spiking=self.cfg.objective != "margin",
                seed=self.cfg.seed,
                init_std=self.cfg.init_std,
            )
        else:  # the given network decides the architecture; keep the config truthful (it is saved)
            self.cfg.hidden = [int(h) for h in list(net.sizes)[1:-1]]
            dtype_name = {v: k for k, v in DTYPES.items()}.get(net.weights[0].dtype)
            if dtype_name is None:
                raise ConfigError(f"network weights are {net.weights[0].dtype}; use float32 or float64", "Trainer")
            self.cfg.dtype = dtype_name
            if isinstance(getattr(net, "init_std", None), (int, float)):
                self.cfg.init_std = float(net.init_std)
        self.net = net
        if self.cfg.objective == "margin" and getattr(net, "output_spiking", False):
            raise ConfigError("objective 'margin' needs a network with a non-spiking output layer", "Trainer")
        _check_compatible(net, train, neuron_cfg, self.cfg.task, "train")
        probe_set = test if test is not None and len(test) else train
        if test is not None and len(test):
            _check_compatible(net, test, neuron_cfg, self.cfg.task, "test")
        if self.cfg.probe_index >= len(probe_set):
            raise ConfigError(
                f"probe_index: {self.cfg.probe_index} is past the last sample ({len(probe_set) - 1})", _WHERE
            )
        self._probe_set = probe_set
        self.device, self.dtype = _net_device_dtype(net)
        if not all(torch.isfinite(w).all() for w in net.weights):
            raise TrainingError("the initial weights hold NaN or inf values", "Trainer")
        self.lrs = learning_rates(self.cfg, neuron_cfg, len(net.weights))
        groups = [{"params": [w], "lr": lr} for w, lr in zip(net.weights, self.lrs)]
        wd = self.cfg.weight_decay
        if self.cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(groups, lr=self.lrs[-1], momentum=self.cfg.momentum, weight_decay=wd)
        else:
            self.optimizer = torch.optim.Adam(groups, lr=self.lrs[-1], weight_decay=wd)
        from .augment import Augment

        self.augment = Augment.from_dict(self.cfg.augment)
        if self.val is not None:
            _check_compatible(net, self.val, neuron_cfg, self.cfg.task, "validation")
        self.best: tuple[int, float, float] | None = None  # (epoch, val score, -val loss) of the kept weights
        self._best_weights: list[torch.Tensor] | None = None
        self.on_batch = on_batch
        self.history: list[EpochReport] = []
        self.epoch = 0  # completed epochs
        self.stop_event = threading.Event()
        self._good = self._snapshot()
        self._pending: dict | None = None  # state of an interrupted epoch

    # ---- state ----------------------------------------------------------------------------------
    @property
    def n_batches(self) -> int:
        return (len(self.train) + self.cfg.batch_size - 1) // self.cfg.batch_size

    @property
    def probe_set(self) -> SpikeDataset:
        """The dataset ``probe_index`` points into: the test set, or the train set when there is none."""
        return self._probe_set

    @property
    def interrupted(self) -> bool:
        """True when an epoch was stopped between batches and will resume on the next call."""
        return self._pending is not None

    def request_stop(self) -> None:
        """Ask the running epoch to stop after the current batch (thread-safe)."""
        self.stop_event.set()

    def _snapshot(self) -> list[torch.Tensor]:
        return [w.detach().clone() for w in self.net.weights]

    def _restore(self) -> None:
        with torch.no_grad():
            for w, g in zip(self.net.weights, self._good):
                w.copy_(g)
                w.grad = None

    def _fail(self, epoch: int, batch: int, what: str):
        self._restore()
        self._pending = None
        raise TrainingError(
            f"epoch {epoch}, batch {batch}: {what}; training stopped and the weights of the last good "
            f"step were restored (try a smaller learning rate)",
            "training",
        )

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The shuffled sample order of (1-based) ``epoch``; depends only on seed and epoch.

        The generator seed mixes the two (not ``seed + epoch``, which would give seed 1 the orders
        of seed 0 shifted by one epoch).
        """
        g = torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + epoch) % (2**63))
        return torch.randperm(len(self.train), generator=g)

    # ---- training -------------------------------------------------------------------------------
    def step_epoch(
        self,
        progress: Progress | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> EpochReport | None:
        """Run (or finish) one epoch. Returns its report, or ``None`` if it was stopped between batches
        (``stop_event`` set or ``should_stop()`` true); the next call then continues that epoch.

        Clears ``stop_event`` first: a stop asked before this call belonged to the previous one.
        """
        self.stop_event.clear()
        return self._run_epoch(progress, on_batch, should_stop, done_before=0, total=None)

    def _stopping(self, should_stop) -> bool:
        return self.stop_event.is_set() or (should_stop is not None and bool(should_stop()))

    def _run_epoch(self, progress, on_batch, should_stop, done_before: int, total: int | None) -> EpochReport | None:
        stca_loss, _ = _loss_fns()
        on_batch = on_batch or self.on_batch
        cfg, net = self.cfg, self.net
        if self._pending is None:
            epoch = self.epoch + 1
            self._pending = dict(
                epoch=epoch,
                order=self.epoch_order(epoch),
                next=0,
                loss_sum=0.0,
                correct=0.0,
                n_judged=0,
                clusters=0.0,
                no_kplus=0,
                seconds=0.0,
            )
        st = self._pending
        epoch, order = st["epoch"], st["order"]
        n, nb = len(self.train), self.n_batches
        total = nb if total is None else total
        n_classes = len(self.train.class_names)
        t0 = time.perf_counter()
        while st["next"] < nb:
            if self._stopping(should_stop):
                st["seconds"] += time.perf_counter() - t0
                return None
            b = st["next"]
            idx = order[b * cfg.batch_size : min(n, (b + 1) * cfg.batch_size)].tolist()
            x, target = self._train_batch(epoch, b, idx)
            if cfg.dropout:
                g = torch.Generator(device=self.device).manual_seed(self._batch_seed(epoch, b, 1))
                rec = net(x, dropout=cfg.dropout, generator=g)
            else:
                rec = net(x)
            v, s = rec.voltages[-1], rec.spikes[-1]
            loss, info = stca_loss(
                v, s, target, self.neuron_cfg, task=cfg.task, objective=cfg.objective, lengths=self.train.lengths(idx)
            )  # padding never picks k*
            loss_value = float(loss.detach().item())
            if not math.isfinite(loss_value):
                self._fail(epoch, b + 1, f"the loss became {loss_value}")
            if not bool(torch.isfinite(v.detach()).all()):
                self._fail(epoch, b + 1, "output voltages became NaN or inf")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not all(w.grad is None or bool(torch.isfinite(w.grad).all()) for w in net.weights):
                self._fail(epoch, b + 1, "a gradient became NaN or inf")
            self.optimizer.step()
            if not all(bool(torch.isfinite(w.detach()).all()) for w in net.weights):
                self.optimizer.state.clear()  # its moments may be poisoned too
                self._fail(epoch, b + 1, "a weight became NaN or inf after the update")
            with torch.no_grad():
                for g, w in zip(self._good, net.weights):  # reuse the buffers: no allocation per step
                    g.copy_(w)
                pred = _predictions(v.detach(), s.detach(), self.neuron_cfg, cfg.task, cfg.objective)
                if cfg.task == "detect":
                    st["correct"] += float((pred == target).double().sum().item())
                    st["n_judged"] += target.numel()
                else:
                    st["correct"] += float((pred.long() == target).double().sum().item())
                    st["n_judged"] += target.numel()
                st["clusters"] += float(output_counts(s.detach(), self.neuron_cfg, "stca").double().sum().item())
                spikes = [int(layer.detach().sum().item()) for layer in rec.spikes]  # silent-layer check
                st["layer_spikes"] = [a + b for a, b in zip(st.get("layer_spikes") or [0] * len(spikes), spikes)]
                st["kplus"] = st.get("kplus", 0) + int((info.sign > 0).sum().item())
            no_kplus = _n_no_kplus(info)
            st["loss_sum"] += _per_sample_loss_sum(loss, info, len(idx))
            st["no_kplus"] += no_kplus
            st["next"] = b + 1
            if on_batch is not None:
                on_batch(BatchReport(epoch, b + 1, nb, loss_value, len(idx), no_kplus))
            if progress is not None:
                progress(done_before + b + 1, total, f"epoch {epoch}: batch {b + 1}/{nb}, loss {loss_value:.4f}")
        seconds = st["seconds"] + time.perf_counter() - t0
        self._pending = None
        self.epoch = epoch
        test_metrics = {"loss": float("nan"), "accuracy": float("nan")}
        if self.test is not None and len(self.test):
            test_metrics = self.evaluate(self.test)
        val_metrics = self._validate(epoch)
        if cfg.lr_step_epoch is not None and epoch == cfg.lr_step_epoch:
            for group in self.optimizer.param_groups:
                group["lr"] *= cfg.lr_step_factor
            self.lrs = [lr * cfg.lr_step_factor for lr in self.lrs]
        report = EpochReport(
            epoch=epoch,
            train_loss=st["loss_sum"] / n,
            test_loss=float(test_metrics["loss"]),
            train_accuracy=st["correct"] / max(st["n_judged"], 1),
            test_accuracy=float(test_metrics["accuracy"]),
            mean_clusters=st["clusters"] / (n * n_classes),
            n_no_kplus=int(st["no_kplus"]),
            seconds=seconds,
            n_samples=n,
            learning_rates=list(self.lrs),
            test_metrics=test_metrics,
            weights=weight_stats(net),
            probe=self.probe(),
            val_metrics=val_metrics,
            layer_spikes=list(st.get("layer_spikes") or []),
            n_kplus=int(st.get("kplus", 0)),
        )
        self.history.append(report)
        return report

    def _batch_seed(self, epoch: int, batch: int, what: int) -> int:
        return int(
            np.random.SeedSequence([self.cfg.seed, epoch, batch, what]).generate_state(1, np.uint64)[0] % (2**63)
        )

    def _train_batch(self, epoch: int, b: int, idx: list[int]):
        """The minibatch, augmented when the run asks for it (seeded by run seed, epoch and batch)."""
        if not self.augment.active:
            return self.train.batch(idx, dtype=self.dtype, device=self.device)
        from .augment import augment_train

        rng = np.random.default_rng(self._batch_seed(epoch, b, 0))
        return self.train.batch(
            idx, dtype=self.dtype, device=self.device, transform=lambda tr: augment_train(tr, self.augment, rng)
        )

    def _validate(self, epoch: int) -> dict | None:
        """Score the epoch on the validation set and keep the best weights so far (higher headline
        accuracy; ties: lower validation loss; then the earlier epoch)."""
        if self.val is None:
            return None
        m = self.evaluate(self.val)
        score = (float(m["accuracy"]), -float(m["loss"]))
        score = tuple(-math.inf if not math.isfinite(x) else x for x in score)
        if self.best is None or score > self.best[1:]:
            self.best = (epoch, *score)
            self._best_weights = self._snapshot()
        return m

    def best_weights(self) -> list[torch.Tensor] | None:
        """The kept weights of the best validation epoch so far (None before the first validation)."""
        return self._best_weights

    def restore_best(self) -> int | None:
        """Put back the weights of the best validation epoch; returns that epoch (None: nothing kept)."""
        if self.best is None or self._best_weights is None:
            return None
        with torch.no_grad():
            for w, g in zip(self.net.weights, self._best_weights):
                w.copy_(g)
        self._good = self._snapshot()
        return self.best[0]

    def probe(self) -> Probe:
        """The probe sample (``probe_index`` of the test set, else of the train set) under the current weights."""
        return make_probe(
            self.net, self._probe_set, self.cfg.probe_index, self.neuron_cfg, self.cfg.task, self.cfg.objective
        )

    def fit(
        self,
        epochs: int | None = None,
        callback: Callable[[EpochReport], object] | None = None,
        progress: Progress | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[EpochReport]:
        """Train ``epochs`` more epochs (default ``cfg.epochs``); returns this call's reports.

        ``callback(report)`` runs after each epoch; returning ``False`` stops the run. Setting
        ``stop_event`` (or ``should_stop()`` returning true) stops it between batches; the epoch
        resumes on the next call.
        """
        epochs = self.cfg.epochs if epochs is None else int(epochs)
        self.stop_event.clear()
        reports: list[EpochReport] = []
        remaining_batches = self.n_batches - (self._pending["next"] if self._pending else 0)
        total = remaining_batches + max(epochs - 1, 0) * self.n_batches
        done = 0
        for _ in range(epochs):
            if self._stopping(should_stop):
                break
            start = self._pending["next"] if self._pending else 0
            report = self._run_epoch(progress, on_batch, should_stop, done_before=done - start, total=total)
            if report is None:
                break
            done += self.n_batches - start
            reports.append(report)
            if callback is not None and callback(report) is False:
                break
        return reports

    def evaluate(self, dataset: SpikeDataset | None = None) -> dict:
        """``evaluate`` of the current network on ``dataset`` (default: the test set)."""
        dataset = self.test if dataset is None else dataset
        if dataset is None:
            raise ConfigError("there is no test set to evaluate on", "Trainer")
        tol = None
        if self.cfg.event_tolerance_ms is not None:
            tol = int(round(self.cfg.event_tolerance_ms / self.neuron_cfg.dt_ms))
        return evaluate(
            self.net,
            dataset,
            self.neuron_cfg,
            self.cfg.task,
            self.cfg.objective,
            batch_size=max(self.cfg.batch_size, 32),
            tolerance_steps=tol,
        )

    def save(self, directory, encoder_settings: dict | None = None, extra: dict | None = None):
        """Save the current network with its configs and class names (see ``checkpoint.save_model``)."""
        from .checkpoint import save_model

        extra = dict(extra or {})
        extra.setdefault("epochs_trained", self.epoch)
        return save_model(
            directory,
            self.net,
            self.neuron_cfg,
            self.cfg,
            class_names=list(self.train.class_names),
            encoder_settings=encoder_settings,
            extra=extra,
        )
