"""Fast alternative encoder: rising threshold crossings on a mel or gammatone spectrogram.

Each band's level (dB below the clip's loudest frame-band) is compared with ``n_levels`` thresholds;
every upward crossing of a threshold is a spike on afferent ``(band, level)``. A crossing re-arms only
after the level falls ``hysteresis_db`` below the threshold, so noise riding on a threshold does not
chatter. No pursuit, so it runs hundreds of times faster than real time -- meant for quick
classroom runs; the spikegram keeps more temporal detail.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields, replace

import numba
import numpy as np

from .data.types import SpikeTrain
from .errors import AudioError, ConfigError

__all__ = [
    "SpectralConfig",
    "SpectralReport",
    "band_power",
    "band_levels_db",
    "context_samples",
    "crossings",
    "encode_spectral",
    "encode_spectral_pieces",
]


@dataclass(frozen=True)
class SpectralConfig:
    kind: str = "mel"  # "mel" (librosa) or "gammatone" (the spikegram's kernels as a filterbank)
    n_bands: int = 32
    n_levels: int = 4
    f_min: float = 50.0
    f_max: float = 8000.0
    dynamic_range_db: float = 60.0  # thresholds are spread over this range below the clip's peak
    hysteresis_db: float = 3.0
    n_fft: int = 512  # mel only
    dt_ms: float = 3.0
    sr: int = 16000
    # 0: one spike per rising crossing; N > 0: while a band stays at or above a threshold its afferent fires
    # again every N steps (a rate code of loudness that survives small shifts in time and level)
    sustain_steps: int = 0

    def __post_init__(self):
        def bad(name, why):
            raise ConfigError(f"{why} (got {getattr(self, name)!r})", f"spectral.{name}")

        if self.kind not in ("mel", "gammatone"):
            bad("kind", "must be 'mel' or 'gammatone'")
        for name in ("n_bands", "n_levels", "n_fft", "sr", "sustain_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                bad(name, "must be an integer")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name != "kind" and (
                isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v)
            ):
                bad(f.name, "must be a finite number")
        if not 1 <= self.n_bands <= 512:
            bad("n_bands", "must be between 1 and 512")
        if not 0 <= self.sustain_steps <= 1000:
            bad("sustain_steps", "must be between 0 (crossings only) and 1000")
        if not 1 <= self.n_levels <= 32:
            bad("n_levels", "must be between 1 and 32")
        if not 1000 <= self.sr <= 192000:
            bad("sr", "must be between 1000 and 192000 Hz")
        if not 0 < self.f_min < self.f_max:
            bad("f_min", f"must be positive and below f_max={self.f_max}")
        if self.f_max > self.sr / 2:
            bad("f_max", f"must not exceed the Nyquist frequency {self.sr / 2:g} Hz")
        if not 0 < self.dynamic_range_db <= 200:
            bad("dynamic_range_db", "must be in (0, 200] dB")
        if not 0 <= self.hysteresis_db < self.dynamic_range_db:
            bad("hysteresis_db", "must be >= 0 and below dynamic_range_db")
        if not 16 <= self.n_fft <= 16384:
            bad("n_fft", "must be between 16 and 16384")
        if not 0 < self.dt_ms <= 100:
            bad("dt_ms", "must be in (0, 100] ms")
        if self.sr * self.dt_ms / 1000.0 < 1:
            bad("dt_ms", "must span at least one sample")

    @property
    def n_units(self) -> int:
        return self.n_bands * self.n_levels

    @property
    def hop(self) -> int:
        return max(1, int(round(self.sr * self.dt_ms / 1000.0)))

    def thresholds_db(self) -> np.ndarray:
        """Levels below the clip's peak, loudest first: -R(i+1)/(n_levels+1), i = 0..n_levels-1."""
        i = np.arange(self.n_levels)
        return -self.dynamic_range_db * (i + 1) / (self.n_levels + 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SpectralConfig:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}", "spectral")
        return cls(**d)

    def replace(self, **changes) -> SpectralConfig:
        return replace(self, **changes)


@dataclass(frozen=True)
class SpectralReport:
    n_spikes: int
    n_frames: int
    kind: str
    audio_seconds: float
    seconds: float
    realtime_factor: float

    def to_dict(self) -> dict:
        return asdict(self)


def band_power(wave: np.ndarray, cfg: SpectralConfig) -> np.ndarray:
    """``[n_steps, n_bands]`` band power (not normalised), one row per step: row ``i`` covers the
    samples around ``i * hop`` (mel: a window centred there; gammatone: the causal filter output over
    ``[i * hop, (i + 1) * hop)``), so it depends only on the samples within ``context_samples(cfg)``
    of ``i * hop`` (and on where the wave ends)."""
    x = np.asarray(wave, dtype=np.float64)
    hop = cfg.hop
    n_steps = max(1, -(-x.size // hop))
    if cfg.kind == "mel":
        import librosa

        S = librosa.feature.melspectrogram(
            y=x.astype(np.float32),
            sr=cfg.sr,
            n_fft=cfg.n_fft,
            hop_length=hop,
            n_mels=cfg.n_bands,
            fmin=cfg.f_min,
            fmax=cfg.f_max,
            power=2.0,
            center=True,
        )  # frame i is centred on sample i * hop
        P = S.T.astype(np.float64)
    else:
        from scipy.signal import oaconvolve

        from .spikegram import gammatone_kernels

        _, _, kernels = gammatone_kernels(cfg.n_bands, float(cfg.f_min), float(cfg.f_max), cfg.sr)
        # causal filterbank output; float32 halves the FFT time and is ample for a dB envelope
        y = oaconvolve(x[None, :].astype(np.float32), kernels.astype(np.float32), axes=1)[:, : x.size]
        y = y.astype(np.float64)
        pad = n_steps * hop - x.size
        e = np.pad(y * y, ((0, 0), (0, pad))).reshape(cfg.n_bands, n_steps, hop).mean(axis=2)
        P = e.T
    P = P[:n_steps]
    if P.shape[0] < n_steps:
        P = np.pad(P, ((0, n_steps - P.shape[0]), (0, 0)))
    return P


def _to_db(P: np.ndarray, peak: float) -> np.ndarray:
    if not peak > 0:
        return np.full(P.shape, -np.inf)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(P / peak)


def band_levels_db(wave: np.ndarray, cfg: SpectralConfig) -> np.ndarray:
    """``[n_steps, n_bands]`` band power in dB relative to the clip's maximum (<= 0), one row per step."""
    P = band_power(wave, cfg)
    return _to_db(P, float(P.max()))


def context_samples(cfg: SpectralConfig) -> int:
    """Samples on each side of ``i * hop`` that step ``i`` of ``band_power`` can depend on, rounded up
    to whole steps (mel: half the FFT window, taken as a whole window so that even a short last piece
    with its context is one window long; gammatone: the longest kernel), plus one step."""
    if cfg.kind == "mel":
        need = cfg.n_fft
    else:
        from .spikegram import gammatone_kernels

        need = int(gammatone_kernels(cfg.n_bands, float(cfg.f_min), float(cfg.f_max), cfg.sr)[2].shape[1])
    return (-(-need // cfg.hop) + 1) * cfg.hop


@numba.njit(cache=True)
def _crossings(levels, thresholds, hysteresis, sustain, armed_in, last_in, out_t, out_u):
    n_steps, n_bands = levels.shape
    n_lev = thresholds.size
    n = 0
    for b in range(n_bands):
        for li in range(n_lev):
            thr = thresholds[li]
            armed = armed_in[b, li]  # a fresh state is armed: silence before the clip, so a loud start spikes
            last = last_in[b, li]  # step of the last spike, relative to this block's first step
            for t in range(n_steps):
                v = levels[t, b]
                if armed and v >= thr:
                    out_t[n] = t
                    out_u[n] = b * n_lev + li
                    n += 1
                    armed = False
                    last = t
                elif not armed and v < thr - hysteresis:
                    armed = True
                elif not armed and sustain > 0 and v >= thr and t - last >= sustain:
                    out_t[n] = t
                    out_u[n] = b * n_lev + li
                    n += 1
                    last = t
            armed_in[b, li] = armed  # carried to the next block of steps
            last_in[b, li] = last - n_steps
    return n


class CrossingState:
    """Per (band, level) ``armed`` flag and last spike step, carried from one block of steps to the
    next, so crossings of consecutive blocks equal those of the blocks joined (a fresh state is the
    silence before a clip)."""

    def __init__(self, n_bands: int, n_levels: int):
        self.armed = np.ones((n_bands, n_levels), dtype=np.bool_)
        self.last = np.zeros((n_bands, n_levels), dtype=np.int64)


def crossings(
    levels_db: np.ndarray,
    thresholds_db: np.ndarray,
    hysteresis_db: float,
    sustain_steps: int = 0,
    state: CrossingState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rising crossings (and, with ``sustain_steps``, repeats while the level stays up): (steps,
    afferents ``band * n_levels + level``) sorted by step then afferent. ``state`` (updated in place)
    carries each afferent's state in from the previous block of steps and out to the next."""
    lv = np.ascontiguousarray(levels_db, dtype=np.float64)
    th = np.ascontiguousarray(thresholds_db, dtype=np.float64)
    if state is None:
        state = CrossingState(lv.shape[1], th.size)
    cap = (
        lv.shape[0] * lv.shape[1] * th.size if sustain_steps else (lv.shape[0] // 2 + 1) * lv.shape[1] * th.size
    )  # crossings need a re-arm step between them
    t = np.empty(cap, dtype=np.int64)
    u = np.empty(cap, dtype=np.int64)
    n = _crossings(lv, th, float(hysteresis_db), int(sustain_steps), state.armed, state.last, t, u)
    order = np.lexsort((u[:n], t[:n]))
    return t[:n][order], u[:n][order]


def _checked_wave(wave) -> np.ndarray:
    x = np.asarray(wave)
    if x.ndim != 1 or x.size == 0:
        raise AudioError(f"expected a non-empty mono 1-D waveform, got shape {x.shape}", "waveform")
    if not np.all(np.isfinite(x)):
        raise AudioError("waveform contains NaN/inf samples", "waveform")
    return x


def encode_spectral(wave: np.ndarray, cfg: SpectralConfig | None = None) -> tuple[SpikeTrain, SpectralReport]:
    """Waveform (mono, at ``cfg.sr``) -> spike raster of threshold crossings + report."""
    cfg = cfg or SpectralConfig()
    x = _checked_wave(wave)
    t0 = time.perf_counter()
    lv = band_levels_db(x, cfg)
    steps, units = crossings(lv, cfg.thresholds_db(), cfg.hysteresis_db, cfg.sustain_steps)
    train = SpikeTrain(steps, units, cfg.n_units, lv.shape[0], cfg.dt_ms)
    seconds = time.perf_counter() - t0
    audio_s = x.size / cfg.sr
    return train, SpectralReport(
        train.n_spikes, lv.shape[0], cfg.kind, audio_s, seconds, audio_s / seconds if seconds > 0 else float("inf")
    )


def piece_cores(n_samples: int, cfg: SpectralConfig, piece_samples: int) -> list[tuple[int, int]]:
    """The pieces ``encode_spectral_pieces`` cuts a wave into: ``[(c0, c1)]`` covering ``[0, n)``,
    ``ceil(n / piece_samples)`` pieces of equal length in whole steps (the last one shorter)."""
    hop = cfg.hop
    n_pieces = max(1, -(-int(n_samples) // max(1, int(piece_samples))))
    per_piece = -(-int(n_samples) // n_pieces)  # ceil(n / n_pieces)
    step = max(hop, -(-per_piece // hop) * hop)  # rounded up to whole steps
    return [(c0, min(n_samples, c0 + step)) for c0 in range(0, max(1, n_samples), step)]


def encode_spectral_pieces(
    wave: np.ndarray, cfg: SpectralConfig | None, piece_samples: int, progress=None
) -> SpikeTrain:
    """``encode_spectral(wave, cfg)[0]`` computed piece by piece, for recordings of any length.

    Each piece's band power is computed with ``context_samples`` of the real signal on both sides
    and only its own steps are kept, so every step sees the same samples as in one whole-wave run;
    the dB scale is relative to the loudest step of the whole wave (a first pass over the pieces);
    the crossing detector's state is carried from piece to piece. So the spikes do not depend on the
    piece length (no onsets at the seams), while memory follows the piece, not the wave.
    ``progress(done, total, message)`` is called after each piece of each pass.
    """
    cfg = cfg or SpectralConfig()
    x = _checked_wave(wave)
    cores = piece_cores(x.size, cfg, piece_samples)
    if len(cores) == 1:
        train = encode_spectral(x, cfg)[0]
        if progress is not None:
            progress(1, 1, "encoding")
        return train
    hop, n, margin = cfg.hop, x.size, context_samples(cfg)
    n_steps = -(-n // hop)
    total = 2 * len(cores)

    def core_power(c0, c1):
        e0, e1 = max(0, c0 - margin), min(n, c1 + margin)
        P = band_power(x[e0:e1], cfg)
        f0 = (c0 - e0) // hop
        return P[f0 : f0 + (-(-c1 // hop) - c0 // hop)]

    peak = 0.0
    for i, (c0, c1) in enumerate(cores):
        peak = max(peak, float(core_power(c0, c1).max()))
        if progress is not None:
            progress(i + 1, total, f"measuring the level: piece {i + 1}/{len(cores)}")
    state = CrossingState(cfg.n_bands, cfg.n_levels)
    times, units = [], []
    for i, (c0, c1) in enumerate(cores):
        t, u = crossings(
            _to_db(core_power(c0, c1), peak), cfg.thresholds_db(), cfg.hysteresis_db, cfg.sustain_steps, state
        )
        times.append(t + c0 // hop)
        units.append(u)
        if progress is not None:
            progress(len(cores) + i + 1, total, f"encoding piece {i + 1}/{len(cores)}")
    return SpikeTrain(np.concatenate(times), np.concatenate(units), cfg.n_units, n_steps, cfg.dt_ms)
