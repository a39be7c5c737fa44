"""Small shared UI helpers for the pages: page setup with the device box, and error display that turns
a ``StcaError`` into ``st.error`` with its message (never a traceback on screen)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pandas  # noqa: F401  (loaded whole before any page draws: see below)
import streamlit as st

import stca_engine as se
from stca_engine.errors import StcaError

from .text import plain  # noqa: F401  (re-exported: every page shows user text through it)

APP_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = APP_DIR.parent
log = logging.getLogger("stca_studio")

# Plotly looks pandas up in ``sys.modules`` without importing it; on a fresh server one session's
# thread could find it half-imported by another's and fail ("partially initialized module 'pandas'",
# seen in benchmarks/soak.py's first round). Importing it here, under the import lock, closes that.
PLOTLY_CONFIG = {"displaylogo": False, "scrollZoom": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def setup_page(title: str, icon: str = ":material/bolt:") -> None:
    """``set_page_config`` (wide layout) and the sidebar's engine/device box, shared by every page."""
    st.set_page_config(page_title=f"{title} · STCA Studio", page_icon=icon, layout="wide")
    server_started()
    watch_session()
    sidebar_device()


@st.cache_resource(show_spinner=False)
def server_started() -> list[str]:
    """Once per server process (the first page anyone opens): cap glibc's malloc arenas
    (``kernels.cpu.limit_heap_arenas``: the training threads of many sessions would each keep one) and
    remove the upload folders that sessions of earlier, gone servers left in the temp folder
    (``data.uploads.remove_stale_upload_dirs``)."""
    from stca_engine.data.uploads import remove_stale_upload_dirs
    from stca_engine.kernels.cpu import limit_heap_arenas

    try:
        arenas = limit_heap_arenas()
        if arenas:
            log.info("malloc arenas capped at %d (STCA_MALLOC_ARENAS)", arenas)
    except ValueError as exc:
        log.warning("%s: glibc's default arenas kept", exc)
    removed = remove_stale_upload_dirs()
    if removed:
        log.info("removed %d upload folder(s) of earlier servers", len(removed))
    return removed


@st.cache_resource(show_spinner=False)
def _session_reaper():
    """The server's one ``SessionReaper`` (a daemon thread), or None without a Streamlit runtime."""
    from streamlit import runtime
    from training_worker import tab_closed_s

    from .sessions import SessionReaper

    if not runtime.exists():
        return None
    reaper = SessionReaper(runtime.get_instance(), grace_s=tab_closed_s(), on_idle=_release_shared_caches)
    reaper.start()
    return reaper


def _release_shared_caches() -> None:
    """Nobody is connected: drop the data caches every session shared (clips, streams, scans), so an idle
    server's memory goes back near what it held at start. The next visitor recomputes what it needs."""
    st.cache_data.clear()
    log.info("no session left: cleared the shared data caches")


def watch_session() -> None:
    """Register this browser session, so it is closed (and its uploads removed) once its tab is gone
    for ``STCA_TAB_CLOSED_S`` (``components.sessions``)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    reaper = _session_reaper()
    if ctx is None or reaper is None:
        return
    state = ctx.session_state

    def release() -> None:
        for key in list(state.filtered_state):
            with contextlib.suppress(Exception):  # a widget's own key may refuse; its value is small
                del state[key]

    reaper.watch(ctx.session_id, release)


@st.cache_data(show_spinner=False)
def _device_text() -> str:
    return se.describe_device()


def sidebar_device() -> None:
    st.sidebar.markdown(f"**Device:** {_device_text()}")
    st.sidebar.caption(f"stca_engine {se.__version__}")


def show_error(exc: BaseException, what: str | None = None) -> None:
    """A user error shows its one-line message; anything else shows a short apology (the traceback goes to
    the server log only)."""
    if isinstance(exc, StcaError):
        st.error(plain(exc), icon=":material/error:")  # messages quote file names: never Markdown
    else:
        log.error("unexpected error%s", f" while {what}" if what else "", exc_info=exc)
        st.error(
            plain(
                f"Something went wrong{f' while {what}' if what else ''}: {type(exc).__name__}: {exc}. "
                "The details are in the server log."
            ),
            icon=":material/bug_report:",
        )


@contextlib.contextmanager
def user_errors(what: str | None = None):
    """``with user_errors("encoding"): ...`` – errors inside become an ``st.error`` box and the page goes
    on rendering (Streamlit's own stop/rerun signals are BaseExceptions and pass through)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - shown to the user, logged with traceback
        show_error(exc, what)


def plot(fig, key: str | None = None) -> None:
    """``st.plotly_chart`` with the shared config and the template kept (no Streamlit theme override)."""
    st.plotly_chart(fig, theme=None, key=key, config=PLOTLY_CONFIG)


def explain(text: str) -> None:
    """A short student-facing explanation next to a view."""
    st.info(text, icon=":material/lightbulb:")


def session_alive_check():
    """A thread-safe ``() -> bool`` saying whether this browser session is still connected to the
    server (``Runtime.is_active_session``), for the training worker to notice a closed tab; None
    where there is no Streamlit runtime (``AppTest``), so the worker falls back to its heartbeat."""
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not runtime.exists():
        return None
    rt, session_id = runtime.get_instance(), ctx.session_id
    return lambda: rt.is_active_session(session_id)
