"""Sound figures: waveform (min/max envelope, so an hour of audio is still a light figure), log-mel
spectrogram and a per-class detection timeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import EVENT_COLOR, class_color, class_label, finish, rgba
from .traces import _np

MAX_ENVELOPE_POINTS = 4000  # buckets of the drawn waveform envelope
MAX_SPEC_FRAMES = 2400  # spectrogram columns (the hop grows for long audio)


def envelope(wave, sr: int, n_buckets: int = MAX_ENVELOPE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(t, y) drawing the waveform's min/max per bucket as one zig-zag line: every peak stays visible
    however long the clip, while the figure holds at most ``2 * n_buckets`` points."""
    w = _np(wave).astype(np.float32).ravel()
    n = w.size
    if n <= 2 * n_buckets:
        return np.arange(n) / sr, w
    size = int(np.ceil(n / n_buckets))
    pad = (-n) % size
    wp = np.pad(w, (0, pad), mode="edge").reshape(-1, size)
    lo, hi = wp.min(axis=1), wp.max(axis=1)
    starts = np.arange(wp.shape[0]) * size
    t = np.empty(2 * wp.shape[0])
    y = np.empty(2 * wp.shape[0], dtype=np.float32)
    t[0::2], t[1::2] = starts / sr, (starts + size / 2) / sr
    y[0::2], y[1::2] = lo, hi
    return t, y


def _class_index(c, class_names: Sequence[str] | None) -> int:
    if isinstance(c, (int, np.integer)):
        return int(c)
    if class_names is not None and c in list(class_names):
        return list(class_names).index(c)
    return abs(hash(str(c))) % 997


def _spans_s(items, dt_ms: float | None) -> list[tuple[object, float, float]]:
    """(class, start_s, end_s) from dicts (class/start_s/end_s) or ``Event``s (steps, needs ``dt_ms``)."""
    out = []
    for it in items or []:
        if isinstance(it, Mapping):
            c = it.get("class", it.get("class_index"))
            if "start_s" in it:
                out.append((c, float(it["start_s"]), float(it["end_s"])))
                continue
            on, off = it["onset_step"], it["offset_step"]
        else:
            c, on, off = it.class_index, it.onset_step, it.offset_step
        if dt_ms is None:
            raise ValueError("events given in steps need dt_ms to be placed on a time axis")
        out.append((c, on * dt_ms / 1000.0, off * dt_ms / 1000.0))
    return out


def waveform(
    wave,
    sr: int,
    events=None,
    class_names: Sequence[str] | None = None,
    detections=None,
    dt_ms: float | None = 3.0,
    title: str | None = None,
) -> go.Figure:
    """Waveform with the true event spans (class-coloured bands with the name on top) and detections
    (hatched bands along the bottom)."""
    t, y = envelope(wave, sr)
    fig = go.Figure(
        go.Scattergl(
            x=t,
            y=y,
            mode="lines",
            line=dict(color="#2b2b2b", width=1),
            name="waveform",
            showlegend=False,
            hovertemplate="t=%{x:.3f} s<br>amplitude %{y:.3f}<extra></extra>",
        )
    )
    for c, a, b in _spans_s(events, dt_ms):
        ci = _class_index(c, class_names)
        fig.add_shape(
            type="rect",
            xref="x",
            yref="y domain",
            x0=a,
            x1=b,
            y0=0,
            y1=1,
            layer="below",
            fillcolor=rgba(class_color(ci), 0.18),
            line=dict(width=1, color=class_color(ci)),
            name="true event",
        )
        fig.add_annotation(
            x=(a + b) / 2,
            y=1,
            xref="x",
            yref="y domain",
            yanchor="bottom",
            showarrow=False,
            text=f"<b>{class_label(c, class_names)}</b>",
            font=dict(color=class_color(ci), size=15),
        )
    for c, a, b in _spans_s(detections, dt_ms):
        ci = _class_index(c, class_names)
        fig.add_shape(
            type="rect",
            xref="x",
            yref="y domain",
            x0=a,
            x1=b,
            y0=0,
            y1=0.12,
            layer="above",
            fillcolor=rgba(class_color(ci), 0.75),
            line=dict(width=0),
            name="detection",
            label=dict(text=class_label(c, class_names), font=dict(color="white", size=13)),
        )
    dur = _np(wave).size / sr
    fig.update_xaxes(title_text="time (s)", range=[0, max(dur, 1e-3)])
    fig.update_yaxes(title_text="amplitude", range=[-1.05, 1.05])
    return finish(fig, uirevision="waveform", title=title, height=300, legend=False)


def log_mel(wave, sr: int, n_mels: int = 64, max_frames: int = MAX_SPEC_FRAMES):
    """(times_s, mel centre freqs_Hz, dB [n_mels, frames]) with 10 ms hops, coarser for long audio."""
    import librosa

    w = _np(wave).astype(np.float32).ravel()
    hop = max(int(sr * 0.010), int(np.ceil(w.size / max_frames)))
    n_fft = 1 << int(np.ceil(np.log2(max(2 * hop, int(sr * 0.032)))))
    if w.size < n_fft:
        w = np.pad(w, (0, n_fft - w.size))
    mel = librosa.feature.melspectrogram(y=w, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmax=sr / 2, power=2.0)
    db = librosa.power_to_db(mel, ref=np.max(mel) if mel.max() > 0 else 1.0, top_db=80.0)
    freqs = librosa.mel_frequencies(n_mels=n_mels, fmin=0.0, fmax=sr / 2)
    times = np.arange(db.shape[1]) * hop / sr
    return times, freqs, db


def spectrogram(
    wave, sr: int, detections=None, class_names: Sequence[str] | None = None, title: str | None = None, n_mels: int = 64
) -> go.Figure:
    """Log-mel spectrogram (dB re the loudest bin, 80 dB range, Viridis) with the frequency axis labelled in Hz."""
    times, freqs, db = log_mel(wave, sr, n_mels=n_mels)
    fig = go.Figure(
        go.Heatmap(
            x=times,
            y=np.arange(n_mels),
            z=db,
            colorscale="Viridis",
            zmin=-80,
            zmax=0,
            customdata=np.repeat(freqs[:, None], db.shape[1], axis=1),
            colorbar=dict(title=dict(text="dB"), thickness=14),
            hovertemplate="t=%{x:.3f} s<br>%{customdata:.0f} Hz<br>%{z:.1f} dB<extra></extra>",
            name="log-mel",
        )
    )
    ticks = np.linspace(0, n_mels - 1, 6).round().astype(int)
    fig.update_yaxes(
        title_text="frequency (Hz)",
        tickvals=ticks,
        ticktext=[f"{freqs[i] / 1000:.1f} k" if freqs[i] >= 1000 else f"{freqs[i]:.0f}" for i in ticks],
    )
    fig.update_xaxes(title_text="time (s)")
    for c, a, b in _spans_s(detections, None):
        ci = _class_index(c, class_names)
        fig.add_shape(
            type="rect",
            xref="x",
            yref="y domain",
            x0=a,
            x1=b,
            y0=0,
            y1=1,
            fillcolor="rgba(0,0,0,0)",
            line=dict(width=2.5, color=class_color(ci)),
            name="detection",
        )
    return finish(fig, uirevision="spectrogram", title=title, height=320, legend=False)


HIT_COLOR = "#009E73"  # bluish green
MISS_COLOR = "#332288"  # indigo
FALSE_ALARM_COLOR = "#D55E00"  # vermilion
OUTCOME_MARKERS = {  # trace name -> (marker symbol, colour)
    "hit": ("circle", HIT_COLOR),
    "missed event": ("triangle-down-open", MISS_COLOR),
    "false alarm": ("x", FALSE_ALARM_COLOR),
}


def _outcome_trace(name: str, items, names: Sequence[str]) -> go.Scatter:
    """Markers at the middle of each span in its class lane (hover: what it is, class, span)."""
    symbol, color = OUTCOME_MARKERS[name]
    spans = _spans_s(items, None)
    return go.Scatter(
        x=[(a + b) / 2 for _, a, b in spans],
        y=[class_label(c, names) for c, _, _ in spans],
        mode="markers",
        name=name,
        marker=dict(symbol=symbol, color=color, size=15, line=dict(width=2.5, color=color)),
        customdata=[[a, b] for _, a, b in spans],
        hovertemplate=f"{name}: %{{y}}<br>%{{customdata[0]:.2f}} s – %{{customdata[1]:.2f}} s<extra></extra>",
    )


def detection_timeline(
    wave,
    sr: int,
    detections,
    class_names: Sequence[str],
    events=None,
    dt_ms: float | None = 3.0,
    title: str | None = None,
    score: Mapping | None = None,
) -> go.Figure:
    """Waveform on top, one lane per class below with a bar per detection (hover: class, start, end) and,
    if given, the true events as grey bars in the same lanes.

    ``score`` (``stca_engine.labels.score_events``) adds its outcome as markers in the lanes: hits
    (green dots on the detections that found an event), missed events (indigo open triangles) and
    false alarms (vermilion crosses, their bars also hatched), each a legend entry with its count."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.45, 0.55], vertical_spacing=0.06)
    t, y = envelope(wave, sr)
    fig.add_trace(
        go.Scattergl(
            x=t,
            y=y,
            mode="lines",
            line=dict(color="#2b2b2b", width=1),
            name="waveform",
            showlegend=False,
            hovertemplate="t=%{x:.3f} s<extra></extra>",
        ),
        row=1,
        col=1,
    )
    names = list(class_names)
    true = _spans_s(events, dt_ms)
    if true:
        fig.add_trace(
            go.Bar(
                y=[class_label(c, names) for c, _, _ in true],
                x=[b - a for _, a, b in true],
                base=[a for _, a, _ in true],
                orientation="h",
                name="true event",
                marker=dict(color=EVENT_COLOR),
                width=0.8,
                opacity=0.5,
                customdata=[[a, b] for _, a, b in true],
                hovertemplate="true %{y}<br>%{customdata[0]:.2f} s – %{customdata[1]:.2f} s<extra></extra>",
            ),
            row=2,
            col=1,
        )
    det = _spans_s(detections, None)
    by_class: dict[int, list] = {}
    for c, a, b in det:
        by_class.setdefault(_class_index(c, names), []).append((class_label(c, names), a, b))
    for ci in sorted(by_class):
        items = by_class[ci]
        fig.add_trace(
            go.Bar(
                y=[lab for lab, _, _ in items],
                x=[b - a for _, a, b in items],
                base=[a for _, a, _ in items],
                orientation="h",
                name=items[0][0],
                marker=dict(color=class_color(ci)),
                width=0.5,
                customdata=[[a, b] for _, a, b in items],
                hovertemplate="%{y}<br>%{customdata[0]:.2f} s – %{customdata[1]:.2f} s<extra></extra>",
            ),
            row=2,
            col=1,
        )
    if score is not None:
        fa = _spans_s(score.get("false_alarms"), None)
        if fa:  # hatch the false alarms' bars so they read as wrong even without colour
            fig.add_trace(
                go.Bar(
                    y=[class_label(c, names) for c, _, _ in fa],
                    x=[b - a for _, a, b in fa],
                    base=[a for _, a, _ in fa],
                    orientation="h",
                    name="false alarm span",
                    showlegend=False,
                    width=0.5,
                    hoverinfo="skip",
                    marker=dict(
                        color="rgba(0,0,0,0)",
                        line=dict(width=2, color=FALSE_ALARM_COLOR),
                        pattern=dict(shape="x", fgcolor=FALSE_ALARM_COLOR, solidity=0.3),
                    ),
                ),
                row=2,
                col=1,
            )
        for name, key in (("hit", "hits"), ("missed event", "misses"), ("false alarm", "false_alarms")):
            items = score.get(key) or []
            trace = _outcome_trace(name, items, names)
            trace.name = f"{name} ({len(items)})"
            fig.add_trace(trace, row=2, col=1)
    fig.update_layout(barmode="overlay")
    fig.update_yaxes(title_text="amplitude", range=[-1.05, 1.05], row=1, col=1)
    fig.update_yaxes(
        categoryorder="array", categoryarray=names[::-1], type="category", range=[-0.5, len(names) - 0.5], row=2, col=1
    )
    dur = _np(wave).size / sr
    fig.update_xaxes(title_text="time (s)", range=[0, max(dur, 1e-3)], row=2, col=1)
    return finish(fig, uirevision="detection_timeline", title=title, height=260 + 34 * max(len(names), 1))
