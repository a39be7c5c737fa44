"""Unsegmented event streams (paper §3.3).

A stream is a few randomly chosen events (classes drawn with replacement) spliced together with
random silent gaps. Its training label is only how often each class occurs; each event's
onset/offset is kept for evaluation and plots. Streams are built in the spike domain (shift and
merge the events' encoded rasters) so nothing is re-encoded, and the same random plan can splice
the waveforms instead (``stream_audio``) for listening and for the detect page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..names import GAP_MODES
from .types import Event, Sample, SpikeTrain

DEFAULT_GAP_S = (0.15, 0.5)  # the shortest gap exceeds the default T_in (141 ms)
PAPER_GAP_S = 0.15  # --gaps paper: one fixed interval (longer than the default T_in, 141 ms)


def gap_settings(mode: str) -> tuple[tuple[float, float], str]:
    """``(gap_s, trim)`` of a gap mode: ``random`` – gaps drawn in ``DEFAULT_GAP_S``, each event cut to its
    first..last spike; ``paper`` – the authors' splicing: one fixed interval ``PAPER_GAP_S`` and each
    event's leading silence kept (cut only after its last spike)."""
    if mode == "random":
        return DEFAULT_GAP_S, "both"
    if mode == "paper":
        return (PAPER_GAP_S, PAPER_GAP_S), "end"
    raise ConfigError(f"gaps must be one of {GAP_MODES}, got {mode!r}", "gaps")


@dataclass
class AudioStream:
    """A spliced waveform with its labels: per-class counts and each event's span (in steps of
    ``dt_ms`` in ``events``, in seconds in ``spans_s``)."""

    wave: np.ndarray
    sr: int
    target: np.ndarray
    events: list[Event] = field(default_factory=list)
    spans_s: list[tuple[int, float, float]] = field(default_factory=list)
    name: str = ""


def _check(n_streams, events_per_stream, gap_s):
    if int(n_streams) < 0:
        raise ConfigError(f"n_streams must be >= 0, got {n_streams}")
    lo_hi = events_per_stream if isinstance(events_per_stream, (tuple, list)) else (events_per_stream,) * 2
    lo, hi = int(lo_hi[0]), int(lo_hi[1])
    if lo < 1 or hi < lo:
        raise ConfigError(f"events_per_stream must be >= 1 (or a (min, max) range), got {events_per_stream}")
    g0, g1 = float(gap_s[0]), float(gap_s[1])
    if not (0.0 <= g0 <= g1) or not np.isfinite(g1):
        raise ConfigError(f"gap_s must be (min, max) seconds with 0 <= min <= max, got {gap_s}")
    return (lo, hi), (g0, g1)


def plan_streams(
    class_of: list[int], n_streams: int, events_per_stream=5, gap_s=DEFAULT_GAP_S, seed: int = 0
) -> list[tuple[list[int], list[float]]]:
    """The random choices behind streams, shared by the spike and the audio splicer.

    Per stream: a class is drawn uniformly (with replacement) among the classes present, then an
    event of that class (no event twice in one stream while the class has unused ones); gaps are
    drawn uniformly in ``gap_s`` seconds, one before every event and one after the last.
    Returns ``[(event indices, gaps in seconds (n_events + 1))]``; deterministic for a seed.
    """
    (lo, hi), (g0, g1) = _check(n_streams, events_per_stream, gap_s)
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(class_of):
        by_class.setdefault(int(c), []).append(i)
    if not by_class:
        raise ConfigError("cannot build streams: no events to splice")
    classes = sorted(by_class)
    rng = np.random.default_rng(seed)
    plans = []
    for _ in range(int(n_streams)):
        n_ev = int(rng.integers(lo, hi + 1))
        used: set[int] = set()
        picked = []
        for _ in range(n_ev):
            c = classes[int(rng.integers(len(classes)))]
            pool = [i for i in by_class[c] if i not in used] or by_class[c]
            i = pool[int(rng.integers(len(pool)))]
            used.add(i)
            picked.append(i)
        gaps = rng.uniform(g0, g1, size=n_ev + 1).tolist()
        plans.append((picked, gaps))
    return plans


def _spike_extent(tr: SpikeTrain) -> tuple[int, int]:
    return (int(tr.times.min()), int(tr.times.max()) + 1) if tr.n_spikes else (0, 0)


def build_streams(
    encoded: list[tuple[SpikeTrain, int]],
    n_streams: int,
    events_per_stream=5,
    gap_s=DEFAULT_GAP_S,
    seed: int = 0,
    n_classes: int | None = None,
    trim: bool = True,
    name_prefix: str = "stream",
) -> list[Sample]:
    """Streams spliced in the spike domain from ``encoded`` events ``(SpikeTrain, class index)``.

    With ``trim`` (``True`` or ``"both"``) each event is cut to its first..last spike, so an event's
    onset/offset is where its sound is and every gap is silent; ``"end"`` cuts only after the last spike
    (the event keeps its leading silence, as the authors spliced); ``False`` keeps whole clips. Events without spikes cannot be detected and are not used.
    ``Sample.target`` is the per-class occurrence count ``[n_classes]``; ``Sample.events`` the
    spliced events in order. Pass only train events for train streams.
    """
    if not encoded:
        raise ConfigError("cannot build streams: no encoded events")
    n_units, dt = encoded[0][0].n_units, encoded[0][0].dt_ms
    for tr, _ in encoded:
        if tr.n_units != n_units or tr.dt_ms != dt:
            raise ConfigError(
                "cannot splice events encoded with different settings "
                f"({tr.n_units} vs {n_units} afferents, dt {tr.dt_ms} vs {dt} ms)"
            )
    n_classes = int(n_classes if n_classes is not None else max(c for _, c in encoded) + 1)
    pieces = []  # (train starting at 0, length, class) for usable events
    for tr, c in encoded:
        if not 0 <= int(c) < n_classes:
            raise ConfigError(f"event class index {c} outside 0..{n_classes - 1}")
        if trim not in (True, False, "both", "end"):
            raise ConfigError(f"trim must be True, False, 'both' or 'end', got {trim!r}", "streams")
        a, b = _spike_extent(tr) if trim else (0, tr.n_steps)
        if trim == "end":
            a = 0
        if b <= a:
            continue
        keep = (tr.times >= a) & (tr.times < b)
        pieces.append((SpikeTrain(tr.times[keep] - a, tr.units[keep], n_units, b - a, dt), b - a, int(c)))
    if not pieces:
        raise ConfigError("cannot build streams: every event's spike train is empty")
    plans = plan_streams([p[2] for p in pieces], n_streams, events_per_stream, gap_s, seed)
    samples = []
    for k, (picked, gaps) in enumerate(plans):
        gap_steps = [int(round(g * 1000.0 / dt)) for g in gaps]
        onset = gap_steps[0]
        placed, events = [], []
        for j, i in enumerate(picked):
            tr, length, c = pieces[i]
            placed.append((tr, onset))
            events.append(Event(c, onset, onset + length))
            onset += length + gap_steps[j + 1]
        total = onset
        spikes = SpikeTrain.merge([tr.shifted(off, total) for tr, off in placed], total)
        target = np.bincount([e.class_index for e in events], minlength=n_classes).astype(np.int64)
        samples.append(Sample(spikes, target, events, f"{name_prefix}{k:05d}"))
    return samples


def _trim_wave(wave: np.ndarray, trim_db: float | None) -> np.ndarray:
    if trim_db is None or wave.size == 0:
        return wave
    peak = float(np.max(np.abs(wave)))
    if peak <= 0:
        return wave[:0]
    loud = np.flatnonzero(np.abs(wave) >= peak * 10 ** (-abs(trim_db) / 20))
    return wave[loud[0] : loud[-1] + 1]


def stream_audio(
    waves: list[tuple[np.ndarray, int]],
    n_streams: int,
    events_per_stream=5,
    gap_s=DEFAULT_GAP_S,
    seed: int = 0,
    n_classes: int | None = None,
    sr: int = 16000,
    dt_ms: float = 3.0,
    trim_db: float | None = 40.0,
    name_prefix: str = "stream",
) -> list[AudioStream]:
    """Streams spliced from waveforms with the same random plan as ``build_streams`` (same seed,
    same events in the same order -> same choices). With ``trim_db`` each event is cut to where it
    is within ``trim_db`` dB of its peak. Gaps are digital silence."""
    if not waves:
        raise ConfigError("cannot build streams: no events")
    n_classes = int(n_classes if n_classes is not None else max(c for _, c in waves) + 1)
    pieces = []
    for w, c in waves:
        if not 0 <= int(c) < n_classes:
            raise ConfigError(f"event class index {c} outside 0..{n_classes - 1}")
        w = _trim_wave(np.asarray(w, dtype=np.float32), trim_db)
        if w.size:
            pieces.append((w, int(c)))
    if not pieces:
        raise ConfigError("cannot build streams: every event is silent")
    plans = plan_streams([p[1] for p in pieces], n_streams, events_per_stream, gap_s, seed)
    step = sr * dt_ms / 1000.0
    out = []
    for k, (picked, gaps) in enumerate(plans):
        gap_n = [int(round(g * sr)) for g in gaps]
        parts = [np.zeros(gap_n[0], np.float32)]
        pos = gap_n[0]
        events, spans = [], []
        for j, i in enumerate(picked):
            w, c = pieces[i]
            parts.append(w)
            events.append(Event(c, int(pos // step), int(np.ceil((pos + w.size) / step))))
            spans.append((c, pos / sr, (pos + w.size) / sr))
            pos += w.size
            parts.append(np.zeros(gap_n[j + 1], np.float32))
            pos += gap_n[j + 1]
        target = np.bincount([e.class_index for e in events], minlength=n_classes).astype(np.int64)
        out.append(AudioStream(np.concatenate(parts), sr, target, events, spans, f"{name_prefix}{k:05d}"))
    return out
