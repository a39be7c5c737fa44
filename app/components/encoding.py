"""Streamlit-free helpers the Data and Detect pages share: build an encoder from a model's stored
settings and encode a waveform of any length in pieces (the same piecing as ``stca encode``)."""
from __future__ import annotations

import math

import numpy as np

from stca_engine.data.types import SpikeTrain
from stca_engine.errors import ConfigError


def encoder_from_settings(settings: dict | None, default: str = "spectral"):
    """An encoder from stored settings: ``Encoder.settings()`` (``{"encoder", "version", ...}``, what checkpoints
    and the cache keep, version-checked by the engine) or a UI dict ``{"name": ..., **settings}``."""
    from stca_engine.encoders import encoder_from_settings as engine_from_settings, make_encoder

    settings = dict(settings or {})
    name = settings.pop("name", None)
    if "encoder" in settings:
        return engine_from_settings(settings)
    return make_encoder(name or default, **settings)


def split_result(result):
    """Encoders return ``(SpikeTrain, report)``; tolerate a bare ``SpikeTrain``."""
    if isinstance(result, tuple):
        return result[0], (result[1] if len(result) > 1 else None)
    return result, None


def encode_long(encoder, wave: np.ndarray, sr: int, dt_ms: float, progress=None) -> tuple[SpikeTrain, list]:
    """Encode ``wave`` in pieces of ``limits.chunk_spans`` and merge the spikes at their offsets, so a
    ten-minute recording never needs one huge matching-pursuit problem. Returns the train and the
    per-piece reports."""
    from stca_engine import limits

    wave = np.asarray(wave, dtype=np.float32)
    spans = limits.chunk_spans(wave.size, sr)
    total_steps = int(math.ceil(wave.size / sr * 1000.0 / dt_ms))
    parts, reports = [], []
    for i, (a, b) in enumerate(spans):
        tr, rep = split_result(encoder.encode(wave[a:b]))
        if abs(tr.dt_ms - dt_ms) > 1e-9:
            raise ConfigError(f"the encoder produced dt = {tr.dt_ms} ms but the model runs at dt = {dt_ms} ms",
                              "encoder settings")
        off = int(round(a / sr * 1000.0 / dt_ms))
        parts.append((tr.times + off, tr.units, tr.n_units))
        reports.append(rep)
        if progress is not None:
            progress(i + 1, len(spans), f"encoding piece {i + 1}/{len(spans)}")
    times = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    units = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    n_units = parts[0][2]
    n_steps = max(total_steps, int(times.max()) + 1 if times.size else 0, 1)
    merged = SpikeTrain.merge([SpikeTrain(times, units, n_units, n_steps, dt_ms)], n_steps)
    return merged, reports
