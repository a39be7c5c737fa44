"""Event detection on whole recordings of any length with a trained detection network.

A trained detection model fires one spike cluster per event of its class (SPEC §3), so detecting
events in a recording means: encode it, run the network, and read each output neuron's clusters.
Long recordings do not fit one dense ``[T, n_in]`` raster, so the network runs in chunks of
``chunk_steps`` steps and **carries every neuron's state (M, S, E and its last spike) across chunk
boundaries**. The per-step arithmetic is sequential and identical whatever the chunk size, so a
chunked run gives bit-for-bit the same spikes and voltages as one unchunked run.

``encode_recording`` turns a recording into spikes the way training saw its events (each sound
region encoded on its own). ``detect_events`` is used by ``stca detect`` and the app's Detect page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .clusters import cluster_spans
from .data.types import SpikeTrain
from .errors import ConfigError

DEFAULT_CHUNK_STEPS = 20_000  # 60 s at dt = 3 ms: a few MB of dense raster per layer


def _njit(fn):
    """numba-compile lazily on first call (nothing compiles at import time)."""
    compiled = {}

    def wrapper(*args):
        if "f" not in compiled:
            import numba

            compiled["f"] = numba.njit(cache=True, nogil=True)(fn)
        return compiled["f"](*args)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.py_func = fn
    return wrapper


@_njit
def _clif_chunk(x, WT, v0, beta_m, beta_s, theta, spiking, m, s, e, o, V_out, O_out):
    """Advance one C-LIF layer over ``x [t, n_in]`` (0/1) from state ``(m, s, e, o)`` (updated in place).

    I[k] = V0 · Σ_j W[:, j] x[k, j] (summed over the active inputs in increasing j), then SPEC §2:
    M = βm M + I, S = βs S + I, E = βm E + ϑ O_prev, V = M − S − E, O = [V ≥ ϑ].
    A non-spiking layer (margin readout) has V = M − S and never spikes.
    """
    t, n_in = x.shape
    n = WT.shape[1]
    cur = np.zeros(n, dtype=WT.dtype)
    for k in range(t):
        for i in range(n):
            cur[i] = 0.0
        for j in range(n_in):
            if x[k, j] != 0:
                for i in range(n):
                    cur[i] += WT[j, i]
        for i in range(n):
            I = v0 * cur[i]
            m[i] = beta_m * m[i] + I
            s[i] = beta_s * s[i] + I
            if spiking:
                e[i] = beta_m * e[i] + theta * o[i]
                v = m[i] - s[i] - e[i]
                o[i] = 1.0 if v >= theta else 0.0
            else:
                v = m[i] - s[i]
            V_out[k, i] = v
            O_out[k, i] = o[i]


def _layer_params(net, neuron_cfg):
    """(W [out, in] numpy, spiking) per layer; the output layer is non-spiking only for a margin readout."""
    weights = [w.detach().to("cpu", torch.float64).numpy() for w in net.weights]
    out_spiking = bool(getattr(net, "output_spiking", True))
    flags = [True] * (len(weights) - 1) + [out_spiking]
    return weights, flags


@dataclass
class DetectionResult:
    """What ``detect_events`` found in one recording.

    ``events``: one dict per output spike cluster, in time order:
    ``{"class", "class_index", "start_s", "end_s", "n_spikes", "peak_v"}`` (``end_s`` is the end of
    the cluster's last time step). ``voltages``: output voltage traces ``[T, C]`` (float32; None
    when not kept). ``spike_steps[c]``: the output neuron ``c``'s spike steps.
    """

    events: list[dict]
    voltages: np.ndarray | None
    spike_steps: list[np.ndarray]
    class_names: list[str]
    dt_ms: float
    n_steps: int
    theta: float
    chunks: int = 1
    extras: dict = field(default_factory=dict)

    @property
    def times_s(self) -> np.ndarray:
        """Time axis of ``voltages`` in seconds (start of each step)."""
        return np.arange(self.n_steps) * (self.dt_ms / 1000.0)

    def counts(self) -> dict[str, int]:
        """Detected events per class name."""
        out = {c: 0 for c in self.class_names}
        for ev in self.events:
            out[ev["class"]] += 1
        return out


def run_streaming(
    net,
    neuron_cfg,
    spikes: SpikeTrain,
    chunk_steps: int = DEFAULT_CHUNK_STEPS,
    keep_voltages: bool = True,
    dtype=np.float64,
    progress: Callable[[int, int, str], None] | None = None,
):
    """Run the network over a whole raster in chunks, carrying state.

    Returns ``(V_out [T, C] or None, spike_steps list per output neuron, n_chunks)``.
    """
    if chunk_steps < 1:
        raise ConfigError(f"chunk_steps must be >= 1, got {chunk_steps}", "detect")
    weights, flags = _layer_params(net, neuron_cfg)
    if spikes.n_units != weights[0].shape[1]:
        raise ConfigError(
            f"the model expects {weights[0].shape[1]} input afferents but the spike train has "
            f"{spikes.n_units} (was it encoded with the model's encoder settings?)",
            "detect",
        )
    WTs = [np.ascontiguousarray(w.T.astype(dtype)) for w in weights]
    states = [tuple(np.zeros(w.shape[0], dtype=dtype) for _ in range(4)) for w in weights]
    p = (float(neuron_cfg.v0), float(neuron_cfg.beta_m), float(neuron_cfg.beta_s), float(neuron_cfg.theta))
    T = int(spikes.n_steps)
    n_out = weights[-1].shape[0]
    V_keep = np.zeros((T, n_out), dtype=np.float32) if keep_voltages else None
    out_steps: list[list[np.ndarray]] = [[] for _ in range(n_out)]
    order = np.argsort(spikes.times, kind="stable")
    times, units = spikes.times[order], spikes.units[order]
    n_chunks = max(1, math.ceil(T / chunk_steps))
    for ci in range(n_chunks):
        a, b = ci * chunk_steps, min(T, (ci + 1) * chunk_steps)
        lo, hi = np.searchsorted(times, a), np.searchsorted(times, b)
        x = np.zeros((b - a, spikes.n_units), dtype=np.uint8)
        x[times[lo:hi] - a, units[lo:hi]] = 1
        for li, (WT, spiking) in enumerate(zip(WTs, flags)):
            m, s, e, o = states[li]
            V = np.empty((b - a, WT.shape[1]), dtype=dtype)
            O = np.zeros((b - a, WT.shape[1]), dtype=dtype)
            _clif_chunk(x, WT, *p, spiking, m, s, e, o, V, O)
            x = O
        if V_keep is not None:
            V_keep[a:b] = V
        if flags[-1]:
            for c in range(n_out):
                out_steps[c].append(np.flatnonzero(O[:, c]) + a)
        if progress is not None:
            progress(ci + 1, n_chunks, f"chunk {ci + 1}/{n_chunks}")
    spike_steps = [np.concatenate(s).astype(np.int64) if s else np.zeros(0, np.int64) for s in out_steps]
    return V_keep, spike_steps, n_chunks


def detect_events(
    net,
    neuron_cfg,
    spikes: SpikeTrain,
    class_names: Sequence[str],
    chunk_steps: int = DEFAULT_CHUNK_STEPS,
    keep_voltages: bool = True,
    min_spikes: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
) -> DetectionResult:
    """Detect events in one recording's spike raster with a trained detection network.

    Each output spike cluster (spikes closer than T_in, SPEC §3) of neuron ``c`` is one event of
    class ``class_names[c]``; clusters with fewer than ``min_spikes`` spikes are dropped.
    The network runs in chunks of ``chunk_steps`` carrying neuron state, so the result does not
    depend on the chunk size.
    """
    class_names = list(class_names)
    n_out = net.weights[-1].shape[0]
    if len(class_names) != n_out:
        raise ConfigError(f"{len(class_names)} class names for a network with {n_out} outputs", "detect")
    if not bool(getattr(net, "output_spiking", True)):
        raise ConfigError(
            "this model has a non-spiking (margin) readout: it classifies clips and cannot "
            "detect events; train it with --task detect and objective stca or tdp1",
            "detect",
        )
    if abs(spikes.dt_ms - neuron_cfg.dt_ms) > 1e-9:
        raise ConfigError(
            f"spike train dt {spikes.dt_ms} ms differs from the model's dt {neuron_cfg.dt_ms} ms", "detect"
        )
    V, spike_steps, n_chunks = run_streaming(net, neuron_cfg, spikes, chunk_steps, keep_voltages, progress=progress)
    dt_s = neuron_cfg.dt_ms / 1000.0
    events = []
    for c, steps in enumerate(spike_steps):
        for first, last, n in cluster_spans(steps, neuron_cfg.t_in_steps):
            if n < min_spikes:
                continue
            ev = {
                "class": class_names[c],
                "class_index": c,
                "start_s": round(first * dt_s, 6),
                "end_s": round((last + 1) * dt_s, 6),
                "n_spikes": int(n),
            }
            if V is not None:
                ev["peak_v"] = float(V[first : last + 1, c].max())
            events.append(ev)
    events.sort(key=lambda ev: (ev["start_s"], ev["class_index"]))
    return DetectionResult(
        events,
        V,
        spike_steps,
        class_names,
        float(neuron_cfg.dt_ms),
        int(spikes.n_steps),
        float(neuron_cfg.theta),
        n_chunks,
    )


def events_to_rows(path: str, result: DetectionResult) -> list[dict]:
    """Table rows (file, class, start_s, end_s, n_spikes) for CSV/JSON output."""
    return [
        {
            "file": str(path),
            "class": ev["class"],
            "start_s": ev["start_s"],
            "end_s": ev["end_s"],
            "n_spikes": ev["n_spikes"],
        }
        for ev in result.events
    ]


# ------------------------------------------------------------------------------------------------
# recordings -> spikes, the way training saw its events
# ------------------------------------------------------------------------------------------------
def sound_regions(
    wave: np.ndarray,
    sr: int,
    floor_db: float = 60.0,
    frame_s: float = 0.01,
    min_gap_s: float = 0.08,
    min_len_s: float = 0.03,
) -> list[tuple[int, int]]:
    """Sample spans ``[(a, b)]`` where the recording is within ``floor_db`` dB of its loudest 10 ms
    frame; gaps shorter than ``min_gap_s`` are bridged, regions shorter than ``min_len_s`` dropped."""
    wave = np.asarray(wave, dtype=np.float32)
    hop = max(1, int(round(frame_s * sr)))
    n = wave.size // hop
    if n == 0:
        return [(0, wave.size)] if wave.size else []
    rms = np.sqrt(np.mean(wave[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    peak = float(rms.max())
    if peak <= 0:
        return []
    active = rms >= peak * 10 ** (-abs(floor_db) / 20)
    idx = np.flatnonzero(active)
    regions, start, last = [], int(idx[0]), int(idx[0])
    gap = max(1, int(round(min_gap_s / frame_s)))
    for i in idx[1:]:
        if i - last > gap:
            regions.append((start, last + 1))
            start = int(i)
        last = int(i)
    regions.append((start, last + 1))
    min_frames = max(1, int(round(min_len_s / frame_s)))
    return [(a * hop, min(wave.size, b * hop)) for a, b in regions if b - a >= min_frames]


def encode_recording(
    wave: np.ndarray,
    sr: int,
    encoder,
    segment: bool = True,
    piece_s: float | None = None,
    progress: Callable | None = None,
) -> SpikeTrain:
    """A whole recording as one ``SpikeTrain`` on the recording's time axis.

    The encoders scale amplitudes to the loudest part of what they are given (the spikegram's
    amplitude bins are dB below the clip's largest atom), and training encoded every event on its
    own. So with ``segment`` each sound region (``sound_regions``) is encoded on its own and its
    spikes are placed at its offset; silence stays silent.

    A region is encoded **as if in one piece**, however long: cutting it and encoding the pieces on
    their own made every seam a sound onset (spikes at every ``STCA_CHUNK_SECONDS`` on a steady tone,
    detected as events) and scaled each piece to its own peak. An encoder with ``encode_pieces``
    (the spectral one) works through a long region in pieces of ``piece_s`` (default
    ``limits.chunk_seconds()``) with context on both sides of each piece, one level scale for the
    region and its state carried across seams, so memory follows the piece and the spikes equal the
    whole-region encoding. Other encoders get the region whole (the spikegram bounds its own memory:
    its pursuit runs in ``chunk_seconds`` chunks with an exact carried residual).
    ``progress(done, total, message)`` is called after each piece (each pass of a cut region).
    """
    from . import limits

    dt_ms = float(encoder.dt_ms)
    n_steps = max(1, int(math.ceil(wave.size / sr * 1000.0 / dt_ms)))
    spans = sound_regions(wave, sr) if segment else [(0, wave.size)]
    spans = [(a, b) for a, b in spans if b > a and float(np.max(np.abs(wave[a:b]))) > 0]
    times, units = [], []
    n_units = int(encoder.n_units)
    piece_samples = max(1, int(round((limits.chunk_seconds() if piece_s is None else float(piece_s)) * sr)))
    pieces = hasattr(encoder, "encode_pieces")
    counts = [encoder.piece_count(b - a, piece_samples) if pieces else 1 for a, b in spans]
    total = max(1, sum(counts))
    done = 0
    for (a, b), count in zip(spans, counts):
        region = wave[a:b]
        if pieces:

            def sub(d, _t, msg, _base=done):
                if progress is not None:
                    progress(_base + d, total, msg)

            tr = encoder.encode_pieces(region, piece_samples, sub)
        else:
            result = encoder.encode(region)
            tr = result[0] if isinstance(result, tuple) else result
            if progress is not None:
                progress(done + 1, total, f"encoding region {len(times) + 1}/{len(spans)}")
        done += count
        t = tr.times + int(round(a / sr * 1000.0 / dt_ms))
        keep = t < n_steps
        times.append(t[keep])
        units.append(tr.units[keep])
    if not times:
        if progress is not None:
            progress(1, 1, "nothing to encode (silent)")
        return SpikeTrain(np.zeros(0, np.int64), np.zeros(0, np.int64), n_units, n_steps, dt_ms)
    return SpikeTrain.merge(
        [SpikeTrain(np.concatenate(times), np.concatenate(units), n_units, n_steps, dt_ms)], n_steps
    )
