"""Train: live STCA training with voltage traces, spike clusters and the k⁺/k⁻ points, epoch by epoch.

The page only draws and sends commands. Training runs in this session's ``TrainingWorker`` thread;
one fragment polls it four times a second and draws what changed (figures keep their zoom through
``uirevision``).
Settings live in the URL so a link reopens the same run.
"""

from __future__ import annotations

from dataclasses import replace

import engine_runs as er
import models_ui
import state
import streamlit as st
import training_worker as tw
from components import plain, session_alive_check, setup_page
from components.train_live import POLL_S, current_run, live, settled_key

from stca_engine import limits as se_limits
from stca_engine import memory as se_memory
from stca_engine.errors import StcaError

setup_page("Train", "🏋️")

ss = st.session_state
K = state.widget_key

# ---- session init: settings from the URL (once per session) -----------------------------------
if "train.settings" not in ss:
    settings0, url_problems = state.settings_from_query(st.query_params)
    ss["train.settings"] = settings0
    ss["train.url_problems"] = url_problems
    ss[K("classroom")] = state.classroom_from_query(st.query_params)
    ss["train.classroom_saved"] = ss[K("classroom")]
if K("classroom") not in ss:  # widget state is dropped while another page is shown
    ss[K("classroom")] = ss.get("train.classroom_saved", False)
cur: state.TrainSettings = ss["train.settings"]


def _seed_widget(name: str):
    if K(name) not in ss:
        ss[K(name)] = getattr(ss["train.settings"], name)


def _tau_s_follows_tau_m():
    """τm typed: τs becomes τm/4, as when only τm is given to the engine or the CLI (SPEC §2)."""
    ss[K("tau_s_ms")] = float(ss[K("tau_m_ms")]) / 4.0


def _upload_set():
    """The ClipSet this session uploaded or recorded on the Data page (None if there is none)."""
    held = ss.get("data.upload_set")
    return held[1] if held else None


def _use_uploads():
    """The "train on my sounds" switch: data becomes the session's uploads, or goes back to what it was."""
    cur = ss["train.settings"]
    if ss[K("use_uploads")]:
        if cur.data != er.UPLOADS:
            ss["train.data_before_uploads"] = cur.data
        new = er.UPLOADS
    else:
        new = ss.get("train.data_before_uploads", "demo") if cur.data == er.UPLOADS else cur.data
    ss["train.settings"] = replace(cur, data=new, classes="")
    ss[K("data")], ss[K("classes")] = new, ""


def _apply_preset():
    """Preset picked: every setting takes the preset's value (the data source is kept)."""
    name = ss[K("preset")]
    try:
        data = ss["train.settings"].data
        new = replace(state.preset_settings(name), data=data)
        if data == er.UPLOADS:  # a preset's class list names its own data set's classes, not the user's
            new = replace(new, classes="")
    except StcaError as exc:
        ss["train.flash"] = ("error", str(exc))
        return
    ss["train.settings"] = new
    state.write_settings_to_session(ss, new)


# ---- sidebar: device, classroom mode, preset, settings ------------------------------------------
presets = state.load_presets()
with st.sidebar:
    classroom = st.toggle(
        "Classroom mode",
        key=K("classroom"),
        help="Hide the advanced controls: only the preset, task, objective and comparison.",
    )
    ss["train.classroom_saved"] = classroom
    st.header("Run settings")
    _seed_widget("preset")
    if ss[K("preset")] not in presets:
        ss[K("preset")] = next(iter(presets))
    st.selectbox(
        "Preset",
        list(presets),
        key=K("preset"),
        format_func=lambda n: presets[n].label,
        on_change=_apply_preset,
        help="Fills every setting below; you can still change them.",
    )
    st.caption(presets[ss[K("preset")]].description)
    uploads = _upload_set()
    if uploads is not None or cur.data == er.UPLOADS:
        ss[K("use_uploads")] = ss["train.settings"].data == er.UPLOADS
        n_clips = 0 if uploads is None else len(uploads.clips)
        n_classes = 0 if uploads is None else len(uploads.class_names)
        st.toggle(
            f"Train on my sounds ({n_clips} clips, {n_classes} classes)",
            key=K("use_uploads"),
            on_change=_use_uploads,
            help="The sounds uploaded (files or a .zip of class folders) or recorded on the Data page in "
            "this session; they stay on the server only while this session lasts.",
        )
        if cur.data == er.UPLOADS and uploads is None:
            st.warning(er.NO_UPLOADS[0].upper() + er.NO_UPLOADS[1:] + ".")

    values: dict = {}

    def widget(name, options=None, **extra):
        """The setting's widget as ``state.widget_args`` describes it (bounds from FIELD_SPEC)."""
        _seed_widget(name)
        kind, kw = state.widget_args(name, options)
        kw.update(extra)
        values[name] = getattr(st, kind)(key=K(name), **kw)
        return values[name]

    task = widget("task")
    objectives = [o for o in state.OBJECTIVES if task == "classify" or o != "margin"]
    for name in ("objective", "compare_objective"):
        if ss.get(K(name), getattr(cur, name)) not in objectives:
            ss[K(name)] = "stca"
    widget("objective", objectives, help=state.OBJECTIVE_HELP)
    if widget("compare"):
        widget("compare_objective", objectives)
    for name in ("epochs", "regularise", "seed"):
        widget(name)
    if not classroom:
        for title, names in state.SIDEBAR_GROUPS:
            with st.expander(title, expanded=False):
                for name in names:
                    widget(name, **({"on_change": _tau_s_follows_tau_m} if name == "tau_m_ms" else {}))

values["preset"] = ss[K("preset")]
settings, widget_problems = state.settings_from_session({K(k): v for k, v in values.items()}, cur)
ss["train.settings"] = settings

# keep the URL in step with the settings (a teacher shares the address bar)
want_query = state.settings_to_query(settings)
if classroom:
    want_query[state.CLASSROOM_KEY] = "1"
if {k: st.query_params.get(k) for k in st.query_params} != want_query:
    st.query_params.from_dict(want_query)

# ---- header ---------------------------------------------------------------------------------------
st.title("Train")
st.markdown(
    "Train a spiking network and watch it learn. Each **output neuron** stands for one sound class; during "
    "training it should fire one **spike cluster** (a burst of spikes closer than T_in) per occurrence of its "
    "class. After every epoch the loss picks one time point per neuron: **k⁺** where the voltage should rise "
    "(a cluster is missing) or **k⁻** where a cluster should disappear."
)
if not classroom:
    st.caption("The address bar holds these settings: copy it to share this exact run (same data, same seed).")

for p in ss.pop("train.url_problems", []) or []:
    st.warning(f"Link setting ignored — {plain(p)}")  # p quotes the link: shown as plain text
for p in widget_problems:
    st.error(plain(p))
flash = ss.pop("train.flash", None)
flash_slot = st.container()  # always one slot: the run buttons below never change place
if flash:
    getattr(flash_slot, flash[0])(plain(flash[1]))


# ---- run control ------------------------------------------------------------------------------------
def _new_run_checked(s: state.TrainSettings):
    # a bad value typed into a widget blocks the run (never train silently with the fallback value)
    _, typed_problems = state.settings_from_session(ss, s)
    problems = list(dict.fromkeys([*typed_problems, *er.check_settings(s)]))
    if problems:
        ss["train.flash"] = ("error", " · ".join(problems))
        return None
    try:
        worker = tw.TrainingWorker(
            er.make_engine_setup(s, upload_set=_upload_set() if s.data == er.UPLOADS else None),
            n_epochs=s.epochs,
            heartbeat_timeout_s=tw.heartbeat_timeout_s(),
            idle_pause_s=tw.idle_pause_s(),
            owner_alive=session_alive_check(),
            tab_closed_s=tw.tab_closed_s(),
        )
    except StcaError as exc:
        ss["train.flash"] = ("error", str(exc))
        return None
    run = {"worker": worker, "settings": s, "published": 0}
    ss["train.run"] = run
    ss["train.follow"] = True
    ss["train.figcache"] = {}
    return run


def _on_start():
    run = current_run()
    if run is None or run["worker"].snapshot().finished:
        run = _new_run(ss["train.settings"])
    if run is not None:
        run["worker"].start()


def _on_step():
    run = current_run()
    if run is None or run["worker"].snapshot().finished:
        run = _new_run(ss["train.settings"])
    if run is not None:
        run["worker"].step()


def _on_pause():
    run = current_run()
    if run is not None:
        run["worker"].pause()


def _on_reset():
    run = ss.pop("train.run", None)
    if run is not None:
        run["worker"].stop("reset")
    for k in ("train.figcache", "train.probe_index", "train.view"):
        ss.pop(k, None)
    ss["train.follow"] = True


def _planned_estimate(s: state.TrainSettings):
    """(estimate or None, problem or None) of a run with these settings, before Start (the source's
    listing is read once per data/classes/seed and kept in the session)."""
    key = (s.data, s.classes, s.seed, id(_upload_set()) if s.data == er.UPLOADS else None)
    outlines = ss.setdefault("train.outline", {})
    if key not in outlines:
        try:
            outlines.clear()
            outlines[key] = er.source_outline(s, _upload_set())
        except StcaError:
            outlines[key] = None  # the source's own error is shown when Start is pressed
    outline = outlines[key]
    if outline is None:
        return None, None
    try:
        est = er.planned_estimate(s, outline["longest_clip_s"], outline["n_inputs"], outline["n_classes"])
        se_memory.check_run(est, "training run")
        return est, None
    except StcaError as exc:
        return None, str(exc)


def _new_run(s: state.TrainSettings):
    _, too_big = _planned_estimate(s)
    if too_big:
        ss["train.flash"] = ("error", too_big)
        return None
    return _new_run_checked(s)


run = current_run()
snap = run["worker"].snapshot() if run else None
running = bool(snap and snap.status in (tw.PREPARING, tw.RUNNING) and snap.wants_run)
estimate, too_big = _planned_estimate(settings) if run is None or snap.finished else (None, None)
# one slot whether or not it has text, so the buttons below keep their place when a run starts
# (a moved button leaves its old, disabled copy on screen until the rerun ends)
estimate_slot = st.container()
if too_big:
    estimate_slot.error(plain(too_big))
elif estimate is not None:
    estimate_slot.caption(
        f"Estimated memory of this run: {plain(estimate.describe())} — the server's limit is "
        f"{se_limits.max_run_mb():g} MB ({se_limits.ENV_MAX_RUN_MB})."
    )
c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 1, 3])
c1.button(
    "Resume" if snap is not None and snap.status == tw.PAUSED else "Start",
    icon=":material/play_arrow:",
    on_click=_on_start,
    type="primary",
    width="stretch",
    key="train.btn_start",
    disabled=running or bool(too_big),
)
c2.button(
    "Pause", icon=":material/pause:", on_click=_on_pause, width="stretch", key="train.btn_pause", disabled=not running
)
c3.button(
    "Step",
    icon=":material/skip_next:",
    on_click=_on_step,
    width="stretch",
    key="train.btn_step",
    disabled=running or bool(too_big),
    help="Train exactly one epoch, then pause.",
)
c4.button(
    "Reset",
    icon=":material/restart_alt:",
    on_click=_on_reset,
    width="stretch",
    key="train.btn_reset",
    disabled=run is None,
)
if run is not None and run["settings"] != settings:
    c5.info("Settings changed since this run started: **Reset** to train with the new ones.")
if run is None:
    st.info(
        "Press **Start** to train (or **Step** for one epoch at a time). "
        + (f"Preset: {presets[settings.preset].label}." if settings.preset in presets else "")
    )


# the ticker polls while a run can still change (also while paused: it is the page's heartbeat)
run = current_run()
snap = run["worker"].snapshot() if run else None
ss["train.polling"] = bool(snap is not None and not snap.finished)
ss["train.settled"] = settled_key(snap) if snap is not None else None
live_box = st.container()
st.divider()
st.subheader("Model")
model_box = st.container()
models_ui.render_models_panel(
    st, default_name=f"{settings.preset}-{settings.objective}-seed{settings.seed}", status_line=False
)
with live_box:
    st.fragment(live, run_every=POLL_S if ss["train.polling"] else None)(model_box)
