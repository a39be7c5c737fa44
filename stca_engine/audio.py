"""Any audio file, upload or RWCP raw file -> mono float32 at 16 kHz, peak-normalised to 1.

Everything downstream (encoders, caches, streams) assumes exactly this form, so every check that a
clip is usable happens here and fails with an :class:`~stca_engine.errors.AudioError` that names the
file and the problem.
"""
from __future__ import annotations

import io
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import AudioError

TARGET_SR = 16000
MIN_SECONDS = 0.05  # shorter clips cannot carry even one low-frequency gammatone atom
SILENCE_PEAK = 1e-4  # -80 dBFS: below this a clip is treated as silent (int16 dither is ~3e-5)

__all__ = [
    "TARGET_SR",
    "MIN_SECONDS",
    "SILENCE_PEAK",
    "load_audio",
    "load_audio_bytes",
    "read_raw_pcm16",
    "detect_pcm16_byteorder",
    "finish_wave",
]


def _decode_soundfile(src, name: str, max_seconds: float | None):
    """Decode with libsndfile (wav, flac, ogg, mp3, aiff, ...); None if libsndfile cannot read it."""
    import soundfile as sf

    try:
        info = sf.info(src)
        if isinstance(src, io.BytesIO):
            src.seek(0)
    except Exception:  # libsndfile raises several types for "not audio"
        if isinstance(src, io.BytesIO):
            src.seek(0)
        return None
    if info.samplerate <= 0:
        raise AudioError(f"invalid sample rate {info.samplerate}", name)
    if max_seconds is not None and info.frames > 0 and info.frames / info.samplerate > max_seconds:
        raise AudioError(
            f"too long: {info.frames / info.samplerate:.2f} s (the limit is {max_seconds:g} s)", name)
    try:
        data, rate = sf.read(src, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"cannot decode audio data ({type(exc).__name__}: {exc})", name) from None
    return data, int(rate)


def _decode_fallback(path: str, name: str):
    """librosa/audioread for formats libsndfile lacks (needs ffmpeg/gstreamer for most of them)."""
    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
    except Exception as exc:
        raise AudioError(
            f"not a readable audio file (neither libsndfile nor audioread could decode it: {type(exc).__name__})",
            name) from None
    data = np.asarray(data, dtype=np.float32)
    data = data[:, None] if data.ndim == 1 else data.T  # librosa is channels-first
    return data, int(rate)


def finish_wave(data: np.ndarray, sr_in: int, name: str, *, sr: int = TARGET_SR,
                max_seconds: float | None = None, min_seconds: float = MIN_SECONDS,
                silence_peak: float = SILENCE_PEAK) -> np.ndarray:
    """Checks + mono + resample + peak-normalise; ``data`` is ``[frames]`` or ``[frames, channels]``."""
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise AudioError(f"expected [frames, channels] audio, got shape {data.shape}", name)
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError("contains no audio samples (empty)", name)
    if sr_in <= 0:
        raise AudioError(f"invalid sample rate {sr_in}", name)
    seconds = data.shape[0] / sr_in
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"too long: {seconds:.2f} s (the limit is {max_seconds:g} s)", name)
    if seconds < min_seconds:
        raise AudioError(f"too short: {seconds * 1000:.1f} ms (the minimum is {min_seconds * 1000:g} ms)", name)
    data = data.astype(np.float64, copy=False)
    bad = ~np.isfinite(data)
    if bad.any():
        raise AudioError(f"contains {int(bad.sum())} NaN/inf samples", name)
    mono = data.mean(axis=1)
    peak = float(np.max(np.abs(mono)))
    if peak < silence_peak:
        raise AudioError(f"silent (peak {peak:.2e} is below {silence_peak:.0e})", name)
    if sr_in != sr:
        import soxr

        mono = soxr.resample(mono, sr_in, sr, quality="HQ")
        if mono.size == 0:
            raise AudioError("contains no audio samples after resampling (empty)", name)
    out = (mono / np.max(np.abs(mono))).astype(np.float32)
    return out


def load_audio(path: str | os.PathLike, sr: int = TARGET_SR, max_seconds: float | None = None, *,
               min_seconds: float = MIN_SECONDS, silence_peak: float = SILENCE_PEAK) -> np.ndarray:
    """Read wav/flac/ogg/mp3/... as mono float32 at ``sr`` Hz with peak 1 (raises AudioError)."""
    name = str(path)
    p = Path(path)
    if not p.exists():
        raise AudioError("file not found", name)
    if not p.is_file():
        raise AudioError("not a file", name)
    if p.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)", name)
    if not os.access(p, os.R_OK):
        raise AudioError("cannot read file (permission denied)", name)
    decoded = _decode_soundfile(name, name, max_seconds)
    if decoded is None:
        decoded = _decode_fallback(name, name)
    data, rate = decoded
    return finish_wave(data, rate, name, sr=sr, max_seconds=max_seconds, min_seconds=min_seconds,
                       silence_peak=silence_peak)


def load_audio_bytes(data: bytes, filename: str, sr: int = TARGET_SR, max_seconds: float | None = None, *,
                     min_seconds: float = MIN_SECONDS, silence_peak: float = SILENCE_PEAK) -> np.ndarray:
    """Like :func:`load_audio` for an upload's bytes; ``filename`` names it in errors and picks the decoder."""
    if not data:
        raise AudioError("empty upload (0 bytes)", filename)
    decoded = _decode_soundfile(io.BytesIO(data), filename, max_seconds)
    if decoded is None:
        suffix = Path(filename).suffix[:16] or ".bin"
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="stca_upload_")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            decoded = _decode_fallback(tmp, filename)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    wave, rate = decoded
    return finish_wave(wave, rate, filename, sr=sr, max_seconds=max_seconds, min_seconds=min_seconds,
                       silence_peak=silence_peak)


def _byteorder_score(x: np.ndarray) -> tuple[float, float]:
    """(difference-energy ratio, mean |x| / full scale); both are ~2 and ~0.5 for byte-swapped audio."""
    x = x.astype(np.float64)
    energy = float(np.dot(x, x))
    if energy == 0.0:
        return 0.0, 0.0
    d = np.diff(x)
    return float(np.dot(d, d)) / energy, float(np.mean(np.abs(x))) / 32768.0


def detect_pcm16_byteorder(raw: bytes) -> tuple[str, float]:
    """Guess the byte order of headerless 16-bit PCM: ("little"|"big", confidence in [0, 1]).

    Read in the wrong order, natural sound turns into near full-scale white noise: the energy of the
    sample-to-sample difference is about twice the signal energy (far less for real sound, whose
    energy sits well below Nyquist) and the mean magnitude is about half of full scale (real
    recordings sit far lower; even faint room noise, which is white, stays a few LSBs). Each reading
    is scored by log(difference ratio) + log(mean magnitude); the lower score wins. Confidence is
    1 - exp(-score gap), ~1 for any real recording.
    """
    n = len(raw) // 2
    scores = []
    for dtype in ("<i2", ">i2"):
        d, m = _byteorder_score(np.frombuffer(raw[: 2 * n], dtype=dtype))
        scores.append(math.log(d + 1e-12) + math.log(m + 1e-12))
    order = "little" if scores[0] <= scores[1] else "big"
    return order, float(1.0 - math.exp(-abs(scores[0] - scores[1])))


def read_raw_pcm16(path: str | os.PathLike, byteorder: str = "auto", sr_in: int = 48000, *,
                   sr: int = TARGET_SR, max_seconds: float | None = None, min_seconds: float = MIN_SECONDS,
                   silence_peak: float = SILENCE_PEAK, return_byteorder: bool = False):
    """Headerless mono 16-bit PCM (RWCP ``.raw``) -> mono float32 at ``sr`` with peak 1.

    ``byteorder="auto"`` detects it per file (see :func:`detect_pcm16_byteorder`). With
    ``return_byteorder=True`` returns ``(wave, byteorder_used)`` so a loader can spot mixed orders.
    """
    name = str(path)
    if byteorder not in ("auto", "little", "big"):
        raise AudioError(f"byteorder must be 'auto', 'little' or 'big', not {byteorder!r}", name)
    p = Path(path)
    if not p.exists():
        raise AudioError("file not found", name)
    if not p.is_file():
        raise AudioError("not a file", name)
    size = p.stat().st_size
    if size == 0:
        raise AudioError("empty file (0 bytes)", name)
    if size % 2:
        raise AudioError(f"odd number of bytes ({size}); not 16-bit PCM", name)
    if max_seconds is not None and size / 2 / sr_in > max_seconds:
        raise AudioError(f"too long: {size / 2 / sr_in:.2f} s (the limit is {max_seconds:g} s)", name)
    raw = p.read_bytes()
    order = detect_pcm16_byteorder(raw)[0] if byteorder == "auto" else byteorder
    pcm = np.frombuffer(raw, dtype="<i2" if order == "little" else ">i2").astype(np.float32) / 32768.0
    wave = finish_wave(pcm, sr_in, name, sr=sr, max_seconds=max_seconds, min_seconds=min_seconds,
                       silence_peak=silence_peak)
    return (wave, order) if return_byteorder else wave
