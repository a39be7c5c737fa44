"""Closing the sessions of closed tabs, so what they hold (upload folders, clip sets, figure caches)
goes when the tab goes.

Streamlit keeps a disconnected session for a reconnect (``server.disconnectedSessionTTL``), but it
drops expired ones only when its session store is next written, i.e. when another tab disconnects:
on a quiet classroom server the last students' sessions, and their upload folders, stay for good.
Every page registers its session here; one daemon thread per server looks every ``period_s`` and
closes a session whose connection has been gone for ``grace_s`` (``STCA_TAB_CLOSED_S``, the same
wait after which its training run stops), through ``Runtime.clear_user_info_for_session``: the
public, thread-safe call that closes a stored session and forbids its resumption. A reconnect within
the grace keeps everything.

Closing alone frees nothing on a quiet server: Streamlit's runtime loop keeps the last session it
served bound to a loop variable until it next has something to send, and with it that session's
state. So each watched session also hands over a ``release`` callable (the page empties its
``session_state``), called right after the close; the upload folders' finalisers run then.

When the last watched session has been closed, ``on_idle`` runs (the app clears ``st.cache_data``:
encoded clips, demo streams and scans that sessions shared); a server nobody uses keeps none of them,
and the next sweep hands the freed heap back to the OS.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("stca_studio")

DEFAULT_PERIOD_S = 5.0


class _Runtime(Protocol):
    def is_active_session(self, session_id: str) -> bool: ...

    def clear_user_info_for_session(self, session_id: str) -> None: ...


class SessionReaper:
    """Tracks session ids; ``sweep()`` closes those inactive for longer than ``grace_s``."""

    def __init__(
        self,
        runtime: _Runtime,
        grace_s: float,
        period_s: float = DEFAULT_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
        on_idle: Callable[[], None] | None = None,
    ):
        self._rt, self.grace_s, self.period_s, self._clock = runtime, float(grace_s), float(period_s), clock
        self._on_idle = on_idle  # called when the last watched session has been closed
        self._gone_since: dict[str, float | None] = {}  # id -> when it was first seen disconnected
        self._release: dict[str, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed_last_sweep = False

    def watch(self, session_id: str, release: Callable[[], None] | None = None) -> None:
        with self._lock:
            self._gone_since.setdefault(session_id, None)
            if release is not None:
                self._release.setdefault(session_id, release)

    @property
    def watched(self) -> list[str]:
        with self._lock:
            return list(self._gone_since)

    def sweep(self) -> list[str]:
        """Close the sessions gone for longer than the grace; returns their ids."""
        if self._closed_last_sweep:
            from stca_engine.kernels.cpu import release_free_heap

            gc.collect()  # what the closed sessions held in reference cycles goes now
            release_free_heap()  # and the heap they used goes back to the OS
            self._closed_last_sweep = False
        now, closing = self._clock(), []
        with self._lock:
            for sid, since in list(self._gone_since.items()):
                if self._rt.is_active_session(sid):
                    self._gone_since[sid] = None
                elif since is None:
                    self._gone_since[sid] = now
                elif now - since >= self.grace_s:
                    closing.append((sid, self._release.pop(sid, None)))
                    del self._gone_since[sid]
        for sid, release in closing:
            try:
                self._rt.clear_user_info_for_session(sid)
                if release is not None:
                    release()
            except Exception:  # noqa: BLE001 - a reaper must outlive one odd session
                log.exception("could not close the session of a closed tab (%s)", sid)
        closed = [sid for sid, _ in closing]
        if closed:
            log.warning("closed %d session(s) of tabs gone for %.0f s", len(closed), self.grace_s)
            self._closed_last_sweep = True
            with self._lock:
                idle = not self._gone_since
            if idle and self._on_idle is not None:
                try:
                    self._on_idle()
                except Exception:  # noqa: BLE001
                    log.exception("could not release the server's caches")
        return closed

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="stca-session-reaper", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.period_s)
            try:
                self.sweep()
            except Exception:  # noqa: BLE001
                log.exception("session reaper sweep failed")
