"""Detect: run a trained detection network over a recording (uploaded, or a demo stream) and show when
each class was heard: timeline, spectrogram, output voltages, a table, Audacity-label and CSV downloads, and
with ground truth (a demo stream's events or an uploaded Audacity label file) event precision / recall / F1
with hits, misses and false alarms on the timeline."""

import math
from pathlib import Path

import numpy as np
import streamlit as st
from components import explain, plain, plot, setup_page, user_errors
from components.encoding import encoder_from_settings
from figures import detection_timeline, output_traces, spectrogram, waveform

from stca_engine import limits
from stca_engine.errors import StcaError
from stca_engine.labels import DEFAULT_TOLERANCE_S, parse_label_bytes, score_events, to_audacity, to_csv

SR = 16000
AUDIO_TYPES = ["wav", "flac", "ogg", "mp3"]
TRACE_WINDOW_S = 30.0
READY = "Ready demo model"


def _cap_mb() -> int:
    """The operator's upload cap (STCA_MAX_UPLOAD_MB) for the browser-side check; the server checks again."""
    return max(1, math.ceil(limits.max_upload_mb()))


setup_page("Detect", ":material/search:")
st.title("Detect sound events")
st.markdown(
    "Run a trained network over a whole recording. Each output neuron stands for one class; every "
    "**spike cluster** it fires is one detected event of that class."
)


# ---- 1. the model ---------------------------------------------------------------------------------
def _model_choice():
    """The model to run, as the session's model dict (net, neuron_cfg, class_names, encoder_settings, task)."""
    import models_ui as mu

    options = ["This session's model", READY, "Saved model (runs/)", "Upload a model .zip"]
    ready = mu.has_ready_model()
    if not ready:
        options.remove(READY)
    default = 0 if st.session_state.get(mu.SESSION_KEY) is not None else 1
    src = st.radio("Model", options, horizontal=True, key="detect.model_src", index=default)
    model = None
    if src == options[0]:
        model = st.session_state.get(mu.SESSION_KEY)
        if model is None:
            st.info("No model in this session yet: train one on the **Train** page, or load a saved one.")
    elif src == READY:
        cache = st.session_state.setdefault("detect.loaded", {})
        if ("ready",) not in cache:
            with user_errors("loading the built-in demo model"):
                cache[("ready",)] = mu.load_ready()
        model = cache.get(("ready",))
        if model is not None:
            st.caption(
                "Trained on the built-in demo sounds (`scripts/make_demo_model.py`): try it on a demo stream, "
                "or on your own recording of similar sounds."
            )
    elif src == "Saved model (runs/)":
        names = mu.list_saved()
        if not names:
            st.info(f"No saved models in {plain(mu.runs_root())} yet.")
        else:
            pick = st.selectbox("Saved model", names, key="detect.saved_pick")
            cache = st.session_state.setdefault("detect.loaded", {})
            if ("disk", pick) not in cache:
                with user_errors(f"loading {pick}"):
                    cache[("disk", pick)] = mu.load_from_disk(pick)
            model = cache.get(("disk", pick))
    else:
        up = st.file_uploader(
            "Model .zip (config.json + model.safetensors)",
            type=["zip"],
            key="detect.model_zip",
            max_upload_size=_cap_mb(),
        )
        if up is not None:
            cache = st.session_state.setdefault("detect.loaded", {})
            token = ("zip", up.name, up.size)
            if token not in cache:
                with user_errors(f"loading {up.name}"):
                    cache[token] = mu.from_zip_bytes(up.getvalue(), up.name)
            model = cache.get(token)
    if model is not None:
        st.success(f"**Model:** {plain(mu.describe(model))}", icon=":material/neurology:")  # archive text
        if model.get("task") == "classify":
            st.warning(
                "This model was trained to **classify** single clips; it may still fire on events, but a "
                "detection model (task *detect*) is what this page is made for."
            )
    return model


# ---- 2. the recording -----------------------------------------------------------------------------
@st.cache_data(show_spinner="Building a demo stream from the built-in sounds…", max_entries=8)
def demo_stream(n_events: int, seed: int, classes: tuple[str, ...] | None):
    """A stream spliced from demo test clips (only of ``classes`` when they overlap the demo's)."""
    from stca_engine.data.demo import load_demo
    from stca_engine.data.streams import stream_audio

    clips = load_demo(seed=0)
    names = list(clips.class_names)
    wanted = [c for c in names if classes is None or c in classes] or names
    rng = np.random.default_rng(seed)
    waves = []
    for c in wanted:
        idx = [i for i in clips.test_idx if clips.clips[i].class_name == c]
        for i in rng.choice(idx, size=min(2, len(idx)), replace=False):
            waves.append((clips.clips[int(i)].load(SR), wanted.index(c)))
    (stream,) = stream_audio(waves, 1, events_per_stream=n_events, seed=seed, n_classes=len(wanted), sr=SR)
    events = [{"class": wanted[c], "start_s": a, "end_s": b} for c, a, b in stream.spans_s]
    return stream.wave, events


MIC = "Record with the microphone"


def _recording(model):
    src = st.radio("Recording", ["Demo stream", "Upload a recording", MIC], horizontal=True, key="detect.audio_src")
    if src == "Demo stream":
        c1, c2 = st.columns(2)
        n_events = c1.slider("events in the stream", 2, 12, 5, key="detect.demo_events")
        seed = c2.number_input("stream seed", 0, 9999, 0, key="detect.demo_seed")
        classes = tuple(model["class_names"]) if model is not None else None
        with user_errors("building the demo stream"):
            wave, events = demo_stream(int(n_events), int(seed), classes)
            return {
                "name": f"demo stream (seed {seed})",
                "wave": wave,
                "events": events,
                "token": ("demo", int(n_events), int(seed), classes),
            }
        return None
    if src == MIC:
        # the browser records at 16 kHz; the same size / duration / decodability checks as an upload
        up = st.audio_input(
            f"Record a sound (up to {limits.max_audio_seconds() / 60:g} min), then stop", key="detect.mic"
        )
        if up is None:
            st.info("Press the microphone, make the sound, press stop: the recording is searched for events.")
            return None
        return _read_audio(up, "microphone recording")
    cap = limits.max_upload_mb()
    up = st.file_uploader(
        f"Audio file ({', '.join(AUDIO_TYPES)}; up to {cap:g} MB, {limits.max_audio_seconds() / 60:g} min)",
        type=AUDIO_TYPES,
        key="detect.upload",
        max_upload_size=_cap_mb(),
    )
    if up is None:
        st.info("Upload a recording to search it for events.")
        return None
    return _read_audio(up, up.name)


def _read_audio(up, name: str):
    """An uploaded or recorded file -> the recording dict, decoded once per file (kept in session state)."""
    token = ("upload", name, up.file_id, up.size)
    cached = st.session_state.get("detect.upload_audio")
    if cached is None or cached["token"] != token:
        with user_errors(f"reading {name}"):
            data = up.getvalue()
            limits.check_upload_size(len(data), name)
            from stca_engine.audio import load_audio_bytes

            notes: list[str] = []
            wave = load_audio_bytes(data, up.name, sr=SR, max_seconds=limits.max_audio_seconds(), warn=notes.append)
            cached = {"name": name, "wave": wave, "events": [], "token": token, "warnings": notes}
            st.session_state["detect.upload_audio"] = cached
            return cached
        return None
    return cached


def _run(model, rec) -> dict:
    """Encode and detect with progress bars; the result is kept in session state until model/recording change."""
    from stca_engine.detect import detect_events, encode_recording

    cfg = model["neuron_cfg"]
    encoder = encoder_from_settings(model.get("encoder_settings"))
    bar = st.progress(0.0, text="encoding…")
    if abs(float(encoder.dt_ms) - float(cfg.dt_ms)) > 1e-9:
        raise StcaError(
            f"the encoder runs at dt = {encoder.dt_ms} ms but the model at dt = {cfg.dt_ms} ms", "encoder settings"
        )
    # each sound region encoded on its own, as training saw its events (see stca_engine.detect)
    spikes = encode_recording(
        rec["wave"], SR, encoder, segment=True, progress=lambda d, t, m: bar.progress(0.5 * d / t, text=m)
    )
    n_in = model["net"].sizes[0]
    if spikes.n_units != n_in:
        raise StcaError(
            f"the encoder made {spikes.n_units} afferents but the model expects {n_in}; "
            "the model's encoder settings do not match its input layer",
            "encoder settings",
        )
    result = detect_events(
        model["net"],
        cfg,
        spikes,
        model["class_names"],
        progress=lambda d, t, m: bar.progress(0.5 + 0.5 * d / t, text=f"detecting: {m}"),
    )
    bar.empty()
    return {"result": result, "spikes": spikes}


def _truth(rec):
    """Ground truth for scoring: an uploaded Audacity label file, else the demo stream's own events (or None)."""
    up = st.file_uploader(
        "Ground-truth labels (optional): an Audacity label file, start⇥end⇥label per line",
        type=["txt", "tsv", "labels"],
        key="detect.truth",
        max_upload_size=_cap_mb(),
    )
    if up is not None:
        with user_errors(f"reading {up.name}"):
            truth = parse_label_bytes(up.getvalue(), up.name)
            st.caption(f"{len(truth)} labelled event(s) from **{plain(up.name)}**")
            return truth, up.name
        return None, None
    if rec is not None and rec["events"]:
        return rec["events"], "the demo stream's true events"
    return None, None


st.subheader("1 · Choose a trained model")
model = _model_choice()
st.subheader("2 · Choose a recording")
rec = _recording(model)
truth, truth_name = _truth(rec)

if rec is not None:
    dur = rec["wave"].size / SR
    st.caption(f"**{plain(rec['name'])}** · {dur:.2f} s")
    for note in rec.get("warnings") or []:
        st.warning(plain(note), icon=":material/content_cut:")
    st.audio(rec["wave"], sample_rate=SR)

st.subheader("3 · Detect")
run_token = (id(model["net"]) if model else None, rec["token"] if rec else None)
go_clicked = st.button(
    "Find events", icon=":material/search:", type="primary", key="detect.run", disabled=model is None or rec is None
)
if go_clicked:
    with user_errors("detecting events"):
        out = _run(model, rec)
        st.session_state["detect.output"] = {"token": run_token, **out, "name": rec["name"]}

out = st.session_state.get("detect.output")
if out is not None and out["token"] == run_token and rec is not None:
    result = out["result"]
    events = result.events
    names = list(result.class_names)
    counts = result.counts()
    st.success(
        f"Found **{len(events)}** event(s) in {dur:.1f} s of audio"
        + (f" (true events: {len(truth)})" if truth else "")
        + ".",
        icon=":material/check_circle:",
    )
    cols = st.columns(min(len(names), 6) or 1)
    for i, c in enumerate(names):
        cols[i % len(cols)].metric(plain(c), counts[c])
    score = None
    if truth is not None:
        tol = st.slider(
            "scoring tolerance (s): a detection hits an event of its class when it overlaps the event "
            "widened by this much on each side",
            0.0,
            0.5,
            DEFAULT_TOLERANCE_S,
            0.01,
            key="detect.tolerance",
        )
        score = score_events(events, truth, tolerance_s=float(tol), class_names=names)
        st.markdown(f"**Scored against {plain(truth_name)}**")
        m = st.columns(6)
        m[0].metric("precision", f"{score['precision']:.3f}")
        m[1].metric("recall", f"{score['recall']:.3f}")
        m[2].metric("F1", f"{score['f1']:.3f}")
        m[3].metric("hits", score["tp"])
        m[4].metric("false alarms", score["fp"])
        m[5].metric("misses", score["fn"])
        unknown = sorted({str(e["class"]) for e in truth} - set(names))
        if unknown:
            st.warning(
                "These labels are not classes of this model, so their events count as misses: "
                + plain(", ".join(unknown))
            )

    tab_t, tab_s, tab_v, tab_w = st.tabs(["Timeline", "Spectrogram", "Output voltages", "Waveform"])
    with tab_t:
        plot(
            detection_timeline(
                rec["wave"],
                SR,
                events,
                names,
                events=truth or None,
                score=score,
                title="detections per class" + (" (grey: true events)" if truth else ""),
            ),
            key="detect.timeline",
        )
        if score is not None:
            explain(
                "Green dots: detections that found a true event of their class (**hits**). Vermilion crosses "
                "and hatched bars: detections with no event to match (**false alarms**, also a second detection "
                "inside an event already found). Indigo triangles: true events nobody found (**misses**)."
            )
    with tab_s:
        plot(
            spectrogram(
                rec["wave"],
                SR,
                detections=events,
                class_names=names,
                title="log-mel spectrogram with detections (coloured boxes)",
            ),
            key="detect.spec",
        )
    with tab_v:
        V = result.voltages
        T = result.n_steps
        win = int(round(TRACE_WINDOW_S * 1000.0 / result.dt_ms))
        t0 = 0
        if T > win:
            start_s = st.slider(
                "window start (s)", 0.0, float((T - win) * result.dt_ms / 1000.0), 0.0, 0.5, key="detect.window"
            )
            t0 = int(round(start_s * 1000.0 / result.dt_ms))
        t1 = min(T, t0 + win)
        spk = np.zeros((t1 - t0, len(names)), np.float32)
        for c, steps in enumerate(result.spike_steps):
            sel = steps[(steps >= t0) & (steps < t1)] - t0
            spk[sel, c] = 1
        true_ev = [
            {
                "class_index": names.index(e["class"]),
                "onset_step": int(e["start_s"] * 1000 / result.dt_ms),
                "offset_step": int(np.ceil(e["end_s"] * 1000 / result.dt_ms)),
            }
            for e in (truth or [])
            if e["class"] in names
        ]
        plot(
            output_traces(
                V[t0:t1],
                spk,
                result.theta,
                result.dt_ms,
                model["neuron_cfg"].t_in_steps,
                names,
                events=true_ev,
                t0_steps=t0,
            ),
            key="detect.traces",
        )
        explain(
            "Each row is one output neuron. Shaded blocks are its **spike clusters** – each one is reported as an "
            "event. Dark bars at the bottom mark where the true events of that class are (a demo stream, or uploaded labels)."
        )
    with tab_w:
        plot(waveform(rec["wave"], SR, events=truth or None, class_names=names, detections=events), key="detect.wave")

    st.subheader("Detections")
    if events:
        table = {
            "class": [e["class"] for e in events],
            "start (s)": [e["start_s"] for e in events],
            "end (s)": [e["end_s"] for e in events],
            "spikes": [e["n_spikes"] for e in events],
            "peak V": [round(e.get("peak_v", float("nan")), 3) for e in events],
        }
        st.dataframe(table, hide_index=True, key="detect.table")
    else:
        st.info("No output neuron fired a spike cluster on this recording.")
    stem = Path(str(out["name"])).stem or "detections"
    d1, d2 = st.columns(2)
    d1.download_button(
        "Download labels (Audacity)",
        icon=":material/download:",
        data=to_audacity(events).encode(),
        file_name=f"{stem}_labels.txt",
        mime="text/plain",
        key="detect.labels",
        help="start⇥end⇥label per line: Audacity's File → Import → Labels reads it",
    )
    d2.download_button(
        "Download detections (CSV)",
        icon=":material/download:",
        data=to_csv(events, file=str(out["name"])).encode(),
        file_name=f"{stem}_detections.csv",
        mime="text/csv",
        key="detect.csv",
    )
elif model is not None and rec is not None:
    st.caption("Press **Find events** to run the model on this recording.")
