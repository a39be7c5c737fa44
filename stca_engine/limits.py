"""Operator-configurable limits (SPEC §10): upload size, clip/stream duration, encoding chunk length.

A shared classroom server must not be brought down by one 2 GB upload or a one-hour recording, so
the app checks every upload and clip against these limits before decoding or encoding it. Each limit
is read from the environment on every call (an operator can change it without a code edit; tests can
set it with ``monkeypatch``) and falls back to a default; a malformed value is a ``ConfigError``
naming the variable, never a silent default.

=========================  =======  =====================================================
variable                   default  meaning
=========================  =======  =====================================================
``STCA_MAX_UPLOAD_MB``     50       largest upload (audio or model) the app accepts, MiB
``STCA_MAX_AUDIO_SECONDS`` 600      longest clip / stream the app decodes and encodes, s
``STCA_CHUNK_SECONDS``     30       long recordings are encoded in pieces this long, s
``STCA_MAX_MODEL_MB``      256      largest model weights (declared by its config) loaded, MiB
``STCA_MAX_RUN_MB``        2048     largest estimated memory of one training run, MiB
``STCA_MAX_ARCHIVE_MB``    1024     largest total unpacked size of one uploaded .zip of sounds, MiB
``STCA_MAX_ARCHIVE_FILES`` 2000     most sound files one uploaded .zip may hold
=========================  =======  =====================================================
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .errors import AudioError, ConfigError

DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_MAX_AUDIO_SECONDS = 600.0
DEFAULT_CHUNK_SECONDS = 30.0
DEFAULT_MAX_MODEL_MB = 256.0
DEFAULT_MAX_RUN_MB = 2048.0
DEFAULT_MAX_ARCHIVE_MB = 1024.0
DEFAULT_MAX_ARCHIVE_FILES = 2000
MIN_CHUNK_SECONDS = 1.0  # shorter pieces would cut most gammatone atoms (up to ~25 ms) at the seams

ENV_MAX_UPLOAD_MB = "STCA_MAX_UPLOAD_MB"
ENV_MAX_AUDIO_SECONDS = "STCA_MAX_AUDIO_SECONDS"
ENV_CHUNK_SECONDS = "STCA_CHUNK_SECONDS"
ENV_MAX_MODEL_MB = "STCA_MAX_MODEL_MB"
ENV_MAX_RUN_MB = "STCA_MAX_RUN_MB"
ENV_MAX_ARCHIVE_MB = "STCA_MAX_ARCHIVE_MB"
ENV_MAX_ARCHIVE_FILES = "STCA_MAX_ARCHIVE_FILES"

__all__ = [
    "DEFAULT_MAX_UPLOAD_MB",
    "DEFAULT_MAX_AUDIO_SECONDS",
    "DEFAULT_CHUNK_SECONDS",
    "MIN_CHUNK_SECONDS",
    "ENV_MAX_UPLOAD_MB",
    "ENV_MAX_AUDIO_SECONDS",
    "ENV_CHUNK_SECONDS",
    "DEFAULT_MAX_MODEL_MB",
    "ENV_MAX_MODEL_MB",
    "max_model_mb",
    "max_model_bytes",
    "DEFAULT_MAX_RUN_MB",
    "ENV_MAX_RUN_MB",
    "max_run_mb",
    "DEFAULT_MAX_ARCHIVE_MB",
    "DEFAULT_MAX_ARCHIVE_FILES",
    "ENV_MAX_ARCHIVE_MB",
    "ENV_MAX_ARCHIVE_FILES",
    "max_archive_mb",
    "max_archive_files",
    "Limits",
    "current_limits",
    "max_upload_mb",
    "max_upload_bytes",
    "max_audio_seconds",
    "chunk_seconds",
    "check_upload_size",
    "check_duration",
    "chunk_spans",
]


def _positive_env(name: str, default: float, minimum: float = 0.0) -> float:
    """``float(os.environ[name])`` if set (must be finite and > minimum), else ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"must be a number, got {raw!r}", name) from None
    if not math.isfinite(value) or value <= 0 or value < minimum:
        floor = f"at least {minimum:g}" if minimum > 0 else "> 0"
        raise ConfigError(f"must be a finite number {floor}, got {raw!r}", name)
    return value


def max_upload_mb() -> float:
    """Largest accepted upload in MiB (``STCA_MAX_UPLOAD_MB``, default 50)."""
    return _positive_env(ENV_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_MB)


def max_upload_bytes() -> int:
    return int(max_upload_mb() * 1024 * 1024)


def max_audio_seconds() -> float:
    """Longest clip or stream the app decodes (``STCA_MAX_AUDIO_SECONDS``, default 600 s)."""
    return _positive_env(ENV_MAX_AUDIO_SECONDS, DEFAULT_MAX_AUDIO_SECONDS)


def chunk_seconds() -> float:
    """Piece length for encoding long recordings (``STCA_CHUNK_SECONDS``, default 30 s, minimum 1 s)."""
    return _positive_env(ENV_CHUNK_SECONDS, DEFAULT_CHUNK_SECONDS, MIN_CHUNK_SECONDS)


def max_model_mb() -> float:
    """Largest model (weight data its config.json declares) that is loaded, in MiB
    (``STCA_MAX_MODEL_MB``, default 256); checked before any weights are read or unpacked."""
    return _positive_env(ENV_MAX_MODEL_MB, DEFAULT_MAX_MODEL_MB)


def max_model_bytes() -> int:
    return int(max_model_mb() * 1024 * 1024)


def max_run_mb() -> float:
    """Largest estimated memory of one training run in MiB (``STCA_MAX_RUN_MB``, default 2048); see
    ``stca_engine.memory``: checked by ``stca train`` and the Train page before training starts."""
    return _positive_env(ENV_MAX_RUN_MB, DEFAULT_MAX_RUN_MB)


def max_archive_mb() -> float:
    """Largest total unpacked size of one uploaded ``.zip`` of sounds in MiB (``STCA_MAX_ARCHIVE_MB``, default
    1024); members are unpacked one at a time to disk, each within ``STCA_MAX_UPLOAD_MB``."""
    return _positive_env(ENV_MAX_ARCHIVE_MB, DEFAULT_MAX_ARCHIVE_MB)


def max_archive_files() -> int:
    """Most sound files one uploaded ``.zip`` may hold (``STCA_MAX_ARCHIVE_FILES``, default 2000)."""
    return int(_positive_env(ENV_MAX_ARCHIVE_FILES, DEFAULT_MAX_ARCHIVE_FILES, 1.0))


@dataclass(frozen=True)
class Limits:
    """A snapshot of all limits (what the app shows in its sidebar and passes down)."""

    max_upload_mb: float
    max_audio_seconds: float
    chunk_seconds: float

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def current_limits() -> Limits:
    return Limits(max_upload_mb(), max_audio_seconds(), chunk_seconds())


def check_upload_size(n_bytes: int, filename: str, limit_mb: float | None = None) -> None:
    """AudioError naming the upload when it is empty or larger than the cap (checked before decoding)."""
    limit_mb = max_upload_mb() if limit_mb is None else float(limit_mb)
    if n_bytes <= 0:
        raise AudioError("empty upload (0 bytes)", filename)
    if n_bytes > limit_mb * 1024 * 1024:
        raise AudioError(
            f"upload too large: {n_bytes / 2**20:.1f} MB (the limit is {limit_mb:g} MB, set by {ENV_MAX_UPLOAD_MB})",
            filename,
        )


def check_duration(seconds: float, name: str, limit_s: float | None = None) -> None:
    """AudioError naming the clip when it is longer than the app's duration limit."""
    limit_s = max_audio_seconds() if limit_s is None else float(limit_s)
    if seconds > limit_s:
        raise AudioError(
            f"too long: {seconds:.2f} s (the limit is {limit_s:g} s, set by {ENV_MAX_AUDIO_SECONDS})", name
        )


def chunk_spans(n_samples: int, sr: int, chunk_s: float | None = None, overlap_s: float = 0.0) -> list[tuple[int, int]]:
    """Sample spans ``[(start, stop), ...]`` covering ``range(n_samples)`` in pieces of ``chunk_s``.

    Consecutive spans overlap by ``overlap_s`` (so an encoder can drop atoms that straddle a seam and
    take them from the neighbour); the union is exactly ``[0, n_samples)`` and every span is at most
    ``chunk_s + overlap_s`` long, which bounds the memory a long recording needs while being encoded.
    """
    chunk_s = chunk_seconds() if chunk_s is None else float(chunk_s)
    if not (math.isfinite(chunk_s) and chunk_s > 0):
        raise ConfigError(f"chunk length must be > 0 s, got {chunk_s!r}", "chunk_spans")
    if overlap_s < 0 or overlap_s >= chunk_s:
        raise ConfigError(
            f"overlap ({overlap_s} s) must be >= 0 and shorter than the chunk ({chunk_s} s)", "chunk_spans"
        )
    if n_samples <= 0:
        return []
    step = max(1, int(round(chunk_s * sr)))
    pad = int(round(overlap_s * sr))
    return [(max(0, a - pad), min(n_samples, a + step)) for a in range(0, n_samples, step)]
