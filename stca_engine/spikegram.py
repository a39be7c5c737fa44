"""Spikegram encoder (Smith & Lewicki 2005): matching pursuit over a gammatone dictionary.

A waveform is approximated greedily by unit-norm 4th-order gammatone atoms with non-negative
amplitudes; every atom becomes one spike on afferent ``(kernel, amplitude bin)`` at its onset,
rounded to the simulation step ``dt``.

Speed: the correlations of the signal with every kernel are computed once by FFT. After an atom is
chosen only the correlations that overlap it change, by ``-a * <g_k shifted, g_j>``, which is read
from a precomputed kernel-to-kernel cross-correlation table. The next best atom is found through a
two-level hierarchy of block maxima, so an iteration costs O(sum of kernel lengths) instead of
O(n_kernels x n_samples). The loop is compiled with numba (cache=True, compiled on first use).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace

import numba
import numpy as np

from .data.types import SpikeTrain
from .errors import AudioError, ConfigError

__all__ = [
    "SpikegramConfig",
    "SpikegramReport",
    "Atoms",
    "GammatoneDictionary",
    "gammatone_dictionary",
    "gammatone_kernels",
    "erb_space",
    "matching_pursuit",
    "reconstruct",
    "atoms_to_spikes",
    "encode_spikegram",
    "snr_db",
]

GAMMATONE_ORDER = 4
GAMMATONE_B = 1.019  # bandwidth factor of the 4th-order gammatone (Glasberg & Moore)
KERNEL_FLOOR = 1e-3  # a kernel ends where its envelope is 60 dB below its peak
_B1 = 128  # block size of the first level of maxima (samples)
_B2 = 64  # number of level-1 blocks per level-2 group

STOP_BUDGET = "spike budget"
STOP_RESIDUAL = "residual target"
STOP_NO_POSITIVE = "no positive correlation left"
_STOP_NAMES = {0: STOP_BUDGET, 1: STOP_RESIDUAL, 2: STOP_NO_POSITIVE}


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class SpikegramConfig:
    """Settings of the spikegram encoder; validated on construction (ConfigError names the setting)."""

    n_kernels: int = 32
    f_min: float = 50.0
    f_max: float = 8000.0
    n_bins: int = 4
    dynamic_range_db: float = 60.0  # amplitude bins cover this range below the clip's largest atom
    spikes_per_second: float = 1000.0  # atom budget per second of audio
    residual_db: float = -40.0  # stop once residual energy / signal energy <= this (dB)
    dt_ms: float = 3.0
    kernel_ms: float = 100.0  # longest kernel; each ends earlier where its envelope is -60 dB
    sr: int = 16000
    precision: str = "float32"  # correlation arrays; "float64" for bit-faithful pursuit (slower)
    chunk_seconds: float = 30.0  # longer clips are pursued in chunks of this length (bounds memory)

    def __post_init__(self):
        def bad(name, why):
            raise ConfigError(f"{why} (got {getattr(self, name)!r})", f"spikegram.{name}")

        for name in ("n_kernels", "n_bins", "sr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                bad(name, "must be an integer")
        if self.precision not in ("float32", "float64"):
            bad("precision", "must be 'float32' or 'float64'")
        for f in fields(self):
            if f.name == "precision":
                continue
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                bad(f.name, "must be a finite number")
        if not 1 <= self.n_kernels <= 512:
            bad("n_kernels", "must be between 1 and 512")
        if not 1 <= self.n_bins <= 16:
            bad("n_bins", "must be between 1 and 16")
        if not 1000 <= self.sr <= 192000:
            bad("sr", "must be between 1000 and 192000 Hz")
        if not 0 < self.f_min < self.f_max:
            bad("f_min", f"must be positive and below f_max={self.f_max}")
        if self.f_max > self.sr / 2:
            bad("f_max", f"must not exceed the Nyquist frequency {self.sr / 2:g} Hz")
        if not 0 < self.dynamic_range_db <= 200:
            bad("dynamic_range_db", "must be in (0, 200] dB")
        if not 0 < self.spikes_per_second <= 100_000:
            bad("spikes_per_second", "must be in (0, 100000]")
        if not -200 <= self.residual_db < 0:
            bad("residual_db", "must be in [-200, 0) dB")
        if not 0 < self.dt_ms <= 100:
            bad("dt_ms", "must be in (0, 100] ms")
        if not 1 <= self.kernel_ms <= 1000:
            bad("kernel_ms", "must be in [1, 1000] ms")
        if not 0.1 <= self.chunk_seconds <= 3600:
            bad("chunk_seconds", "must be in [0.1, 3600] s")

    @property
    def n_units(self) -> int:
        return self.n_kernels * self.n_bins

    @classmethod
    def medleydb(cls, **overrides) -> SpikegramConfig:
        """The paper's MedleyDB encoding: 128 kernels x 3 amplitude bins = 384 afferents."""
        return cls(**{"n_kernels": 128, "n_bins": 3, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SpikegramConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}", "spikegram")
        return cls(**d)

    def replace(self, **changes) -> SpikegramConfig:
        return replace(self, **changes)


@dataclass(frozen=True)
class SpikegramReport:
    n_atoms: int  # atoms found by matching pursuit
    n_spikes: int  # spikes in the raster (after dropping and merging)
    n_merged: int  # atoms that fell on an (afferent, step) already holding a spike
    n_below_range: int  # atoms quieter than dynamic_range_db below the largest (no spike)
    snr_db: float  # reconstruction SNR of the atoms over the clip
    stop_reason: str
    audio_seconds: float
    seconds: float  # wall time of the encoding
    realtime_factor: float  # audio_seconds / seconds (>1: faster than real time)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Atoms:
    """Matching-pursuit atoms: kernel index, onset sample, amplitude (> 0), in the order found."""

    kernel: np.ndarray  # int64
    time: np.ndarray  # int64, onset sample
    amplitude: np.ndarray  # float64
    stop_reason: str = STOP_BUDGET
    residual_energy: float = 0.0  # energy left (in the zero-padded residual)

    def __len__(self) -> int:
        return int(self.kernel.size)


# --------------------------------------------------------------------------- dictionary
def _erb_rate(f):
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(f, dtype=np.float64))


def _inv_erb_rate(e):
    return (10.0 ** (np.asarray(e, dtype=np.float64) / 21.4) - 1.0) / 0.00437


def erb_space(f_min: float, f_max: float, n: int) -> np.ndarray:
    """``n`` centre frequencies equally spaced on the ERB-rate scale (Glasberg & Moore 1990), inclusive."""
    if n == 1:
        return np.array([float(f_min)])
    return _inv_erb_rate(np.linspace(_erb_rate(f_min), _erb_rate(f_max), n))


def erb_bandwidth(f) -> np.ndarray:
    """Equivalent rectangular bandwidth in Hz: 24.7 (4.37 f/kHz + 1)."""
    return 24.7 * (4.37 * np.asarray(f, dtype=np.float64) / 1000.0 + 1.0)


@dataclass(frozen=True)
class GammatoneDictionary:
    centre_hz: np.ndarray  # [K]
    lengths: np.ndarray  # [K] int64 samples
    kernels: np.ndarray  # [K, Lmax] float64, unit norm, zero beyond lengths[k]
    table: np.ndarray  # flat cross-correlations <g_k(. - d), g_j>
    table_offset: np.ndarray  # [K, K] int64 start of pair (k, j) in table (lag -(L_j-1))
    sr: int
    _spectra: dict = field(default_factory=dict, compare=False, repr=False)

    def table_as(self, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        if dtype == self.table.dtype:
            return self.table
        key = ("table", dtype.str)
        t = self._spectra.get(key)
        if t is None:
            t = self.table.astype(dtype)
            t.setflags(write=False)
            self._spectra[key] = t
        return t

    def spectra(self, nfft: int, dtype=np.complex128) -> np.ndarray:
        """Conjugate rfft of every kernel at ``nfft`` points (cached: correlations need them per clip)."""
        key = (nfft, np.dtype(dtype).str)
        G = self._spectra.get(key)
        if G is None:
            from scipy import fft as sfft

            G = np.conj(sfft.rfft(self.kernels, nfft, axis=1)).astype(dtype)
            G.setflags(write=False)
            self._spectra[key] = G
        return G

    @property
    def n_kernels(self) -> int:
        return int(self.lengths.size)

    def cross(self, k: int, j: int) -> np.ndarray:
        """``X[d + L_j - 1] = sum_s g_k[s + d] g_j[s]`` for d in [-(L_j-1), L_k-1]."""
        o = self.table_offset[k, j]
        return self.table[o : o + self.lengths[k] + self.lengths[j] - 1]


def _gammatone(fc: float, sr: int, max_len: int) -> np.ndarray:
    a = 2 * np.pi * GAMMATONE_B * erb_bandwidth(fc)
    t = np.arange(max_len) / sr
    env = t ** (GAMMATONE_ORDER - 1) * np.exp(-a * t)
    env /= env.max()
    above = np.nonzero(env >= KERNEL_FLOOR)[0]
    n = int(above[-1]) + 1
    g = env[:n] * np.cos(2 * np.pi * fc * t[:n])
    return g / np.linalg.norm(g)


@functools.lru_cache(maxsize=16)
def gammatone_kernels(
    n_kernels: int, f_min: float, f_max: float, sr: int = 16000, kernel_ms: float = 100.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre_hz [K], lengths [K], kernels [K, Lmax] zero-padded), unit norm, read-only (cached)."""
    cf = erb_space(f_min, f_max, n_kernels)
    max_len = max(2, int(round(kernel_ms * sr / 1000.0)))
    gs = [_gammatone(f, sr, max_len) for f in cf]
    lengths = np.array([g.size for g in gs], dtype=np.int64)
    kernels = np.zeros((n_kernels, int(lengths.max())))
    for k, g in enumerate(gs):
        kernels[k, : g.size] = g
    for a in (cf, lengths, kernels):
        a.setflags(write=False)
    return cf, lengths, kernels


@functools.lru_cache(maxsize=8)
def _dictionary_cached(n_kernels: int, f_min: float, f_max: float, sr: int, kernel_ms: float) -> GammatoneDictionary:
    from scipy import fft as sfft

    cf, lengths, kernels = gammatone_kernels(n_kernels, f_min, f_max, sr, kernel_ms)
    L = kernels.shape[1]
    pair_len = lengths[:, None] + lengths[None, :] - 1
    offset = np.zeros((n_kernels, n_kernels), dtype=np.int64)
    offset.flat[1:] = np.cumsum(pair_len.ravel())[:-1]
    table = np.empty(int(pair_len.sum()))
    nfft = sfft.next_fast_len(2 * L - 1, real=True)
    G = sfft.rfft(kernels, nfft, axis=1)
    for k in range(n_kernels):
        # circular correlation c[d] = sum_s g_k[s + d] g_j[s]; negative lags wrap to the end
        c = sfft.irfft(G[k][None, :] * np.conj(G), nfft, axis=1)
        for j in range(n_kernels):
            lk, lj = lengths[k], lengths[j]
            o = offset[k, j]
            table[o : o + lj - 1] = c[j, nfft - (lj - 1) :] if lj > 1 else c[j, :0]
            table[o + lj - 1 : o + lj - 1 + lk] = c[j, :lk]
    for a in (table, offset):
        a.setflags(write=False)
    return GammatoneDictionary(cf, lengths, kernels, table, offset, sr)


def gammatone_dictionary(cfg: SpikegramConfig | None = None) -> GammatoneDictionary:
    """Unit-norm 4th-order gammatones at ERB-spaced centres plus their cross-correlation table (cached)."""
    cfg = cfg or SpikegramConfig()
    return _dictionary_cached(int(cfg.n_kernels), float(cfg.f_min), float(cfg.f_max), int(cfg.sr), float(cfg.kernel_ms))


def correlate_all(
    x: np.ndarray, d: GammatoneDictionary, n_positions: int | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """``C[k, t] = sum_s x[t + s] g_k[s]`` (x zero beyond its end) for t < n_positions.

    Overlap-save FFT with a fixed block so the kernels' spectra are computed once per dictionary;
    ``out`` (``[K, >= n_positions]``) receives the result in place when given.
    """
    import os

    from scipy import fft as sfft

    n = np.asarray(x).size if n_positions is None else int(n_positions)
    real = np.float64 if out is None else out.dtype
    x = np.asarray(x, dtype=real)
    K, L = d.kernels.shape
    nfft = max(4096, 1 << int(math.ceil(math.log2(4 * L))))
    hop = nfft - L + 1  # outputs per block that need no wrapped-around samples
    G = d.spectra(nfft, np.complex64 if real == np.float32 else np.complex128)
    n_blocks = -(-n // hop)
    padded = np.zeros(n_blocks * hop + L - 1, dtype=real)
    m = min(x.size, padded.size)
    padded[:m] = x[:m]
    # padded.size == (n_blocks - 1) * hop + nfft, so this gives exactly n_blocks frames
    frames = np.lib.stride_tricks.sliding_window_view(padded, nfft)[::hop]
    workers = max(1, min(4, os.cpu_count() or 1))
    X = sfft.rfft(frames, nfft, axis=1, workers=workers)  # [n_blocks, nfft/2+1]
    if out is None:
        out = np.empty((K, n), dtype=real)
    chunk = max(1, int(2**24 // (nfft * max(1, n_blocks))))  # temporaries of ~256 MB at most
    for k0 in range(0, K, chunk):
        k1 = min(K, k0 + chunk)
        y = sfft.irfft(X[None, :, :] * G[k0:k1, None, :], nfft, axis=2, workers=workers)[:, :, :hop]
        out[k0:k1, :n] = y.reshape(k1 - k0, -1)[:, :n]
    return out


# --------------------------------------------------------------------------- matching pursuit
# fast-math without 'ninf': lets LLVM vectorise the max scans while -inf padding keeps its meaning
_FASTMATH = {"nnan", "nsz", "arcp", "contract", "reassoc"}


@numba.njit(cache=True, nogil=True, inline="always")
def _max8(v):
    """Maximum of ``v`` (length a multiple of 8) with 8 independent chains (no serial dependency)."""
    m0 = v[0]
    m1 = v[1]
    m2 = v[2]
    m3 = v[3]
    m4 = v[4]
    m5 = v[5]
    m6 = v[6]
    m7 = v[7]
    for i in range(8, v.size, 8):
        m0 = max(m0, v[i])
        m1 = max(m1, v[i + 1])
        m2 = max(m2, v[i + 2])
        m3 = max(m3, v[i + 3])
        m4 = max(m4, v[i + 4])
        m5 = max(m5, v[i + 5])
        m6 = max(m6, v[i + 6])
        m7 = max(m7, v[i + 7])
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _mp_core(
    corr,
    lvl1,
    lvl2,
    row_len,
    n_valid,
    n_kernels,
    table,
    toff,
    lengths,
    max_atoms,
    energy,
    stop_energy,
    out_k,
    out_t,
    out_a,
):
    n = 0
    reason = 0
    n1 = lvl1.size
    n2 = lvl2.size  # padded with -inf to a multiple of 8
    while n < max_atoms:
        if energy <= stop_energy:
            reason = 1
            break
        # --- find the first maximum through the hierarchy
        m = _max8(lvl2)  # vectorisable max, then the first index holding it
        g = 0
        for i in range(n2):
            if lvl2[i] == m:
                g = i
                break
        if not m > 0.0:
            reason = 2
            break
        b = g * _B2
        for i in range(g * _B2, min((g + 1) * _B2, n1)):
            if lvl1[i] == m:
                b = i
                break
        idx = b * _B1
        for i in range(b * _B1, (b + 1) * _B1):
            if corr[i] == m:
                idx = i
                break
        k = idx // row_len
        t0 = idx - k * row_len
        a = m
        af = np.float64(m)
        out_k[n] = k
        out_t[n] = t0
        out_a[n] = af
        n += 1
        energy -= af * af
        lk = lengths[k]
        # --- update the correlations that overlap the atom and, in the same pass, the maxima
        # of the blocks they fall in (memory traffic dominates, so one pass over each block)
        for j in range(n_kernels):
            lj = lengths[j]
            lo = t0 - lj + 1
            if lo < 0:
                lo = 0
            hi = t0 + lk - 1
            if hi > n_valid - 1:
                hi = n_valid - 1
            base = j * row_len
            off = toff[k, j] + lj - 1 - t0 - base
            lo += base
            hi += base
            b0 = lo // _B1
            b1 = hi // _B1
            for bb in range(b0, b1 + 1):
                s = bb * _B1
                e = s + _B1
                u0 = lo if lo > s else s
                u1 = hi + 1 if hi + 1 < e else e
                # views indexed from 0 so LLVM can drop numba's negative-index wraparound and vectorise
                cu = corr[u0:u1]
                tu = table[off + u0 : off + u1]
                for i in range(u1 - u0):
                    cu[i] -= a * tu[i]
                lvl1[bb] = _max8(corr[s:e])
            for gg in range(b0 // _B2, b1 // _B2 + 1):
                s = gg * _B2
                e = min(s + _B2, n1)
                lvl2[gg] = _max8(lvl1[s:e])
    return n, energy, reason


def _check_wave(wave) -> np.ndarray:
    x = np.asarray(wave)
    if x.ndim != 1:
        raise AudioError(f"expected a mono 1-D waveform, got shape {x.shape}", "waveform")
    if x.size == 0:
        raise AudioError("empty waveform", "waveform")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise AudioError("waveform contains NaN/inf samples", "waveform")
    return x


def _pursue(x: np.ndarray, n: int, d: GammatoneDictionary, dtype, max_atoms: int, stop_energy: float):
    """One pursuit over ``x`` with onsets restricted to ``[0, n)`` (x may run on past n)."""
    K = d.n_kernels
    row_len = -(-n // _B1) * _B1
    total = -(-(K * row_len) // (_B1 * _B2)) * (_B1 * _B2)
    corr = np.empty(total, dtype=dtype)
    corr[K * row_len :] = -np.inf
    rows = corr[: K * row_len].reshape(K, row_len)
    rows[:, n:] = -np.inf
    correlate_all(x, d, n, out=rows)
    lvl1 = corr.reshape(-1, _B1).max(axis=1)
    top = lvl1.reshape(-1, _B2).max(axis=1)
    lvl2 = np.full(-(-top.size // 8) * 8, -np.inf, dtype=dtype)  # _max8 wants a multiple of 8
    lvl2[: top.size] = top
    out_k = np.zeros(max_atoms, dtype=np.int64)
    out_t = np.zeros(max_atoms, dtype=np.int64)
    out_a = np.zeros(max_atoms, dtype=np.float64)
    energy0 = float(np.dot(x, x))
    count, energy, reason = _mp_core(
        corr,
        lvl1,
        lvl2,
        row_len,
        n,
        K,
        d.table_as(dtype),
        d.table_offset,
        d.lengths,
        max_atoms,
        energy0,
        stop_energy,
        out_k,
        out_t,
        out_a,
    )
    if count == max_atoms and reason == 0 and energy <= stop_energy:
        reason = 1
    return out_k[:count], out_t[:count], out_a[:count], int(reason), float(energy)


def matching_pursuit(
    wave: np.ndarray,
    cfg: SpikegramConfig | None = None,
    *,
    max_atoms: int | None = None,
    residual_db: float | None = None,
    precision: str | None = None,
    progress=None,
) -> Atoms:
    """Non-negative matching pursuit of ``wave`` over the gammatone dictionary.

    Atom onsets lie in ``[0, len(wave))``; an atom may run past the end (the signal is zero there).
    Stops after ``max_atoms`` (default: the config's spikes_per_second x duration), once the
    residual energy is ``residual_db`` below the signal's, or when no positive correlation is left.
    ``precision`` ("float32"/"float64", default the config's) is the type of the correlation arrays;
    amplitudes and the energy bookkeeping are always float64.

    Clips longer than ``cfg.chunk_seconds`` are pursued chunk by chunk to bound memory: each chunk
    sees the real signal one kernel length beyond its end, and the tails of its atoms are removed
    from the residual before the next chunk starts, so the residual stays exact; only the greedy
    order across chunk borders differs from one global pursuit. The budget and the residual target
    apply per chunk, in proportion to its length / relative to its energy. ``progress(done, total,
    message)`` is called after each chunk.
    """
    cfg = cfg or SpikegramConfig()
    precision = cfg.precision if precision is None else precision
    if precision not in ("float32", "float64"):
        raise ConfigError(f"must be 'float32' or 'float64' (got {precision!r})", "spikegram.precision")
    dtype = np.dtype(precision)
    x = _check_wave(wave)
    d = gammatone_dictionary(cfg)
    n = x.size
    if max_atoms is None:
        max_atoms = int(math.ceil(cfg.spikes_per_second * n / cfg.sr))
    residual_db = cfg.residual_db if residual_db is None else residual_db
    factor = 10.0 ** (residual_db / 10.0)
    chunk = max(1, int(round(cfg.chunk_seconds * cfg.sr)))
    if n <= chunk:
        k, t, a, reason, energy = _pursue(x, n, d, dtype, max_atoms, float(np.dot(x, x)) * factor)
        if progress is not None:
            progress(1, 1, f"matching pursuit: {k.size} atoms")
        return Atoms(k.copy(), t.copy(), a.copy(), _STOP_NAMES[reason], max(0.0, energy))
    L = d.kernels.shape[1]
    resid = np.concatenate([x, np.zeros(L)])
    parts, reasons = [], set()
    done = 0
    n_chunks = -(-n // chunk)
    for ci, c0 in enumerate(range(0, n, chunk)):
        c1 = min(n, c0 + chunk)
        budget = int(math.ceil(max_atoms * c1 / n)) - done
        seg = resid[c0 : c1 + L]
        if budget <= 0:
            reasons.add(0)
        else:
            k, t, a, reason, _ = _pursue(seg, c1 - c0, d, dtype, budget, float(np.dot(seg, seg)) * factor)
            reasons.add(reason)
            _add_atoms(seg, d.kernels, d.lengths, k, t, -a)  # seg is a view: updates the global residual
            parts.append((k, t + c0, a))
            done += k.size
        if progress is not None:
            progress(ci + 1, n_chunks, f"matching pursuit: chunk {ci + 1}/{n_chunks}, {done} atoms")
    reason = 0 if 0 in reasons else (2 if 2 in reasons else 1)
    cat = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0) for i in range(3)]
    return Atoms(
        cat[0].astype(np.int64),
        cat[1].astype(np.int64),
        cat[2].astype(np.float64),
        _STOP_NAMES[reason],
        float(np.dot(resid, resid)),
    )


@numba.njit(cache=True, nogil=True)
def _add_atoms(out, kernels, lengths, k, t, a):
    for i in range(k.size):
        kk = k[i]
        t0 = t[i]
        for s in range(lengths[kk]):
            out[t0 + s] += a[i] * kernels[kk, s]


def reconstruct(atoms: Atoms, cfg: SpikegramConfig | None, n_samples: int) -> np.ndarray:
    """``sum_i a_i g_{k_i}(t - t_i)`` cut to ``n_samples`` (float64)."""
    d = gammatone_dictionary(cfg or SpikegramConfig())
    if len(atoms) and (atoms.time.min() < 0 or atoms.kernel.min() < 0 or atoms.kernel.max() >= d.n_kernels):
        raise ValueError("atoms do not fit this dictionary")
    last = int(atoms.time.max()) if len(atoms) else 0
    out = np.zeros(max(n_samples, last + 1) + d.kernels.shape[1])
    _add_atoms(
        out,
        d.kernels,
        d.lengths,
        atoms.kernel.astype(np.int64),
        atoms.time.astype(np.int64),
        atoms.amplitude.astype(np.float64),
    )
    return out[:n_samples]


def snr_db(x: np.ndarray, approx: np.ndarray) -> float:
    """10 log10(|x|^2 / |x - approx|^2); inf for an exact match."""
    x = np.asarray(x, dtype=np.float64)
    err = float(np.sum((x - approx) ** 2))
    sig = float(np.sum(x**2))
    if err == 0.0:
        return float("inf")
    return 10.0 * math.log10(sig / err) if sig > 0 else float("-inf")


def atoms_to_spikes(atoms: Atoms, cfg: SpikegramConfig, n_samples: int) -> tuple[SpikeTrain, dict]:
    """Atoms -> spikes on afferent ``kernel * n_bins + bin`` (bin 0 = loudest) at round(onset / dt).

    Bins are ``dynamic_range_db / n_bins`` dB wide, counted down from the clip's largest atom; atoms
    below the range give no spike. Several atoms on one (afferent, step) make one spike.
    """
    sps = cfg.sr * cfg.dt_ms / 1000.0
    n_steps = max(1, int(math.ceil(n_samples / sps)))
    info = {"n_merged": 0, "n_below_range": 0}
    if len(atoms) == 0:
        return SpikeTrain(np.zeros(0), np.zeros(0), cfg.n_units, n_steps, cfg.dt_ms), info
    a = atoms.amplitude
    below_db = 20.0 * np.log10(a.max() / a)  # >= 0
    bins = np.floor(below_db / (cfg.dynamic_range_db / cfg.n_bins)).astype(np.int64)
    keep = bins < cfg.n_bins
    info["n_below_range"] = int((~keep).sum())
    units = atoms.kernel[keep] * cfg.n_bins + bins[keep]
    steps = np.minimum(np.floor(atoms.time[keep] / sps + 0.5).astype(np.int64), n_steps - 1)
    key = np.unique(steps * cfg.n_units + units)
    info["n_merged"] = int(units.size - key.size)
    return SpikeTrain(key // cfg.n_units, key % cfg.n_units, cfg.n_units, n_steps, cfg.dt_ms), info


def encode_spikegram(
    wave: np.ndarray, cfg: SpikegramConfig | None = None, progress=None
) -> tuple[SpikeTrain, SpikegramReport]:
    """Waveform (mono, at ``cfg.sr``) -> spike raster + report (atoms, SNR, merges, speed)."""
    cfg = cfg or SpikegramConfig()
    x = _check_wave(wave)
    t0 = time.perf_counter()
    atoms = matching_pursuit(x, cfg, progress=progress)
    train, info = atoms_to_spikes(atoms, cfg, x.size)
    # MP keeps |x|^2 = sum a^2 + |r|^2 over the zero-padded signal; the SNR over the clip itself
    # needs the reconstruction (cheap next to the pursuit, and timed with it).
    snr = snr_db(x, reconstruct(atoms, cfg, x.size)) if np.any(x) else float("nan")
    seconds = time.perf_counter() - t0
    audio_s = x.size / cfg.sr
    return train, SpikegramReport(
        n_atoms=len(atoms),
        n_spikes=train.n_spikes,
        n_merged=info["n_merged"],
        n_below_range=info["n_below_range"],
        snr_db=float(snr),
        stop_reason=atoms.stop_reason,
        audio_seconds=audio_s,
        seconds=seconds,
        realtime_factor=audio_s / seconds if seconds > 0 else float("inf"),
    )
