"""New takes of a training clip: the same sound a little faster or slower, brighter or darker, noisier.

A few hundred training clips are memorised spike for spike (docs/RESULTS.md, "Real sound"); changing the
spike raster after encoding (``augment.py``) moves spikes but never makes the atoms another recording
would make. Changing the sound before the encoder does: a take is played back at a rate a few per cent
off (pitch and tempo move together, as between two takes or two speakers), tilted in spectrum, and
given background noise at a random SNR; the encoder then finds the atoms of that sound. Every take is
a pure function of the clip's bytes and its number, so takes are cached like clips and runs repeat.
"""

from __future__ import annotations

import numpy as np

RATE_RANGE = 0.08  # playback rate in 1 ± this (about ±1.3 semitones)
TILT_DB = 6.0  # high band (above ~1 kHz) raised or lowered by up to this
SNR_DB = (15.0, 35.0)  # added noise, against the take's own RMS


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of 1/f noise, unit RMS (white noise shaped in the frequency domain)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _one_pole_lowpass(x: np.ndarray, sr: int, fc: float) -> np.ndarray:
    from scipy.signal import lfilter

    a = np.exp(-2.0 * np.pi * fc / sr)
    return lfilter([1.0 - a], [1.0, -a], x)


def make_take(wave: np.ndarray, sr: int, seed) -> np.ndarray:
    """A new take of ``wave`` (mono, peak 1), peak-normalised; ``seed`` (int or sequence) fixes it."""
    rng = np.random.default_rng(seed)
    x = np.asarray(wave, dtype=np.float64)
    rate = 1.0 + rng.uniform(-RATE_RANGE, RATE_RANGE)
    n_out = max(2, int(round(x.size / rate)))
    x = np.interp(np.arange(n_out) * rate, np.arange(x.size), x)
    low = _one_pole_lowpass(x, sr, 1000.0)
    x = low + (x - low) * 10 ** (rng.uniform(-TILT_DB, TILT_DB) / 20.0)
    rms = np.sqrt(np.mean(x**2))
    if rms > 0:
        x = x + pink_noise(x.size, rng) * rms * 10 ** (-rng.uniform(*SNR_DB) / 20.0)
    peak = np.max(np.abs(x))
    return (x / peak if peak > 0 else x).astype(np.float32)
