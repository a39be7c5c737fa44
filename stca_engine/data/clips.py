"""Lazy references to sound clips and the clip sets the loaders return.

A clip is a (file, time span) pair that is only read when it is encoded, so a dataset of thousands
of clips costs nothing until it is used, and the on-disk cache can key on the file's content.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AudioError

KINDS = ("audio", "rwcp_raw")
RWCP_SR = 48000

_hash_lock = threading.Lock()
_file_hashes: dict[tuple, str] = {}
_wave_lock = threading.Lock()
_last_wave: dict[tuple[str, int, int, int, str], np.ndarray] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, memoised on (path, size, mtime) so long stems are hashed once."""
    p = str(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise AudioError(f"cannot read file ({exc.strerror or exc})", p) from None
    key = (p, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    with _hash_lock:
        hit = _file_hashes.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise AudioError(f"cannot read file ({exc.strerror or exc})", p) from None
    digest = h.hexdigest()
    with _hash_lock:
        if len(_file_hashes) > 100_000:
            _file_hashes.clear()
        _file_hashes[key] = digest
    return digest


def _kind_of_entry(mode: int) -> str:
    if stat_mod.S_ISDIR(mode):
        return "a folder"
    if stat_mod.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat_mod.S_ISSOCK(mode):
        return "a socket"
    if stat_mod.S_ISCHR(mode) or stat_mod.S_ISBLK(mode):
        return "a device file"
    return "not a plain file"


def header_seconds(path: str, kind: str = "audio") -> float | None:
    """A file's duration from its header alone (nothing decoded): RWCP raw = bytes / 2 / 48 kHz,
    other audio = ``soundfile.info`` frames / rate; None when libsndfile cannot read the header (the
    file is then judged when it is decoded)."""
    if kind == "rwcp_raw":
        return os.stat(path).st_size / 2 / RWCP_SR
    import soundfile as sf

    try:
        info = sf.info(path)
    except Exception:  # noqa: BLE001 - libsndfile raises several types for "not audio"
        return None
    return info.frames / info.samplerate if info.samplerate > 0 else None


def entry_problem(path: str | os.PathLike, kind: str = "audio", limit_s: float | None = None) -> str | None:
    """Why a file listed in a dataset folder cannot be used, judged from its directory entry and
    header only (nothing is decoded, a FIFO is never opened); None when it may be used.

    Dangling links, FIFOs, sockets, devices, folders, empty files, and files whose header declares
    more than ``limit_s`` seconds (default ``STCA_MAX_AUDIO_SECONDS``) are reasons to skip a file."""
    p = str(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            return "broken link (its target does not exist); not read"
        return "file not found (it went away while the folder was read)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}); not read"
    if not stat_mod.S_ISREG(st.st_mode):
        return f"not a regular file ({_kind_of_entry(st.st_mode)}); not read"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    seconds = header_seconds(p, kind)
    if seconds is not None:
        from ..errors import StcaError
        from ..limits import check_duration

        try:
            check_duration(seconds, p, limit_s)
        except StcaError as exc:
            return f"{exc.problem}; not read"
    return None


def _load_full(path: str, kind: str, sr: int) -> np.ndarray:
    """Whole file as mono float32 at ``sr``; the last file is kept so consecutive pieces of one
    long stem (MedleyDB) are decoded once."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise AudioError(
            "file not found" if isinstance(exc, FileNotFoundError) else f"cannot read file ({exc.strerror or exc})",
            path,
        ) from None
    key = (path, st.st_size, st.st_mtime_ns, sr, kind)
    with _wave_lock:
        hit = _last_wave.get(key)
    if hit is not None:
        return hit
    from .. import audio

    problem = entry_problem(path, kind)  # a dataset file may have changed since it was listed
    if problem is not None:
        raise AudioError(problem, path)
    if kind == "rwcp_raw":
        wave = audio.read_raw_pcm16(path, byteorder="auto", sr_in=RWCP_SR, sr=sr)
    else:
        wave = audio.load_audio(path, sr=sr)
    wave = np.asarray(wave, dtype=np.float32)
    with _wave_lock:
        _last_wave.clear()
        _last_wave[key] = wave
    return wave


@dataclass(frozen=True)
class AudioClip:
    """One sound event: a file (or a span of it) and its class.

    ``kind="rwcp_raw"`` is a headerless 16-bit mono 48 kHz RWCP file; ``"audio"`` is anything
    soundfile/librosa reads. ``group`` names where the clip came from (RWCP group, MedleyDB track),
    so splits can keep a group on one side. ``take > 0`` is a new take of the clip (``takes.make_take``:
    rate, spectral tilt and noise drawn from the clip's bytes and the take's number); 0 is the recording.
    """

    path: str
    class_name: str
    start_s: float = 0.0
    end_s: float | None = None
    kind: str = "audio"
    group: str = ""
    take: int = 0

    def __post_init__(self):
        object.__setattr__(self, "path", str(self.path))
        if self.kind not in KINDS:
            raise ValueError(f"AudioClip kind must be one of {KINDS}, got {self.kind!r}")
        if self.start_s < 0 or (self.end_s is not None and self.end_s <= self.start_s):
            raise ValueError(f"{self.path}: bad clip span {self.start_s}..{self.end_s} s")
        if isinstance(self.take, bool) or not isinstance(self.take, int) or self.take < 0:
            raise ValueError(f"{self.path}: take must be an int >= 0, got {self.take!r}")

    @property
    def name(self) -> str:
        base = Path(self.path).name
        if self.start_s or self.end_s is not None:
            end = "end" if self.end_s is None else f"{self.end_s:.2f}"
            base = f"{base}@{self.start_s:.2f}-{end}s"
        return f"{base}~take{self.take}" if self.take else base

    def content_key(self) -> str:
        """Stable key: sha256 over the file's bytes, its kind and the span (not the path, so a
        moved or copied dataset still hits the cache)."""
        end = "" if self.end_s is None else repr(round(float(self.end_s), 6))
        text = f"{file_sha256(self.path)}|{self.kind}|{round(float(self.start_s), 6)!r}|{end}"
        if self.take:
            text += f"|take{self.take}"
        return hashlib.sha256(text.encode()).hexdigest()

    def load(self, sr: int = 16000) -> np.ndarray:
        """Mono float32 at ``sr``, peak-normalised to 1 (the span alone, when one is set).

        Raises ``AudioError`` naming the file for unreadable, empty or silent audio."""
        wave = _load_full(self.path, self.kind, sr)
        if self.start_s or self.end_s is not None:
            a = int(round(self.start_s * sr))
            b = wave.size if self.end_s is None else int(round(self.end_s * sr))
            if a >= wave.size:
                raise AudioError(
                    f"clip starts at {self.start_s:.2f} s but the file is only {wave.size / sr:.2f} s long", self.path
                )
            wave = wave[a:b]
            from ..audio import SILENCE_PEAK

            peak = float(np.max(np.abs(wave))) if wave.size else 0.0
            if peak < SILENCE_PEAK:
                raise AudioError(f"clip {self.start_s:.2f}-{self.end_s} s is silent", self.path)
            wave = (wave / peak).astype(np.float32)
        if self.take:
            from ..takes import make_take

            seed = [int(file_sha256(self.path)[:15], 16), int(round(self.start_s * 1000)), self.take]
            wave = make_take(wave, sr, seed)
        return wave


@dataclass
class ClipSet:
    """Clips with their class names and a train/test split (indices into ``clips``).

    ``skipped`` lists ``(path, reason)`` for every file the loader could not use, so the UI can show
    what was left out and why instead of failing the whole dataset."""

    clips: list[AudioClip]
    class_names: list[str]
    train_idx: list[int]
    test_idx: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""
    info: dict = field(default_factory=dict)  # loader extras: byte orders, pieces per class, ...

    def class_index(self, clip: AudioClip) -> int:
        return self.class_names.index(clip.class_name)

    def labels(self) -> list[int]:
        lookup = {c: i for i, c in enumerate(self.class_names)}
        return [lookup[c.class_name] for c in self.clips]

    def counts(self) -> dict[str, tuple[int, int]]:
        """class name -> (n train, n test)."""
        out = {c: [0, 0] for c in self.class_names}
        for i in self.train_idx:
            out[self.clips[i].class_name][0] += 1
        for i in self.test_idx:
            out[self.clips[i].class_name][1] += 1
        return {c: (a, b) for c, (a, b) in out.items()}

    def subset(self, classes) -> ClipSet:
        """The same set restricted to ``classes`` (a list or comma string, in this order; same split);
        ``DatasetError`` naming any class the set does not have."""
        from ..errors import DatasetError

        wanted = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else [str(c) for c in classes]
        wanted = [c for c in dict.fromkeys(wanted) if c]
        missing = [c for c in wanted if c not in self.class_names]
        if missing:
            raise DatasetError(
                f"no class {', '.join(repr(c) for c in missing)} (it has {', '.join(self.class_names)})", self.source
            )
        keep = [i for i, c in enumerate(self.clips) if c.class_name in wanted]
        new_index = {old: new for new, old in enumerate(keep)}
        return ClipSet(
            [self.clips[i] for i in keep],
            wanted,
            [new_index[i] for i in self.train_idx if i in new_index],
            [new_index[i] for i in self.test_idx if i in new_index],
            list(self.skipped),
            self.source,
            dict(self.info),
        )

    def summary(self) -> str:
        lines = [
            f"{self.source}: {len(self.class_names)} classes, {len(self.train_idx)} train / "
            f"{len(self.test_idx)} test clips"
        ]
        for c, (a, b) in self.counts().items():
            lines.append(f"  {c}: {a} train, {b} test")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} file(s)")
        return "\n".join(lines)


def split_half(n: int, rng: np.random.Generator | None) -> tuple[list[int], list[int]]:
    """First half train / second half test of ``range(n)``, after a seeded shuffle when ``rng`` is
    given (the paper's protocol: half of each class's samples for training)."""
    order = np.arange(n) if rng is None else rng.permutation(n)
    half = (n + 1) // 2
    return sorted(order[:half].tolist()), sorted(order[half:].tolist())


def class_keyword(classes) -> str | None:
    """The preset keyword (``paper``, ``authors``, ``all``, ``any``, ``auto``; lower case) that
    ``classes`` names, or ``None`` for an explicit list. A keyword may come as a string or as the
    one-element list that splitting ``--classes paper`` on commas makes."""
    if isinstance(classes, str):
        word = classes.strip().lower()
    elif isinstance(classes, (list, tuple)) and len(classes) == 1 and isinstance(classes[0], str):
        word = classes[0].strip().lower()
    else:
        return None
    return word if word in ("paper", "authors", "all", "any", "auto") else None
