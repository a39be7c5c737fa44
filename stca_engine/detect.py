"""Event detection on whole recordings of any length with a trained detection network.

A trained detection model fires one spike cluster per event of its class (SPEC §3), so detecting
events in a recording means: encode it, run the network, and read each output neuron's clusters.
Long recordings do not fit one dense ``[T, n_in]`` raster, so the network runs in chunks of
``chunk_steps`` steps through the engine's stateful kernels (``SNN.forward(x, state=...)``), which
**carry every neuron's state (M, S, E and its last spike) across chunk boundaries**. The per-step
arithmetic is sequential and identical whatever the chunk size, so a chunked run gives bit-for-bit the
same spikes and voltages as one unchunked run. This module keeps no recurrence of its own.

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


def _streaming_net(net, neuron_cfg):
    """A float64 CPU copy of ``net`` (with the model's ``neuron_cfg``) on the numba kernels: the chunks of a
    long recording run through the engine's own stateful kernels (``SNN.forward(x, state=...)``), the
    same ones training uses."""
    from .network import SNN

    weights = list(net.weights)  # the SNN contract detection needs: weights [out, in] (SPEC §5)
    sizes = [int(weights[0].shape[1])] + [int(w.shape[0]) for w in weights]
    copy = SNN(
        sizes,
        neuron_cfg,
        dtype=torch.float64,
        device="cpu",
        output_spiking=bool(getattr(net, "output_spiking", True)),
        backend="numba",
        seed=0,
    )
    with torch.no_grad():
        for mine, theirs in zip(copy.weights, weights):
            mine.copy_(theirs.detach().to("cpu", torch.float64))
    return copy


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
    progress: Callable[[int, int, str], None] | None = None,
):
    """Run the network over a whole raster in chunks, carrying state (in float64, on the CPU).

    Returns ``(V_out [T, C] or None, spike_steps list per output neuron, n_chunks)``.
    """
    if chunk_steps < 1:
        raise ConfigError(f"chunk_steps must be >= 1, got {chunk_steps}", "detect")
    from .kernels import LayerState

    n_in = int(net.weights[0].shape[1])
    if spikes.n_units != n_in:
        raise ConfigError(
            f"the model expects {n_in} input afferents but the spike train has "
            f"{spikes.n_units} (was it encoded with the model's encoder settings?)",
            "detect",
        )
    stream = _streaming_net(net, neuron_cfg)
    out_spiking = bool(getattr(net, "output_spiking", True))
    # a zero start state from the first chunk on: every chunk then takes the kernels' input-by-input path
    state = [LayerState.zeros(1, n, torch.float64) for n in stream.sizes[1:]]
    T = int(spikes.n_steps)
    n_out = stream.sizes[-1]
    V_keep = np.zeros((T, n_out), dtype=np.float32) if keep_voltages else None
    out_steps: list[list[np.ndarray]] = [[] for _ in range(n_out)]
    order = np.argsort(spikes.times, kind="stable")
    times, units = spikes.times[order], spikes.units[order]
    n_chunks = max(1, math.ceil(T / chunk_steps))
    for ci in range(n_chunks):
        a, b = ci * chunk_steps, min(T, (ci + 1) * chunk_steps)
        lo, hi = np.searchsorted(times, a), np.searchsorted(times, b)
        x = torch.zeros(b - a, 1, spikes.n_units, dtype=torch.float64)
        x[torch.from_numpy(times[lo:hi] - a), 0, torch.from_numpy(units[lo:hi])] = 1.0
        with torch.no_grad():
            rec = stream(x, state=state)
        state = rec.state
        V, O = rec.voltages[-1][:, 0].numpy(), rec.spikes[-1][:, 0].numpy()
        if V_keep is not None:
            V_keep[a:b] = V
        if out_spiking:
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
