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

__all__ = ["SpectralConfig", "SpectralReport", "band_levels_db", "crossings", "encode_spectral"]


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
            if f.name != "kind" and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                                     or not math.isfinite(v)):
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
    def from_dict(cls, d: dict) -> "SpectralConfig":
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}", "spectral")
        return cls(**d)

    def replace(self, **changes) -> "SpectralConfig":
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


def band_levels_db(wave: np.ndarray, cfg: SpectralConfig) -> np.ndarray:
    """``[n_steps, n_bands]`` band power in dB relative to the clip's maximum (<= 0), one row per step."""
    x = np.asarray(wave, dtype=np.float64)
    hop = cfg.hop
    n_steps = max(1, -(-x.size // hop))
    if cfg.kind == "mel":
        import librosa

        S = librosa.feature.melspectrogram(y=x.astype(np.float32), sr=cfg.sr, n_fft=cfg.n_fft, hop_length=hop,
                                           n_mels=cfg.n_bands, fmin=cfg.f_min, fmax=cfg.f_max, power=2.0,
                                           center=True)  # frame i is centred on sample i * hop
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
    peak = P.max()
    if not peak > 0:
        return np.full(P.shape, -np.inf)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(P / peak)


@numba.njit(cache=True)
def _crossings(levels, thresholds, hysteresis, sustain, out_t, out_u):
    n_steps, n_bands = levels.shape
    n_lev = thresholds.size
    n = 0
    for b in range(n_bands):
        for li in range(n_lev):
            thr = thresholds[li]
            armed = True  # silence before the clip: a clip that starts loud spikes at step 0
            last = 0
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
    return n


def crossings(levels_db: np.ndarray, thresholds_db: np.ndarray, hysteresis_db: float,
              sustain_steps: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rising crossings (and, with ``sustain_steps``, repeats while the level stays up): (steps,
    afferents ``band * n_levels + level``) sorted by step then afferent."""
    lv = np.ascontiguousarray(levels_db, dtype=np.float64)
    th = np.ascontiguousarray(thresholds_db, dtype=np.float64)
    cap = lv.shape[0] * lv.shape[1] * th.size if sustain_steps else \
        (lv.shape[0] // 2 + 1) * lv.shape[1] * th.size  # crossings need a re-arm step between them
    t = np.empty(cap, dtype=np.int64)
    u = np.empty(cap, dtype=np.int64)
    n = _crossings(lv, th, float(hysteresis_db), int(sustain_steps), t, u)
    order = np.lexsort((u[:n], t[:n]))
    return t[:n][order], u[:n][order]


def encode_spectral(wave: np.ndarray, cfg: SpectralConfig | None = None) -> tuple[SpikeTrain, SpectralReport]:
    """Waveform (mono, at ``cfg.sr``) -> spike raster of threshold crossings + report."""
    cfg = cfg or SpectralConfig()
    x = np.asarray(wave)
    if x.ndim != 1 or x.size == 0:
        raise AudioError(f"expected a non-empty mono 1-D waveform, got shape {x.shape}", "waveform")
    if not np.all(np.isfinite(x)):
        raise AudioError("waveform contains NaN/inf samples", "waveform")
    t0 = time.perf_counter()
    lv = band_levels_db(x, cfg)
    steps, units = crossings(lv, cfg.thresholds_db(), cfg.hysteresis_db, cfg.sustain_steps)
    train = SpikeTrain(steps, units, cfg.n_units, lv.shape[0], cfg.dt_ms)
    seconds = time.perf_counter() - t0
    audio_s = x.size / cfg.sr
    return train, SpectralReport(train.n_spikes, lv.shape[0], cfg.kind, audio_s, seconds,
                                 audio_s / seconds if seconds > 0 else float("inf"))
