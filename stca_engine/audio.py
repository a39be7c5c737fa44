"""Any audio file, upload or RWCP raw file -> mono float32 at 16 kHz, peak-normalised to 1.

Everything downstream (encoders, caches, streams) assumes exactly this form, so every check that a
clip is usable happens here and fails with an :class:`~stca_engine.errors.AudioError` that names the
file and the problem.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tempfile
import warnings
from collections.abc import Callable
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
    "AudioWarning",
    "wav_truncation",
    "truncation_warning",
]


class AudioWarning(UserWarning):
    """A clip that is usable but not what its file promised (e.g. a truncated WAV)."""


WAV_HEAD_BYTES = 1 << 16  # the chunks before "data" (fmt, LIST, ...) are far smaller


def wav_truncation(head: bytes, file_size: int) -> tuple[float, float] | None:
    """``(declared seconds, present seconds)`` when a RIFF/WAVE file's ``data`` chunk declares more
    bytes than the file holds (a cut download or copy); None for a complete file, a non-WAV file or a
    header that does not say (streaming writers put 0 or 0xFFFFFFFF there). ``head`` is the file's
    first bytes (``WAV_HEAD_BYTES`` are enough), ``file_size`` its full size."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, None
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if cid == b"fmt " and pos + 16 <= len(head):
            byte_rate = struct.unpack("<I", head[pos + 16 : pos + 20])[0] if pos + 20 <= len(head) else None
        elif cid == b"data":
            if not byte_rate or size in (0, 0xFFFFFFFF):
                return None
            present = max(0, file_size - (pos + 8))
            if size <= present:
                return None
            return size / byte_rate, present / byte_rate
        pos += 8 + size + (size & 1)
    return None


def truncation_warning(src, name: str) -> str | None:
    """The warning for a truncated WAV (a path or the upload's bytes), naming how much is missing;
    None when nothing is missing. Reads only the first ``WAV_HEAD_BYTES`` of a file."""
    try:
        if isinstance(src, (bytes, bytearray, memoryview)):
            head, size = bytes(src[:WAV_HEAD_BYTES]), len(src)
        else:
            with open(src, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                head = f.read(WAV_HEAD_BYTES)
    except OSError:
        return None
    cut = wav_truncation(head, size)
    if cut is None:
        return None
    declared, present = cut
    return (
        f"{name}: truncated: the header declares {declared:.2f} s of audio but only {present:.2f} s are "
        f"present ({declared - present:.2f} s missing); using what is there"
    )


def _warn(message: str | None, warn: Callable[[str], None] | None) -> None:
    if message is None:
        return
    if warn is not None:
        warn(message)
    else:
        warnings.warn(message, AudioWarning, stacklevel=3)


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
        raise AudioError(f"too long: {info.frames / info.samplerate:.2f} s (the limit is {max_seconds:g} s)", name)
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
            f"not a readable audio file (neither libsndfile nor audioread could decode it: {type(exc).__name__})", name
        ) from None
    data = np.asarray(data, dtype=np.float32)
    data = data[:, None] if data.ndim == 1 else data.T  # librosa is channels-first
    return data, int(rate)


def finish_wave(
    data: np.ndarray,
    sr_in: int,
    name: str,
    *,
    sr: int = TARGET_SR,
    max_seconds: float | None = None,
    min_seconds: float = MIN_SECONDS,
    silence_peak: float = SILENCE_PEAK,
) -> np.ndarray:
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


def load_audio(
    path: str | os.PathLike,
    sr: int = TARGET_SR,
    max_seconds: float | None = None,
    *,
    min_seconds: float = MIN_SECONDS,
    silence_peak: float = SILENCE_PEAK,
    warn: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Read wav/flac/ogg/mp3/... as mono float32 at ``sr`` Hz with peak 1 (raises AudioError).

    A usable but truncated WAV is read as far as it goes and reported through ``warn(message)``
    (default: ``warnings.warn(message, AudioWarning)``)."""
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
    wave = finish_wave(
        data, rate, name, sr=sr, max_seconds=max_seconds, min_seconds=min_seconds, silence_peak=silence_peak
    )
    _warn(truncation_warning(name, name), warn)
    return wave


def load_audio_bytes(
    data: bytes,
    filename: str,
    sr: int = TARGET_SR,
    max_seconds: float | None = None,
    *,
    min_seconds: float = MIN_SECONDS,
    silence_peak: float = SILENCE_PEAK,
    warn: Callable[[str], None] | None = None,
) -> np.ndarray:
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
    wave = finish_wave(
        wave, rate, filename, sr=sr, max_seconds=max_seconds, min_seconds=min_seconds, silence_peak=silence_peak
    )
    _warn(truncation_warning(data, filename), warn)
    return wave


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


def read_raw_pcm16(
    path: str | os.PathLike,
    byteorder: str = "auto",
    sr_in: int = 48000,
    *,
    sr: int = TARGET_SR,
    max_seconds: float | None = None,
    min_seconds: float = MIN_SECONDS,
    silence_peak: float = SILENCE_PEAK,
    return_byteorder: bool = False,
):
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
    wave = finish_wave(
        pcm, sr_in, name, sr=sr, max_seconds=max_seconds, min_seconds=min_seconds, silence_peak=silence_peak
    )
    return (wave, order) if return_byteorder else wave
