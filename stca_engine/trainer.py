"""Training loop: epochs of shuffled minibatches, SGD/Adam (reports in ``reports.py``, metrics in
``evaluation.py``).

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

import numpy as np
import torch

from .config import DTYPES, NeuronConfig, TrainConfig
from .data.types import SpikeDataset
from .errors import ConfigError, TrainingError
from .evaluation import (  # noqa: F401  (evaluate and output_counts keep their old import path)
    _check_compatible,
    _loss_fns,
    _n_no_kplus,
    _net_device_dtype,
    _per_sample_loss_sum,
    _predictions,
    evaluate,
    output_counts,
)
from .reports import BatchReport, EpochReport, Probe, WeightStats, make_probe, weight_stats  # noqa: F401
from .revive import revive_loss

ADAM_DEFAULT_LR = 1e-3
_WHERE = "train config"

Progress = Callable[[int, int, str], None]


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
            from .network import build_network

            net = build_network(self.cfg, neuron_cfg, train.n_inputs, len(train.class_names))
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
            lengths = self.train.lengths(idx)
            loss, info = stca_loss(
                v,
                s,
                target,
                self.neuron_cfg,
                task=cfg.task,
                objective=cfg.objective,
                lengths=lengths,
                tdp1_spikes=cfg.tdp1_spikes,
            )  # padding never picks k*
            loss_value = float(loss.detach().item())
            if not math.isfinite(loss_value):
                self._fail(epoch, b + 1, f"the loss became {loss_value}")
            if not bool(torch.isfinite(v.detach()).all()):
                self._fail(epoch, b + 1, "output voltages became NaN or inf")
            revived = 0
            if cfg.revive and info.n_no_kplus:
                extra, revived = revive_loss(
                    rec.voltages,
                    rec.spikes,
                    list(net.weights),
                    info.no_kplus,
                    self.neuron_cfg.theta,
                    lengths,
                )  # only (sample, neuron) pairs stuck without a k⁺; the reported loss stays Eq. 9/10
            self.optimizer.zero_grad(set_to_none=True)
            (loss if not revived else loss + extra).backward()
            if not all(w.grad is None or bool(torch.isfinite(w.grad).all()) for w in net.weights):
                self._fail(epoch, b + 1, "a gradient became NaN or inf")
            self.optimizer.step()
            if not all(bool(torch.isfinite(w.detach()).all()) for w in net.weights):
                self.optimizer.state.clear()  # its moments may be poisoned too
                self._fail(epoch, b + 1, "a weight became NaN or inf after the update")
            with torch.no_grad():
                for g, w in zip(self._good, net.weights):  # reuse the buffers: no allocation per step
                    g.copy_(w)
                pred = _predictions(v.detach(), s.detach(), self.neuron_cfg, cfg.task, cfg.objective, cfg.tdp1_spikes)
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
            st["revived"] = st.get("revived", 0) + revived
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
            n_revived=int(st.get("revived", 0)),
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
            self.net,
            self._probe_set,
            self.cfg.probe_index,
            self.neuron_cfg,
            self.cfg.task,
            self.cfg.objective,
            self.cfg.tdp1_spikes,
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
            tdp1_spikes=self.cfg.tdp1_spikes,
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
