"""A background thread that trains epoch by epoch while the page stays responsive.

The worker never calls Streamlit. The page talks to it only through thread-safe methods
(``start``/``pause``/``step``/``stop``/``heartbeat``) and reads it only through ``snapshot()``, an
immutable copy of its state, so a rerun of the page can never see half an epoch.

Lifetime: each browser session owns one worker (kept in ``st.session_state``). The thread is a
daemon, checks a stop flag between minibatches and stops by itself when the page has not polled
(``heartbeat``) for ``heartbeat_timeout_s`` seconds, so a closed tab does not keep a CPU busy.

What is trained is pluggable (``setup`` returns one ``EpochRunner`` per run label), so the threading
logic is tested with tiny fake runners and the engine glue (``EngineRunner``/``make_engine_setup``)
with the real trainer.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from stca_engine.errors import StcaError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
StopCheck = Callable[[], bool]

# statuses
IDLE = "idle"            # created, not started
PREPARING = "preparing"  # encoding datasets / building networks
RUNNING = "running"      # an epoch is being trained
PAUSED = "paused"        # waiting for start/step
DONE = "done"            # all epochs trained
STOPPED = "stopped"      # stopped by the page (reset) or because the page went away
ERROR = "error"          # a StcaError (bad input, NaN loss) or an internal error; see ``error``
FINISHED = (DONE, STOPPED, ERROR)


class EpochRunner(Protocol):
    """One training run (one network, one objective)."""

    def run_epoch(self, should_stop: StopCheck) -> Any:
        """Train one epoch (checking ``should_stop`` between minibatches) and return its report."""

    def snapshot(self) -> Any:
        """A copy of the trained model that stays valid while training goes on."""


Setup = Callable[[ProgressFn, StopCheck], "dict[str, EpochRunner]"]


class StopRequested(Exception):
    """Raised inside an epoch when the stop flag is seen between minibatches."""


@dataclass(frozen=True)
class WorkerSnapshot:
    """What the page draws: an immutable view of the worker at one moment."""

    status: str
    epoch: int                       # epochs finished (same for every run)
    n_epochs: int
    labels: tuple[str, ...]
    reports: dict[str, tuple]        # label -> one report per finished epoch
    progress: tuple[int, int, str]   # dataset preparation: (done, total, message)
    error: str | None
    stop_reason: str | None
    version: int                     # bumps on every change; the page skips redraws when equal
    epoch_seconds: float | None      # wall time of the last epoch (all runs)
    info: dict = field(default_factory=dict)  # whatever setup published (dataset summary, ...)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def active(self) -> bool:
        """True while the page should keep polling (something may still change by itself)."""
        return self.status in (PREPARING, RUNNING) or (self.status in (IDLE, PAUSED) and self.wants_run)

    wants_run: bool = False          # a start/step is pending or in progress


class TrainingWorker:
    """Runs ``setup`` then up to ``n_epochs`` epochs of every runner, on a daemon thread."""

    def __init__(self, setup: Setup, n_epochs: int, heartbeat_timeout_s: float = 30.0, name: str = "stca-train"):
        if n_epochs < 1:
            raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
        self._setup = setup
        self.n_epochs = int(n_epochs)
        self.heartbeat_timeout_s = float(heartbeat_timeout_s)
        self._name = name
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        # state below is guarded by self._cond
        self._status = IDLE
        self._want = "pause"          # "run" | "step" | "pause"
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

    def publish_info(self, **info) -> None:
        """For ``setup``: make facts (dataset sizes, class names, ...) visible in snapshots."""
        with self._cond:
            self._info = {**self._info, **info}
            self._bump()

    # ---- reads ----------------------------------------------------------------------------------
    def snapshot(self) -> WorkerSnapshot:
        with self._cond:
            return WorkerSnapshot(
                status=self._status, epoch=self._epoch, n_epochs=self.n_epochs, labels=self._labels,
                reports={k: tuple(v) for k, v in self._reports.items()}, progress=self._progress,
                error=self._error, stop_reason=self._stop_reason, version=self._version,
                epoch_seconds=self._epoch_seconds, info=dict(self._info),
                wants_run=self._want in ("run", "step"),
            )

    def model(self, label: str) -> Any:
        """The runner's latest ``snapshot()`` (taken after the last finished epoch), or None."""
        with self._cond:
            return self._models.get(label)

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
            self._last_beat = time.monotonic()
            self._bump()
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _beat_expired(self) -> bool:
        return time.monotonic() - self._last_beat > self.heartbeat_timeout_s

    def should_stop(self) -> bool:
        """Checked between minibatches: a stop request, or the page has gone away."""
        with self._cond:
            if not self._stop and self._beat_expired():
                self._stop = True
                self._stop_reason = f"the page stopped polling for {self.heartbeat_timeout_s:g} s"
                self._bump()
            return self._stop

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
            runners = self._setup(self._progress_cb, self.should_stop)
            if not runners:
                raise StcaError("nothing to train", "training setup")
            with self._cond:
                self._labels = tuple(runners)
                self._reports = {k: [] for k in runners}
                self._bump()
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
                    while self._want == "pause" and not self._stop and not self._beat_expired():
                        self._cond.wait(0.25)
                if self.should_stop():
                    raise StopRequested()
                self._set(status=RUNNING)
                t0 = time.perf_counter()
                new_reports, new_models = {}, {}
                for label, runner in runners.items():
                    new_reports[label] = runner.run_epoch(self._check_between_batches)
                    if self.should_stop():  # the epoch was cut short: never report it
                        raise StopRequested()
                    new_models[label] = runner.snapshot()
                with self._cond:
                    for label in runners:
                        self._reports[label].append(new_reports[label])
                    self._models.update(new_models)
                    self._epoch += 1
                    self._epoch_seconds = time.perf_counter() - t0
                    if self._want == "step":
                        self._want = "pause"
                    self._bump()
        except StopRequested:
            self._set(status=STOPPED)
        except StcaError as exc:
            self._set(status=ERROR, error=str(exc))
        except Exception as exc:  # a bug: keep the page alive, say what happened, log the traceback
            log.exception("training worker failed")
            self._set(status=ERROR, error=f"internal error ({type(exc).__name__}): {exc}")

    def _check_between_batches(self) -> bool:
        """Given to runners: True means 'stop now'; a runner may also just raise ``StopRequested``."""
        return self.should_stop()
