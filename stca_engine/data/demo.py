"""The built-in demo sound set: ten clearly different synthetic event classes.

It makes every feature work on a fresh machine with no download. Clips are synthesised
deterministically (each clip from its own seed, so the bytes do not depend on generation order)
with natural variation in pitch, length, loudness and a little noise, and written in the RWCP
layout (``nospeech/drysrc/demo/<class>/48khz/NNN.raw``, 48 kHz mono int16 little-endian) so the
RWCP loader reads them like the real dataset. The files are generated on demand (``ensure_demo``,
a few seconds) and not committed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from scipy import signal

from ..atomic import write_atomic

SR = 48000
GENERATOR_VERSION = 2
SEED = 20190810  # IJCAI-19
CLASSES = ["bells", "whistle", "horn", "ring", "clicks", "noise", "chirp_up", "chirp_down", "buzzer", "knock"]
CLIPS_PER_CLASS = 40
MIN_S, MAX_S = 0.2, 0.6
REPO_DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo"
MANIFEST = "MANIFEST.json"


def demo_dir() -> Path:
    """``$STCA_DEMO_DIR`` when set, else the repo's ``assets/demo``."""
    env = os.environ.get("STCA_DEMO_DIR")
    return Path(env).expanduser() if env else REPO_DEMO_DIR


def class_dir(root: Path, cls: str) -> Path:
    return root / "nospeech" / "drysrc" / "demo" / cls / "48khz"


def _env(n: int, attack_s: float, release_s: float) -> np.ndarray:
    """Raised-cosine attack and release so no clip starts or ends with a click."""
    e = np.ones(n)
    a, r = max(1, int(attack_s * SR)), max(1, int(release_s * SR))
    a, r = min(a, n // 2), min(r, n // 2)
    e[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    e[n - r :] = (0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r))[::-1]
    return e


def _bandnoise(rng, n, lo, hi):
    sos = signal.butter(4, [lo, hi], btype="bandpass", fs=SR, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


def _odd_harmonics(f0: float, t: np.ndarray, f_top: float = 8000.0) -> np.ndarray:
    """Band-limited square wave: sum of sin(k w t) / k over odd k with k f0 < f_top, using the
    recurrence sin((k+2)x) = 2 cos(2x) sin(kx) - sin((k-2)x) instead of one sin() per harmonic."""
    x = 2 * np.pi * f0 * t
    c2 = 2 * np.cos(2 * x)
    prev, cur = -np.sin(x), np.sin(x)  # sin(-x), sin(x)
    out = np.zeros_like(t)
    k = 1
    while k * f0 < f_top:
        out += cur / k
        prev, cur = cur, c2 * cur - prev
        k += 2
    return out


def _synth(cls: str, rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    p = 2 ** rng.uniform(-0.2, 0.2)  # +-0.2 octave pitch variation
    if cls == "bells":
        f0 = 700.0 * p
        x = np.zeros(n)
        for ratio, amp in zip((1.0, 2.76, 5.40, 8.93), (1.0, 0.6, 0.4, 0.25)):
            tau = rng.uniform(0.08, 0.2) / ratio**0.5
            x += amp * np.exp(-t / tau) * np.sin(2 * np.pi * f0 * ratio * t + rng.uniform(0, 2 * np.pi))
        return x * _env(n, 0.002, 0.01)
    if cls == "whistle":
        f = 2400.0 * p * (1 + rng.uniform(0.015, 0.03) * np.sin(2 * np.pi * rng.uniform(5, 7) * t))
        x = np.sin(2 * np.pi * np.cumsum(f) / SR) + 0.05 * _bandnoise(rng, n, 1500, 4000)
        return x * _env(n, 0.02, 0.03)
    if cls == "horn":
        f0 = 240.0 * p
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 13) if f0 * k < 7500)
        return x * _env(n, 0.03, 0.04)
    if cls == "ring":
        f1 = 1150.0 * p
        gate = (np.sin(2 * np.pi * rng.uniform(16, 25) * t) > 0).astype(float)
        gate = np.convolve(gate, np.ones(48) / 48, mode="same")  # 1 ms smoothing
        x = (np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * 1.25 * f1 * t)) * gate
        return x * _env(n, 0.005, 0.01)
    if cls == "clicks":
        x = np.zeros(n)
        pos = int(rng.uniform(0.005, 0.02) * SR)
        m = int(0.003 * SR)
        sos = signal.butter(4, [2500 * p, min(9000 * p, 20000)], btype="bandpass", fs=SR, output="sos")
        decay = np.exp(-np.arange(m) / (0.0006 * SR))
        while pos + m < n:
            x[pos : pos + m] += signal.sosfilt(sos, rng.standard_normal(m)) * decay * rng.uniform(0.6, 1.0)
            pos += int(rng.uniform(0.02, 0.06) * SR)
        return x
    if cls == "noise":
        x = _bandnoise(rng, n, 500 * p, 6000 * p)
        return x * _env(n, 0.01, 0.02) * np.exp(-t / rng.uniform(0.15, 0.4))
    if cls in ("chirp_up", "chirp_down"):
        lo, hi = 500.0 * p, 3200.0 * p * 2 ** rng.uniform(-0.15, 0.15)
        f0, f1 = (lo, hi) if cls == "chirp_up" else (hi, lo)
        f = f0 * (f1 / f0) ** (t / t[-1])  # exponential sweep over the clip
        return np.sin(2 * np.pi * np.cumsum(f) / SR) * _env(n, 0.015, 0.015)
    if cls == "buzzer":
        return _odd_harmonics(120.0 * p, t) * _env(n, 0.004, 0.006)
    if cls == "knock":
        x = np.zeros(n)
        n_knocks = int(rng.integers(1, 4))
        spacing = rng.uniform(0.08, 0.15)
        for j in range(n_knocks):
            a = int((0.01 + j * spacing) * SR)
            if a >= n - 100:
                break
            tt = t[: n - a]
            k = np.exp(-tt / rng.uniform(0.015, 0.03)) * np.sin(2 * np.pi * 220 * p * tt) + 0.5 * np.exp(
                -tt / 0.01
            ) * np.sin(2 * np.pi * 750 * p * tt)
            k[: int(0.002 * SR)] += _bandnoise(rng, int(0.002 * SR), 300, 5000)
            x[a:] += k * rng.uniform(0.7, 1.0)
        return x
    raise ValueError(f"unknown demo class {cls!r}")


def synth_clip(class_index: int, clip_index: int) -> np.ndarray:
    """One demo clip as int16 samples at 48 kHz (deterministic for its indices)."""
    cls = CLASSES[class_index]
    rng = np.random.default_rng([SEED, GENERATOR_VERSION, class_index, clip_index])
    dur = MIN_S + (MAX_S - MIN_S) * rng.uniform() ** 2  # mostly short clips keep the set small
    n = int(dur * SR)
    lead, tail = int(rng.uniform(0.005, 0.02) * SR), int(rng.uniform(0.005, 0.02) * SR)
    body = _synth(cls, rng, n - lead - tail)
    body = body / np.max(np.abs(body))
    x = np.concatenate([np.zeros(lead), body, np.zeros(tail)])
    x = x + 10 ** (rng.uniform(-50, -40) / 20) * rng.standard_normal(n)  # room/mic noise floor
    x = x / np.max(np.abs(x)) * 0.9 * 10 ** (rng.uniform(-12, 0) / 20)  # loudness variation
    return np.round(x * 32767).astype("<i2")


def generate_demo(root: str | os.PathLike | None = None, progress=None) -> Path:
    """Write every demo clip and then the manifest (file names, sizes, sha256). Returns the root."""
    root = Path(root) if root is not None else demo_dir()
    files = {}
    total = len(CLASSES) * CLIPS_PER_CLASS
    for ci, cls in enumerate(CLASSES):
        for k in range(CLIPS_PER_CLASS):
            data = synth_clip(ci, k).tobytes()
            rel = class_dir(Path("."), cls) / f"{k:03d}.raw"
            write_atomic(root / rel, data)
            files[rel.as_posix()] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            if progress is not None:
                progress(ci * CLIPS_PER_CLASS + k + 1, total, f"demo {cls}")
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": SEED,
        "sr": SR,
        "classes": CLASSES,
        "clips_per_class": CLIPS_PER_CLASS,
        "files": files,
    }
    write_atomic(root / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return root


def demo_is_complete(root: str | os.PathLike | None = None) -> bool:
    """True when the manifest is current and every file it lists exists with its size."""
    root = Path(root) if root is not None else demo_dir()
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("generator_version") != GENERATOR_VERSION or manifest.get("classes") != CLASSES:
        return False
    files = manifest.get("files", {})
    if len(files) != len(CLASSES) * CLIPS_PER_CLASS:
        return False
    for rel, meta in files.items():
        try:
            if (root / rel).stat().st_size != meta["bytes"]:
                return False
        except OSError:
            return False
    return True


def ensure_demo(root: str | os.PathLike | None = None, progress=None) -> Path:
    """The demo root, generated first when missing, incomplete or from an older generator.

    When the repo's ``assets/`` is read-only (an installed package), the set goes to
    ``<cache dir>/demo`` instead."""
    explicit = root is not None or bool(os.environ.get("STCA_DEMO_DIR"))
    root = Path(root) if root is not None else demo_dir()
    if demo_is_complete(root):
        return root
    try:
        return generate_demo(root, progress)
    except PermissionError:
        if explicit:
            raise
        from .cache import default_cache_dir

        fallback = default_cache_dir() / "demo"
        return fallback if demo_is_complete(fallback) else generate_demo(fallback, progress)


def load_demo(seed: int = 0, classes="all", n_per_class: int = CLIPS_PER_CLASS, pick: str = "first"):
    """The demo set as a ClipSet (by default all classes, 20 train / 20 test clips each); ``classes``
    picks a subset as for RWCP (a list of names)."""
    from .rwcp import load_rwcp

    return load_rwcp(
        ensure_demo(),
        classes=classes,
        n_per_class=n_per_class,
        pick=pick,
        seed=seed,
        source="demo",
        check_byteorder=False,
    )
