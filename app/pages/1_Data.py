"""Data: pick a sound source, browse its clips (waveform, spectrogram, audio, spikegram), tune the encoder
with a live re-encode and its report, and preview an unsegmented stream with its true event spans."""

import math

import numpy as np
import streamlit as st
from components import explain, plain, plot, setup_page, user_errors
from components.encoding import encoder_from_settings, split_result
from figures import spectrogram, spike_raster, waveform

from stca_engine import limits
from stca_engine.errors import StcaError

SR = 16000
DT_MS = 3.0
MIC = "Record with the microphone"
SOURCES = ["Built-in demo", "RWCP folder", "MedleyDB folder", "Folder of class sub-folders", "Upload files", MIC]
MAX_TAKES = 200  # recordings kept per session (each within the upload size cap)
AUDIO_TYPES = ["wav", "flac", "ogg", "mp3"]


def _cap_mb() -> int:
    """The operator's upload cap (STCA_MAX_UPLOAD_MB) for the browser-side check; the server checks again."""
    return max(1, math.ceil(limits.max_upload_mb()))


setup_page("Data", ":material/graphic_eq:")
st.title("Sounds and spikes")
st.markdown(
    "A spiking network does not hear a waveform: it hears **spikes**. Pick some sounds, listen to them, "
    "and see how the encoder turns each one into a spike pattern (a *spikegram*)."
)


# ---- loading (cached: a dataset is scanned once per settings) -------------------------------------
@st.cache_data(show_spinner="Preparing the built-in demo sounds…")
def load_demo_set():
    from stca_engine.data.demo import load_demo

    return load_demo(seed=0)


SPEC_KIND = {"RWCP folder": "rwcp", "MedleyDB folder": "medleydb", "Folder of class sub-folders": "folder"}


@st.cache_data(show_spinner="Scanning the dataset folder…", max_entries=8)
def load_folder_set(kind: str, path: str):
    """The clip set behind a folder, through the same data spec as the CLI and the Train page; the folder
    must lie inside the operator's allowed roots (STCA_DATA_ROOTS)."""
    from stca_engine.data.sources import load_clipset

    return load_clipset(f"{SPEC_KIND[kind]}:{path}", restrict=True)


@st.cache_data(show_spinner=False, max_entries=64)
def load_clip(path: str, kind: str, start_s: float, end_s, class_name: str) -> np.ndarray:
    from stca_engine.data.clips import AudioClip

    return AudioClip(path, class_name, start_s, end_s, kind).load(SR)


@st.cache_data(show_spinner=False, max_entries=32)
def spectrogram_cached(wave: np.ndarray, title: str):
    """The log-mel figure is the slowest view to build; a widget change elsewhere reuses it."""
    return spectrogram(wave, SR, title=title)


@st.cache_data(show_spinner=False, max_entries=64)
def encode_cached(wave: np.ndarray, settings: tuple):
    """(times, units, n_units, n_steps, dt_ms, report dict, seconds) for one waveform and encoder settings."""
    import time

    t = time.perf_counter()
    train, report = split_result(encoder_from_settings(dict(settings)).encode(wave))
    secs = time.perf_counter() - t
    if report is not None and hasattr(report, "to_dict"):
        report = report.to_dict()
    elif report is not None and not isinstance(report, dict):
        report = dict(vars(report))
    return train.times, train.units, train.n_units, train.n_steps, train.dt_ms, report, secs


def _clip_set():
    source = st.radio("Source", SOURCES, horizontal=True, key="data.source")
    if source == "Built-in demo":
        return load_demo_set()
    if source == MIC:
        return _microphone_set()
    if source == "Upload files":
        files = st.file_uploader(
            "Sound files, or a .zip of class folders (bell/01.wav, horn/01.wav, …); a loose file's class is its "
            "name up to the first '_' or '-' (e.g. bell_01.wav, bell_02.wav, horn_01.wav)",
            type=[*AUDIO_TYPES, "zip"],
            accept_multiple_files=True,
            key="data.uploads",
            max_upload_size=_cap_mb(),
        )
        if not files:
            st.info(
                f"Upload at least two files per class (up to {limits.max_upload_mb():g} MB each), or a .zip with "
                f"one folder per class (up to {limits.max_archive_files()} sounds, "
                f"{limits.max_archive_mb():g} MB unpacked)."
            )
            return None
        return _upload_set(tuple((f.name, f.size) for f in files), lambda: [(f.getvalue(), f.name) for f in files])
    from stca_engine.roots import allowed_roots

    hint = {
        "RWCP folder": ".../nospeech/drysrc (or any level above the class folders)",
        "MedleyDB folder": "the folder holding Audio/ (and Annotations/)",
        "Folder of class sub-folders": "<root>/<class>/*.wav",
    }[source]
    path = st.text_input(f"Folder on the server: {hint}", key="data.path", placeholder=str(allowed_roots()[0]))
    st.caption("Allowed folders: " + ", ".join(plain(r) for r in allowed_roots()))
    if not path.strip():
        return None
    return load_folder_set(source, path.strip())


def _upload_set(token, files, labels=None):
    """The session's upload set for ``token``, built once from ``files()`` (``[(bytes, name)]``) into a
    fresh upload folder held only by this session's state: removed when the session ends or the next
    set replaces it."""
    cached = st.session_state.get("data.upload_set")
    if cached is not None and cached[0] == token:
        return cached[1]
    from stca_engine.data.uploads import UploadFolder, uploads_clipset

    folder = st.session_state["data.upload_folder"] = UploadFolder()
    cs = uploads_clipset(files(), labels=labels, dest=folder.path)
    st.session_state["data.upload_set"] = (token, cs)
    return cs


def _microphone_set():
    """Recordings made in the browser, each given a class: a labelled upload set like "Upload files"
    (the same checks, the same per-session folder), so it can be browsed, encoded and trained on."""
    takes = st.session_state.setdefault("data.mic_takes", [])  # [(wav bytes, file name, class)]
    c1, c2 = st.columns([1, 2])
    label = c1.text_input("Class of this recording", key="data.mic_label", placeholder="e.g. clap")
    rec = c2.audio_input(f"Record a sound (up to {limits.max_upload_mb():g} MB), then stop", key="data.mic")
    if c1.button("Add the recording to this class", key="data.mic_add", disabled=rec is None or not label.strip()):
        data = rec.getvalue()
        limits.check_upload_size(len(data), "microphone recording")
        if len(takes) >= MAX_TAKES:
            raise StcaError(f"at most {MAX_TAKES} recordings per session; clear some first", "microphone")
        name = label.strip()
        takes.append((data, f"{name}_{len(takes) + 1:03d}.wav", name))  # stored under a safe name
    if not takes:
        st.info("Give the class a name, record a sound, press **Add**. Record at least two takes per class.")
        return None
    per_class: dict[str, int] = {}
    for _, _, c in takes:
        per_class[c] = per_class.get(c, 0) + 1
    st.caption("Recordings: " + ", ".join(f"{plain(c)} × {n}" for c, n in per_class.items()))
    if st.button("Clear the recordings", key="data.mic_clear"):
        takes.clear()
        st.session_state.pop("data.upload_set", None)
        return None
    if max(per_class.values()) < 2:
        st.info("Record one more take of a class: each class needs two (one to train on, one to test).")
        return None
    token = ("mic", len(takes), tuple(c for _, _, c in takes))
    return _upload_set(token, lambda: [(d, n) for d, n, _ in takes], labels=[c for _, _, c in takes])


# ---- encoder settings -----------------------------------------------------------------------------
KNOWN = {  # label, min, max, step for the settings the UI presents (others keep the encoder's default)
    "n_kernels": ("gammatone kernels", 4, 256, 4),
    "n_bands": ("frequency bands", 4, 256, 4),
    "n_bins": ("amplitude bins", 1, 8, 1),
    "n_levels": ("loudness levels", 1, 12, 1),
    "spikes_per_second": ("spike budget per second", 50.0, 8000.0, 50.0),
    "dynamic_range_db": ("dynamic range (dB)", 10.0, 120.0, 5.0),
    "residual_db": ("stop at residual energy (dB)", -80.0, -5.0, 1.0),
    "hysteresis_db": ("hysteresis (dB)", 0.0, 12.0, 0.5),
    "f_min": ("lowest frequency (Hz)", 20.0, 2000.0, 10.0),
    "f_max": ("highest frequency (Hz)", 1000.0, 8000.0, 100.0),
}
CHOICES = {"kind": ("filterbank", ["mel", "gammatone"])}
ENCODER_LABELS = {
    "spectral": "spectral – fast threshold crossings",
    "spikegram": "spikegram – matching pursuit (paper)",
}


def _encoder_settings() -> dict:
    """Encoder name + widgets for its main settings, starting from the encoder's own defaults; returns the
    ``make_encoder`` keyword dict (with ``name``)."""
    from stca_engine.encoders import ENCODER_NAMES, make_encoder

    names = [n for n in ("spectral", "spikegram") if n in ENCODER_NAMES]
    name = st.selectbox("Encoder", names, key="data.encoder", format_func=lambda n: ENCODER_LABELS.get(n, n))
    defaults = make_encoder(name).settings()
    settings = {"name": name}
    cols = st.columns(2)
    i = 0
    for k, v in defaults.items():
        key = f"data.enc.{name}.{k}"
        if k in CHOICES and isinstance(v, str):
            label, opts = CHOICES[k]
            settings[k] = cols[i % 2].selectbox(label, opts, index=opts.index(v) if v in opts else 0, key=key)
            i += 1
        elif k in KNOWN and not isinstance(v, bool):
            label, lo, hi, step = KNOWN[k]
            if isinstance(v, int):
                settings[k] = int(
                    cols[i % 2].slider(label, int(min(lo, v)), int(max(hi, v)), int(v), int(step), key=key)
                )
            else:
                settings[k] = float(
                    cols[i % 2].slider(label, float(min(lo, v)), float(max(hi, v)), float(v), float(step), key=key)
                )
            i += 1
    return settings


def _report_view(report: dict | None, secs: float, n_spikes: int, n_units: int, duration_s: float):
    c = st.columns(4)
    c[0].metric("spikes", f"{n_spikes:,}")
    c[1].metric("afferents", n_units)
    c[2].metric("spikes / s", f"{n_spikes / max(duration_s, 1e-9):,.0f}")
    c[3].metric("× real time", f"{duration_s / max(secs, 1e-9):,.0f}" if secs > 0 else "cached")
    if report:
        items = {k: v for k, v in report.items() if isinstance(v, (int, float, str, bool))}
        if "snr_db" in items:
            st.caption(
                f"reconstruction SNR **{float(items['snr_db']):.1f} dB** · "
                + ", ".join(
                    f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}"
                    for k, v in items.items()
                    if k != "snr_db"
                )
            )
        else:
            st.caption(", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}" for k, v in items.items()))


def _train_on_these(clips) -> None:
    """Hand the session's uploaded or recorded set to the Train page (no server path to type)."""
    if not st.button(
        "Train on these sounds",
        icon=":material/model_training:",
        type="primary",
        key="data.train_on_uploads",
        help="Opens the Train page with this set as its data; the files stay on the server only while this "
        "session lasts.",
    ):
        return
    from dataclasses import replace

    import state
    from engine_runs import UPLOADS

    ss = st.session_state
    if "train.settings" not in ss:
        ss["train.settings"], ss["train.url_problems"] = state.settings_from_query({})
    cur = ss["train.settings"]
    if cur.data != UPLOADS:
        ss["train.data_before_uploads"] = cur.data
    ss["train.settings"] = replace(cur, data=UPLOADS, classes="")
    for name, value in (("data", UPLOADS), ("classes", "")):
        ss[state.widget_key(name)] = value
    st.switch_page("pages/2_Train.py")


# ---- page -----------------------------------------------------------------------------------------
st.subheader("1 · Source")
clips = None
with user_errors("loading the sounds"):
    clips = _clip_set()

if clips is not None:
    counts = clips.counts()
    st.success(
        f"**{plain(clips.source or 'dataset')}**: {len(clips.class_names)} classes, {len(clips.train_idx)} train / "
        f"{len(clips.test_idx)} test clips",
        icon=":material/inventory_2:",
    )
    with st.expander("Classes and splits", expanded=False):
        st.dataframe(
            {"class": list(counts), "train": [a for a, _ in counts.values()], "test": [b for _, b in counts.values()]},
            hide_index=True,
            key="data.classes",
        )
    if clips.source == "uploads":
        _train_on_these(clips)
    if clips.skipped:
        with st.expander(f"{len(clips.skipped)} file(s) left out", expanded=False):
            st.dataframe(
                {"file": [p for p, _ in clips.skipped], "reason": [r for _, r in clips.skipped]},
                hide_index=True,
                key="data.skipped",
            )

    st.subheader("2 · Browse a clip")
    train_set = set(clips.train_idx)
    b1, b2 = st.columns([1, 2])
    cls = b1.selectbox("Class", clips.class_names, key="data.class")
    idx = [i for i, c in enumerate(clips.clips) if c.class_name == cls]
    pick = b2.selectbox(
        "Clip",
        idx,
        key="data.clip",
        format_func=lambda i: f"{clips.clips[i].name} ({'train' if i in train_set else 'test'})",
    )
    wave = None
    if pick is not None:
        clip = clips.clips[pick]
        with user_errors(f"reading {clip.name}"):
            wave = load_clip(clip.path, clip.kind, clip.start_s, clip.end_s, clip.class_name)
    if wave is not None:
        st.audio(wave, sample_rate=SR)
        w1, w2 = st.columns(2)
        with w1:
            plot(waveform(wave, SR, title=f"{cls} · waveform"), key="data.wave")
            st.caption("**Waveform**: how the air pressure moves over time; loud = tall.")
        with w2:
            plot(spectrogram_cached(wave, "log-mel spectrogram"), key="data.spec")
            st.caption("**Spectrogram**: which pitches (up = higher) are loud (bright) at each moment.")

        st.subheader("3 · Encode into spikes")
        enc_col, raster_col = st.columns([1, 2], gap="large")
        with enc_col:
            settings = None
            with user_errors("setting up the encoder"):
                settings = _encoder_settings()
            explain(
                "Each dot on the right is one spike: a time and an **afferent** (an input line of the "
                "network). For the spikegram, an afferent is one gammatone filter (a pitch band) at one loudness "
                "level. More spikes = more detail, but more work for the network."
            )
        with raster_col:
            if settings is not None:
                with user_errors("encoding the clip"):
                    times, units, n_units, n_steps, dt_ms, report, secs = encode_cached(
                        wave, tuple(sorted(settings.items()))
                    )
                    st.session_state["data.encoded"] = dict(
                        n_spikes=int(times.size), n_units=int(n_units), settings=dict(settings), report=report
                    )
                    plot(
                        spike_raster(times, units, n_units, dt_ms, title=f"{cls} · spikegram", n_steps=n_steps),
                        key="data.raster",
                    )
                    _report_view(report, secs, int(times.size), int(n_units), wave.size / SR)

        st.subheader("4 · A stream of events")
        st.markdown(
            "For detection the network hears **unsegmented streams**: several events with silent gaps. "
            "Training only tells it *how many* of each class occur; the spans below are for you."
        )
        s1, s2 = st.columns([1, 3])
        n_ev = s1.slider("events", 2, 10, 5, key="data.stream_events")
        seed = s1.number_input("seed", 0, 9999, 0, key="data.stream_seed")
        if settings is not None:
            with user_errors("building the stream"):
                from stca_engine.data.streams import stream_audio

                rng = np.random.default_rng(int(seed))
                pool = rng.choice(len(clips.clips), size=min(len(clips.clips), 3 * int(n_ev)), replace=False)
                waves = [
                    (load_clip(c.path, c.kind, c.start_s, c.end_s, c.class_name), clips.class_names.index(c.class_name))
                    for c in (clips.clips[int(i)] for i in pool)
                ]
                (stream,) = stream_audio(
                    waves,
                    1,
                    events_per_stream=int(n_ev),
                    seed=int(seed),
                    n_classes=len(clips.class_names),
                    sr=SR,
                    dt_ms=DT_MS,
                )
                times, units, n_units, n_steps, dt_ms, report, _ = encode_cached(
                    stream.wave, tuple(sorted(settings.items()))
                )
                with s2:
                    plot(
                        waveform(
                            stream.wave,
                            SR,
                            events=stream.events,
                            class_names=clips.class_names,
                            dt_ms=dt_ms,
                            title="stream waveform with its true events",
                        ),
                        key="data.stream_wave",
                    )
                    plot(
                        spike_raster(
                            times,
                            units,
                            n_units,
                            dt_ms,
                            title="stream spikegram",
                            events=stream.events,
                            class_names=clips.class_names,
                            n_steps=n_steps,
                        ),
                        key="data.stream_raster",
                    )
                    st.caption(
                        "target counts: "
                        + ", ".join(f"{plain(clips.class_names[c])} × {n}" for c, n in enumerate(stream.target) if n)
                    )
