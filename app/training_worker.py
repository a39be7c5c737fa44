"""A background thread that trains epoch by epoch while the page stays responsive.

The worker never calls Streamlit. The page talks to it only through thread-safe methods
(``start``/``pause``/``step``/``stop``/``heartbeat``) and reads it only through ``snapshot()``, an
immutable copy of its state, so a rerun of the page can never see half an epoch.

Lifetime: each browser session owns one worker (kept in ``st.session_state``). The thread is a
daemon and checks between minibatches for a stop (Reset) and a pause (Pause, or nobody watching):
both take effect after the batch in flight, and a paused epoch resumes where it stopped. With
``idle_pause_s`` it pauses when nobody has watched for that long: a student who opens another page
finds the run paused, not lost, and resumes it. It stops for good, and drops its trainers,
networks and datasets so they can be freed, when the page that owns it is gone: ``owner_alive()``
(the page passes "is my Streamlit session still connected?") has been false for ``tab_closed_s``
seconds (the tab was closed), or, as a fallback where that is unknown, the page has not polled
(``heartbeat``) for ``heartbeat_timeout_s`` seconds.

What is trained is pluggable (``setup`` returns one ``EpochRunner`` per run label), so the threading
logic is tested with tiny fake runners and the engine glue (``EngineRunner``/``make_engine_setup``)
with the real trainer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from stca_engine.errors import StcaError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
StopCheck = Callable[[], bool]

# statuses
IDLE = "idle"  # created, not started
PREPARING = "preparing"  # encoding datasets / building networks
RUNNING = "running"  # an epoch is being trained
PAUSED = "paused"  # waiting for start/step
DONE = "done"  # all epochs trained
STOPPED = "stopped"  # stopped by the page (reset) or because the page went away
ERROR = "error"  # a StcaError (bad input, NaN loss) or an internal error; see ``error``
FINISHED = (DONE, STOPPED, ERROR)


class EpochRunner(Protocol):
    """One training run (one network, one objective)."""

    def run_epoch(self, should_stop: StopCheck) -> Any:
        """Train one epoch (checking ``should_stop`` between minibatches) and return its report."""

    def snapshot(self) -> Any:
        """A copy of the trained model that stays valid while training goes on."""


# ``setup(progress, should_stop)`` returns ``{label: runner}`` or ``({label: runner}, info)``; ``info``
# (dataset summary, class names, ...) is published in every later snapshot.
Setup = Callable[[ProgressFn, StopCheck], Any]


class StopRequested(Exception):
    """Raised inside an epoch when the stop flag is seen between minibatches."""


@dataclass(frozen=True)
class WorkerSnapshot:
    """What the page draws: an immutable view of the worker at one moment."""

    status: str
    epoch: int  # epochs finished (same for every run)
    n_epochs: int
    labels: tuple[str, ...]
    reports: dict[str, tuple]  # label -> one report per finished epoch
    progress: tuple[int, int, str]  # dataset preparation: (done, total, message)
    error: str | None
    stop_reason: str | None
    version: int  # bumps on every change; the page skips redraws when equal
    epoch_seconds: float | None  # wall time of the last epoch (all runs)
    info: dict = field(default_factory=dict)  # whatever setup published (dataset summary, ...)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def active(self) -> bool:
        """True while the page should keep polling (something may still change by itself)."""
        return self.status in (PREPARING, RUNNING) or (self.status in (IDLE, PAUSED) and self.wants_run)

    wants_run: bool = False  # a start/step is pending or in progress
    pause_reason: str | None = None  # set when the worker paused itself (nobody watching)


class TrainingWorker:
    """Runs ``setup`` then up to ``n_epochs`` epochs of every runner, on a daemon thread."""

    def __init__(
        self,
        setup: Setup,
        n_epochs: int,
        heartbeat_timeout_s: float | None = None,
        name: str = "stca-train",
        idle_pause_s: float | None = None,
        owner_alive: Callable[[], bool] | None = None,
        tab_closed_s: float | None = None,
    ):
        if n_epochs < 1:
            raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
        self._owner_alive = owner_alive
        self.tab_closed_s = float(DEFAULT_TAB_CLOSED_S if tab_closed_s is None else tab_closed_s)
        self._owner_gone_since: float | None = None
        self.idle_pause_s = None if idle_pause_s is None else float(idle_pause_s)
        self._pause_reason: str | None = None
        self._setup = setup
        self.n_epochs = int(n_epochs)
        self.heartbeat_timeout_s = float(DEFAULT_HEARTBEAT_S if heartbeat_timeout_s is None else heartbeat_timeout_s)
        self._name = name
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        # state below is guarded by self._cond
        self._status = IDLE
        self._want = "pause"  # "run" | "step" | "pause"
        self._stop = False
        self._stop_reason: str | None = None
        self._error: str | None = None
        self._labels: tuple[str, ...] = ()
        self._reports: dict[str, list] = {}
        self._models: dict[str, Any] = {}
        self._progress = (0, 0, "")
        self._epoch = 0
        self._version = 0
        self._epoch_seconds: float | None = None
        self._info: dict = {}
        self._last_beat = time.monotonic()
        self._runners: dict[str, Any] = {}

    # ---- commands from the page (any thread) ----------------------------------------------------
    def start(self) -> None:
        """Train continuously (starts the thread on first use; resumes after pause)."""
        self._command("run")

    def step(self) -> None:
        """Train exactly one more epoch, then pause."""
        self._command("step")

    def pause(self) -> None:
        """Pause after the current epoch (a partial epoch is never reported)."""
        with self._cond:
            if self._want != "pause":
                self._want = "pause"
                self._bump()

    def stop(self, reason: str = "stopped by the user", wait_s: float | None = None) -> None:
        """Stop as soon as the current minibatch ends; optionally wait for the thread to exit."""
        with self._cond:
            if not self._stop:
                self._stop = True
                self._stop_reason = reason
                if self._status in (IDLE,):
                    self._status = STOPPED
                self._bump()
            self._cond.notify_all()
        if wait_s is not None and self._thread is not None:
            self._thread.join(wait_s)

    def heartbeat(self) -> None:
        """The page is alive (call on every poll)."""
        with self._cond:
            self._last_beat = time.monotonic()

    # ---- reads ----------------------------------------------------------------------------------
    def snapshot(self) -> WorkerSnapshot:
        with self._cond:
            return WorkerSnapshot(
                status=self._status,
                epoch=self._epoch,
                n_epochs=self.n_epochs,
                labels=self._labels,
                reports={k: tuple(v) for k, v in self._reports.items()},
                progress=self._progress,
                error=self._error,
                stop_reason=self._stop_reason,
                version=self._version,
                epoch_seconds=self._epoch_seconds,
                info=dict(self._info),
                wants_run=self._want in ("run", "step"),
                pause_reason=self._pause_reason,
            )

    def model(self, label: str) -> Any:
        """The runner's latest ``snapshot()`` (taken after the last finished epoch), or None."""
        with self._cond:
            return self._models.get(label)

    def runner(self, label: str) -> Any:
        """The runner behind ``label`` (after setup); the page only uses its thread-safe read methods."""
        with self._cond:
            return self._runners.get(label)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- internals ------------------------------------------------------------------------------
    def _bump(self) -> None:
        self._version += 1

    def _command(self, want: str) -> None:
        with self._cond:
            if self._stop or self._status in FINISHED:
                return
            self._want = want
            self._pause_reason = None
            self._last_beat = time.monotonic()
            self._bump()
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _beat_expired(self) -> bool:
        return time.monotonic() - self._last_beat > self.heartbeat_timeout_s

    def _owner_gone(self) -> bool:
        """True once ``owner_alive()`` has said False for ``tab_closed_s`` seconds (a reconnect within
        that time keeps the run). Never raises: an owner check that fails counts as alive."""
        if self._owner_alive is None:
            return False
        try:
            alive = bool(self._owner_alive())
        except Exception:  # noqa: BLE001 - a broken check must not end a student's run
            log.debug("owner check failed", exc_info=True)
            alive = True
        now = time.monotonic()
        if alive:
            self._owner_gone_since = None
            return False
        if self._owner_gone_since is None:
            self._owner_gone_since = now
        return now - self._owner_gone_since >= self.tab_closed_s

    def _gone_reason(self) -> str | None:
        if self._owner_gone():
            return f"the browser tab was closed (its session was gone for {self.tab_closed_s:g} s)"
        if self._beat_expired():
            return f"the page stopped polling for {self.heartbeat_timeout_s:g} s"
        return None

    def should_stop(self) -> bool:
        """Checked between minibatches: a stop request, or the page has gone away."""
        with self._cond:
            if not self._stop:
                reason = self._gone_reason()
                if reason is not None:
                    self._stop = True
                    self._stop_reason = reason
                    self._bump()
                    log.warning("training run %s stopped: %s", self._name, reason)
            return self._stop

    def _pause_now(self) -> bool:
        """(under the lock) True when the running epoch should pause after this batch: Pause was
        pressed, or nobody has watched for ``idle_pause_s`` (then the pause reason says so)."""
        if (
            self._want == "run"
            and self.idle_pause_s is not None
            and time.monotonic() - self._last_beat > self.idle_pause_s
        ):
            self._want = "pause"
            self._pause_reason = f"no page watched this run for {self.idle_pause_s:g} s"
            self._bump()
        return self._want == "pause"

    def _progress_cb(self, done: int, total: int, message: str = "") -> None:
        with self._cond:
            self._progress = (int(done), int(total), str(message))
            self._bump()
        if self.should_stop():
            raise StopRequested()

    def _set(self, **kw) -> None:
        with self._cond:
            for k, v in kw.items():
                setattr(self, "_" + k, v)
            self._bump()
            self._cond.notify_all()

    def _main(self) -> None:
        try:
            self._set(status=PREPARING)
            result = self._setup(self._progress_cb, self.should_stop)
            runners, info = result if isinstance(result, tuple) else (result, {})
            if not runners:
                raise StcaError("nothing to train", "training setup")
            with self._cond:
                self._labels = tuple(runners)
                self._reports = {k: [] for k in runners}
                self._runners = dict(runners)
                self._info = {**self._info, **dict(info or {})}
                self._bump()
            new_reports, new_models, epoch_s = {}, {}, 0.0  # of the epoch in progress (across pauses)
            while True:
                with self._cond:
                    if self._epoch >= self.n_epochs:
                        self._status = DONE
                        self._bump()
                        return
                    if self._want == "pause" and not self._stop:
                        self._status = PAUSED
                        self._bump()
                    # wait for run/step, a stop, or the page going away (checked every 0.25 s)
                    while self._want == "pause" and not self._stop and self._gone_reason() is None:
                        self._cond.wait(0.25)
                if self.should_stop():
                    raise StopRequested()
                self._set(status=RUNNING)
                t0 = time.perf_counter()
                cut = False
                for label, runner in runners.items():
                    if label in new_reports:  # finished before a pause cut this epoch
                        continue
                    try:
                        report = runner.run_epoch(self._check_between_batches)
                    except StopRequested:
                        report = None
                    if self.should_stop():  # the epoch was cut short: never report it
                        raise StopRequested()
                    if report is None:  # paused between batches: the runner resumes this epoch later
                        cut = True
                        break
                    new_reports[label] = report
                    new_models[label] = runner.snapshot()
                epoch_s += time.perf_counter() - t0
                if cut:
                    continue
                with self._cond:
                    for label in runners:
                        self._reports[label].append(new_reports[label])
                    self._models.update(new_models)
                    new_reports, new_models = {}, {}
                    self._epoch += 1
                    self._epoch_seconds, epoch_s = epoch_s, 0.0
                    if self._want == "step":
                        self._want = "pause"
                    idle = time.monotonic() - self._last_beat
                    if self._want == "run" and self.idle_pause_s is not None and idle > self.idle_pause_s:
                        self._want = "pause"
                        self._pause_reason = f"no page watched this run for {self.idle_pause_s:g} s"
                    self._bump()
        except StopRequested:
            runners = result = runner = report = new_reports = new_models = None  # noqa: F841 - drop this frame's references
            self._release()
            self._set(status=STOPPED)
        except StcaError as exc:
            self._set(status=ERROR, error=str(exc))
        except Exception as exc:  # a bug: keep the page alive, say what happened, log the traceback
            log.exception("training worker failed")
            self._set(status=ERROR, error=f"internal error ({type(exc).__name__}): {exc}")

    def _check_between_batches(self) -> bool:
        """Given to runners: True means 'stop after this batch' (a stop, or a pause: the runner then
        returns None and continues the same epoch on its next ``run_epoch``); a runner may also just
        raise ``StopRequested``."""
        if self.should_stop():
            return True
        with self._cond:
            return self._pause_now()

    def _release(self) -> None:
        """A stopped run is over: drop the trainers, networks, datasets and model copies (the page may
        still hold the worker, or Streamlit the closed tab's session, for a while); what the
        snapshot shows (status, reports) stays."""
        with self._cond:
            self._runners = {}
            self._models = {}
            self._setup = None
            self._bump()


# ================================================================================================
# Engine glue: settings -> datasets -> one Trainer per objective
# ================================================================================================

OBJECTIVE_LABELS = {"stca": "STCA", "tdp1": "TDP1", "margin": "Margin"}
UPLOADS = "uploads"  # the data setting for the sounds this session uploaded or recorded on the Data page
NO_UPLOADS = (
    "this run trains on the sounds uploaded or recorded on the Data page, but this session has none: "
    "add them there (Upload files, a .zip of class folders, or Microphone)"
)
MAX_KEPT_WEIGHT_BYTES = 64 * 2**20  # per run: weights of every epoch are kept for replay up to this size


class EngineRunner:
    """One ``stca_engine.Trainer`` seen as an ``EpochRunner``.

    After each epoch it keeps a CPU copy of the weights (for replaying any probe sample at any earlier
    epoch and for handing a model to the Detect page while training goes on); the training network
    itself is only ever touched by the worker thread.
    """

    def __init__(self, trainer, objective: str):
        import threading as _threading

        self.trainer = trainer
        self.objective = objective
        self.weights_by_epoch: dict[int, list] = {0: self.current_weights()}  # 0: the initial weights
        self._kept_bytes = sum(w.numel() * w.element_size() for w in self.weights_by_epoch[0])
        self._probe_lock = _threading.Lock()
        self._probe_net = None

    # ---- EpochRunner ----------------------------------------------------------------------------
    def run_epoch(self, should_stop: StopCheck):
        def on_batch(_report):
            if should_stop():
                self.trainer.request_stop()

        if should_stop():
            return None
        report = self.trainer.step_epoch(on_batch=on_batch)
        if report is not None:
            weights = self.current_weights()
            size = sum(w.numel() * w.element_size() for w in weights)
            if self._kept_bytes + size > MAX_KEPT_WEIGHT_BYTES and self.weights_by_epoch:
                # thin out: drop every other kept epoch (the first and the newest always stay)
                kept = sorted(self.weights_by_epoch)
                for e in kept[1:-1:2]:
                    del self.weights_by_epoch[e]
                self._kept_bytes = size * len(self.weights_by_epoch)
            self.weights_by_epoch[report.epoch] = weights
            self._kept_bytes += size
        return report

    def current_weights(self) -> list:
        return [w.detach().to("cpu", copy=True) for w in self.trainer.net.weights]

    def snapshot(self) -> list:
        """The model to hand out: the best validation epoch's weights when the run selects on
        validation (``select="best-val"``), else the latest."""
        best = self.trainer.best_weights()
        if self.trainer.cfg.select == "best-val" and best is not None:
            return [w.detach().to("cpu", copy=True) for w in best]
        return self.current_weights()

    # ---- for the page ---------------------------------------------------------------------------
    @property
    def neuron_cfg(self):
        return self.trainer.neuron_cfg

    @property
    def probe_set(self):
        return self.trainer._probe_set

    def architecture(self) -> dict:
        return self.trainer.net.to_dict()

    def set_probe_index(self, index: int) -> None:
        """Later epochs report this sample (an int store: safe while the worker trains)."""
        if 0 <= int(index) < len(self.probe_set):
            self.trainer.cfg.probe_index = int(index)

    def build_net(self, weights):
        """A fresh network (own copy, CPU) holding ``weights``: safe to use while training goes on."""
        import torch

        from stca_engine.network import SNN

        net = SNN.from_dict(self.architecture(), dtype=weights[0].dtype, device="cpu")
        with torch.no_grad():
            for p, w in zip(net.weights, weights):
                p.copy_(w)
        return net

    def _with_net_at(self, epoch: int, fn):
        """``fn(net)`` on the page's own network holding the weights after ``epoch`` (None if not kept)."""
        weights = self.weights_by_epoch.get(int(epoch))
        if weights is None:
            return None
        with self._probe_lock:
            if self._probe_net is None:
                self._probe_net = self.build_net(weights)
            else:
                import torch

                with torch.no_grad():
                    for p, w in zip(self._probe_net.weights, weights):
                        p.copy_(w)
            return fn(self._probe_net)

    def probe_at(self, epoch: int, index: int):
        """The ``Probe`` of sample ``index`` under the weights after ``epoch`` (None if not kept)."""
        from stca_engine.reports import make_probe

        cfg = self.trainer.cfg
        return self._with_net_at(
            epoch,
            lambda net: make_probe(net, self.probe_set, int(index), self.trainer.neuron_cfg, cfg.task, self.objective),
        )

    def credit_at(self, epoch: int, index: int):
        """The ``CreditMap`` of sample ``index`` under the weights after ``epoch``: where the loss would send
        its error now (None if those weights are not kept)."""
        from stca_engine.credit import credit_of_sample

        cfg = self.trainer.cfg
        return self._with_net_at(
            epoch,
            lambda net: credit_of_sample(
                net, self.probe_set, int(index), self.trainer.neuron_cfg, cfg.task, self.objective
            ),
        )

    def weight_change(self, epoch: int):
        """``(ΔW per layer as numpy [n_out, n_in], from_epoch)``: the weights after ``epoch`` minus those after
        the nearest earlier kept epoch (``epoch - 1`` unless long runs thinned the kept copies); None when
        ``epoch`` is not kept."""
        after = self.weights_by_epoch.get(int(epoch))
        earlier = [e for e in list(self.weights_by_epoch) if e < int(epoch)]
        if after is None or not earlier:
            return None
        before_epoch = max(earlier)
        before = self.weights_by_epoch.get(before_epoch)
        if before is None:
            return None
        return [(a - b).float().numpy() for a, b in zip(after, before)], before_epoch


def train_config_for(settings, objective: str, has_val: bool = True):
    """``TrainConfig`` of one run from the page's ``TrainSettings`` (validated)."""
    from state import SGD_MOMENTUM  # the page's "SGD (momentum 0.9)"

    from stca_engine.config import TrainConfig
    from stca_engine.defaults import REGULARISATION

    reg = {k: REGULARISATION[k] for k in ("augment", "dropout", "select")} if _regularised(settings) else {}
    if not has_val:
        reg.pop("select", None)  # no validation split (the data came without one): keep the last epoch
    return TrainConfig(
        task=settings.task,
        objective=objective,
        hidden=settings.hidden_sizes(),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        optimizer=settings.optimizer,
        lr=float(settings.lr),
        seed=settings.seed,
        init_std=float(settings.init_std),
        momentum=SGD_MOMENTUM if settings.optimizer == "sgd" else 0.0,
        probe_index=0,
        device="auto",
        dtype="float32",
        **reg,
    ).validate()


def _regularised(settings) -> bool:
    return bool(getattr(settings, "regularise", False))


def neuron_config_for(settings):
    from stca_engine.config import NeuronConfig

    return NeuronConfig(**settings.neuron_dict())


def check_settings(settings) -> list[str]:
    """Every problem that would stop a run from starting, phrased for the user (empty = fine)."""
    from stca_engine.errors import StcaError as _E

    problems = []
    for obj in settings.objectives():
        try:
            train_config_for(settings, obj)
        except _E as exc:
            problems.append(str(exc))
    try:
        neuron_config_for(settings)
    except _E as exc:
        problems.append(str(exc))
    try:
        from stca_engine.data.sources import parse_data_spec

        if settings.data != UPLOADS:  # the session's upload set: checked when the run starts
            parse_data_spec(settings.data)
    except _E as exc:
        problems.append(str(exc))
    return list(dict.fromkeys(problems))


def _is_image(settings) -> bool:
    from stca_engine.data.sources import parse_data_spec

    return settings.data != UPLOADS and parse_data_spec(settings.data).is_image


def _upload_set_or_fail(upload_set):
    from stca_engine.errors import DatasetError

    if upload_set is None:
        raise DatasetError(NO_UPLOADS, UPLOADS)
    return upload_set


DEFAULT_HEARTBEAT_S = 900.0  # STCA_HEARTBEAT_S; docs/ROBUSTNESS.md's limits table states the same value
DEFAULT_IDLE_PAUSE_S = 120.0  # STCA_IDLE_PAUSE_S
DEFAULT_TAB_CLOSED_S = 30.0  # STCA_TAB_CLOSED_S


def _env_seconds(name: str, default: float) -> float:
    import os

    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise StcaError(f"must be a number of seconds, got {raw!r}", name) from None
    if not value > 0:
        raise StcaError(f"must be > 0, got {raw!r}", name)
    return value


def heartbeat_timeout_s() -> float:
    """Seconds without a poll before a session's worker stops for good (``$STCA_HEARTBEAT_S``, default
    ``DEFAULT_HEARTBEAT_S``): the tab was closed. Longer than the idle pause, so a student who opened
    another page finds the run paused (not stopped), and long enough for a throttled background tab."""
    return _env_seconds("STCA_HEARTBEAT_S", DEFAULT_HEARTBEAT_S)


def tab_closed_s() -> float:
    """Seconds a session's Streamlit connection may be gone before its worker stops for good
    (``$STCA_TAB_CLOSED_S``, default ``DEFAULT_TAB_CLOSED_S``): the tab was closed. Switching pages
    keeps the connection; a reconnect within this time (a network blip) keeps the run."""
    return _env_seconds("STCA_TAB_CLOSED_S", DEFAULT_TAB_CLOSED_S)


def idle_pause_s() -> float:
    """Seconds without a poll before a running worker pauses itself (``$STCA_IDLE_PAUSE_S``, default
    ``DEFAULT_IDLE_PAUSE_S``): the user went to another page; the run waits for Resume instead of
    using the CPU unseen."""
    return _env_seconds("STCA_IDLE_PAUSE_S", DEFAULT_IDLE_PAUSE_S)


def _sample_label(sample, class_names) -> str:
    """'stream 3: horn, bells, horn' for streams, 'clip 4: horn' for single clips."""
    if sample.events:
        seq = ", ".join(class_names[e.class_index] for e in sample.events)
        return f"{sample.name}: {seq}" if sample.name else seq
    if not isinstance(sample.target, np.ndarray) and class_names:
        return f"{sample.name}: {class_names[int(sample.target)]}" if sample.name else class_names[int(sample.target)]
    return sample.name or "sample"


def make_engine_setup(settings, prepare_data=None, upload_set=None) -> Setup:
    """The worker's ``setup`` for one page run: encode the datasets (with progress), then build one
    ``Trainer`` per objective on the same data with the same seed (so the same initial weights).

    ``prepare_data(settings, progress) -> (train, test, info)`` defaults to the engine's data sources;
    tests pass their own datasets. ``upload_set``: the session's uploaded ``ClipSet``, used when the
    settings' data is ``uploads``."""
    if prepare_data is None:

        def prepare_data(s, progress):
            return prepare_engine_data(s, progress, upload_set=upload_set)

    def setup(progress: ProgressFn, should_stop: StopCheck):
        from stca_engine.trainer import Trainer

        neuron_cfg = neuron_config_for(settings)
        train, test, info = prepare_data(settings, progress)
        if should_stop():
            raise StopRequested()
        from stca_engine.memory import check_run, dataset_spike_bytes, longest_steps
        from stca_engine.network import build_network

        # the exact estimate, now that the longest sample is known: refused above STCA_MAX_RUN_MB
        val = (info or {}).get("val") if isinstance(info, dict) else None
        est = check_run(
            run_estimate(
                settings,
                longest_steps(train, test, val),
                int(train.n_inputs),
                len(train.class_names),
                dataset_spike_bytes(train, test, val),
            ),
            "training run",
        )

        runners = {}
        val = (info or {}).get("val") if _regularised(settings) else None
        val = val if val is not None and len(val) else None  # too few clips to hold any out
        for objective in settings.objectives():
            cfg = train_config_for(settings, objective, has_val=val is not None)
            # the engine's one network rule; same seed -> the same initial weights for every objective
            net = build_network(cfg, neuron_cfg, train.n_inputs, len(train.class_names))
            runners[objective] = EngineRunner(Trainer(net, train, test, neuron_cfg, cfg, val=val), objective)
        probe_set = next(iter(runners.values())).probe_set
        class_names = list(train.class_names)
        out = {
            "class_names": class_names,
            "n_inputs": int(train.n_inputs),
            "n_train": len(train),
            "n_test": 0 if test is None else len(test),
            "probe_names": [_sample_label(smp, class_names) for smp in probe_set.samples[:200]],
            "memory": est.describe(),
            "summary": (
                f"{len(train)} training and {0 if test is None else len(test)} test "
                f"{'streams' if settings.task == 'detect' else 'clips'} · {len(class_names)} classes · "
                f"{train.n_inputs} input afferents · network "
                f"{'-'.join(str(n) for n in [train.n_inputs, *settings.hidden_sizes(), len(class_names)])}"
            ),
            **{k: v for k, v in dict(info or {}).items() if k != "val"},
        }
        return runners, out

    return setup


def run_estimate(settings, n_steps: int, n_inputs: int, n_classes: int, data_bytes: int = 0):
    """``memory.RunEstimate`` of the page's run: every objective's network (compared runs keep both),
    the weights kept per epoch for replay, one minibatch of the longest sample."""
    from stca_engine.memory import estimate_run

    cfg = train_config_for(settings, settings.objective)
    sizes = [int(n_inputs), *cfg.hidden, int(n_classes)]
    w_bytes = sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) * 4
    kept = min((int(settings.epochs) + 1) * w_bytes, MAX_KEPT_WEIGHT_BYTES + w_bytes) + w_bytes  # + the probe net
    return estimate_run(
        sizes,
        n_steps,
        cfg.batch_size,
        cfg.dtype,
        cfg.optimizer,
        cfg.momentum,
        n_runs=len(settings.objectives()),
        data_bytes=data_bytes,
        kept_weight_bytes=kept,
    )


def planned_estimate(settings, longest_clip_s: float | None, n_inputs: int | None = None, n_classes: int | None = None):
    """The estimate shown before Start, from the settings and the longest clip of the source (its
    header; ``longest_clip_s``): a stream is at most ``events_per_stream`` such clips plus its
    longest gaps. The datasets' spikes are only counted once encoded (the check after encoding)."""
    from stca_engine.data.streams import DEFAULT_GAP_S

    is_image = _is_image(settings)
    dt = float(settings.dt_ms)
    if is_image:
        n_steps = 250  # the rate encoder's default
    else:
        seconds = float(longest_clip_s or 1.0)
        if settings.task == "detect":
            k = int(settings.events_per_stream)
            seconds = k * seconds + (k + 1) * DEFAULT_GAP_S[1]
        n_steps = int(np.ceil(seconds * 1000.0 / dt))
    if n_inputs is None:
        n_inputs = 64 if is_image else encoder_for(settings).n_units
    if n_classes is None:
        n_classes = len(settings.class_list() or []) or 4
    return run_estimate(settings, n_steps, n_inputs, n_classes)


def _clipset_for(settings, upload_set):
    """The settings' data as a loaded set: the session's uploads (restricted to the chosen classes), or
    the data spec's source with folders confined to the allowed roots."""
    from stca_engine.data import sources

    if settings.data == UPLOADS:
        cs = _upload_set_or_fail(upload_set)
        return cs.subset(settings.class_list()) if settings.class_list() else cs
    opts = {"seed": int(settings.seed)}
    if settings.class_list():
        opts["classes"] = settings.class_list()
    return sources.load_clipset(sources.parse_data_spec(settings.data), restrict=True, **opts)


def source_outline(settings, upload_set=None) -> dict:
    """``{"longest_clip_s", "n_inputs" (images; None for sound: the encoder decides), "n_classes"}`` of
    the settings' data source from its listing (file headers only, nothing decoded); what
    ``planned_estimate`` needs. Raises ``StcaError``."""
    from stca_engine.data.clips import header_seconds

    data = _clipset_for(settings, upload_set)
    if _is_image(settings):
        return {
            "longest_clip_s": None,
            "n_inputs": int(np.prod(data.images.shape[1:])),
            "n_classes": len(data.class_names),
        }
    longest = 0.0
    for clip in data.clips:
        full = header_seconds(clip.path, clip.kind)
        end = clip.end_s if clip.end_s is not None else full
        if end is not None:
            longest = max(longest, float(end) - float(clip.start_s))
    return {"longest_clip_s": longest or None, "n_inputs": None, "n_classes": len(data.class_names)}


def encoder_for(settings):
    """The sound encoder the settings ask for, at the network's time step."""
    from stca_engine.encoders import make_encoder

    if settings.encoder == "spikegram":
        return make_encoder(
            "spikegram",
            dt_ms=float(settings.dt_ms),
            n_kernels=int(settings.n_channels),
            spikes_per_second=float(settings.spike_rate),
        )
    return make_encoder("spectral", dt_ms=float(settings.dt_ms), n_bands=int(settings.n_channels))


def prepare_engine_data(settings, progress: ProgressFn, upload_set=None):
    """``(train, test, info)`` from the engine's data sources, folders confined to the allowed roots, or
    from the session's ``upload_set`` when the settings' data is ``uploads``."""
    from stca_engine.data import sources

    kw = {}
    if settings.task == "detect":
        kw.update(
            n_train_streams=int(settings.n_train),
            n_test_streams=int(settings.n_test),
            events_per_stream=int(settings.events_per_stream),
        )
    kind = UPLOADS
    if settings.data == UPLOADS:
        data = _clipset_for(settings, upload_set)
    else:
        spec = sources.parse_data_spec(settings.data)
        kind = spec.kind
        if not settings.class_list():
            data = spec
            kw["restrict"] = True
        elif spec.kind == "demo":  # load_demo takes its options as **opts, which the generic loader refuses
            from stca_engine.data.demo import load_demo

            data = load_demo(seed=int(settings.seed), classes=settings.class_list())
        else:
            data = sources.load_clipset(spec, restrict=True, seed=int(settings.seed), classes=settings.class_list())
    encoder = None if _is_image(settings) else encoder_for(settings)
    if _regularised(settings):
        from stca_engine.defaults import REGULARISATION

        kw["val_fraction"] = REGULARISATION["val_fraction"]
    if kind == "demo" or (kind == UPLOADS and len(data.clips) <= 300):
        kw["workers"] = 1  # a few hundred short clips: a process pool would cost more to start than it saves
    return sources.prepare_datasets(
        data,
        settings.task,
        encoder=encoder,
        seed=int(settings.seed),
        progress=progress,
        dt_ms=float(settings.dt_ms),
        **kw,
    )
