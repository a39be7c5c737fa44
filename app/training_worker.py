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
logic is tested with tiny fake runners; ``engine_runs.py`` holds the engine glue (``EngineRunner``,
``make_engine_setup``), tested with the real trainer. This module is the thread state machine only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

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
                    _log_epoch_time(self._epoch)
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


def _log_epoch_time(epoch: int) -> None:
    """With ``$STCA_EPOCH_LOG`` set, append "epoch <tab> wall-clock seconds" when an epoch is published:
    how ``benchmarks/app.py`` learns when an epoch finished, to time how late the browser shows it."""
    import os

    path = os.environ.get("STCA_EPOCH_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{epoch}\t{time.time():.4f}\n")


# ---- how long a run outlives its page (operator settings) ----------------------------------------
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
