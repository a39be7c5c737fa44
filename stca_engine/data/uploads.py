"""User uploads: ``(bytes, filename)`` pairs from the browser -> waveforms or a clip set.

Every upload is checked on its own (size cap before decoding, then decodability, duration,
NaN/inf, silence) and a bad one is listed with its reason while the others go on. For a training
set the accepted bytes are stored content-addressed in a folder (so the encoded-clip cache keys on
them like any file) and labelled from the given labels or the file name (``dog_01.wav`` -> ``dog``).
A ``.zip`` of class folders (``dog/01.wav``, ``cat/01.wav``, optionally inside one top folder) is
unpacked one member at a time, each under the upload cap, the whole under ``STCA_MAX_ARCHIVE_MB``
and ``STCA_MAX_ARCHIVE_FILES``; its sounds are labelled by their folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import weakref
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np

from ..atomic import write_atomic
from ..errors import DatasetError, StcaError
from .clips import AudioClip, ClipSet, split_half
from .folder import AUDIO_EXTS


def _check_one(data: bytes, filename: str, max_mb: float | None, max_seconds: float | None, sr: int):
    from .. import limits
    from ..audio import load_audio_bytes

    limits.check_upload_size(len(data), filename, max_mb)
    limit_s = limits.max_audio_seconds() if max_seconds is None else max_seconds
    return load_audio_bytes(data, filename, sr=sr, max_seconds=limit_s)


def load_uploads(
    files: list[tuple[bytes, str]], sr: int = 16000, max_mb: float | None = None, max_seconds: float | None = None
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, str]]]:
    """Decode uploads -> ``([(filename, wave)], [(filename, reason)])``; waves are mono float32 at
    ``sr``, peak 1. Limits default to the operator's (``STCA_MAX_UPLOAD_MB``, ``STCA_MAX_AUDIO_SECONDS``)."""
    waves, skipped = [], []
    for data, name in files:
        try:
            waves.append((name, _check_one(data, name, max_mb, max_seconds, sr)))
        except StcaError as exc:
            skipped.append((name, exc.problem))
    return waves, skipped


def label_from_filename(filename: str) -> str:
    """``dog_01.wav`` / ``dog-2.flac`` / ``dog 3.mp3`` / ``dog7.wav`` -> ``dog``; falls back to the stem."""
    stem = Path(filename).stem
    label = re.split(r"[_\-\s.]", stem, maxsplit=1)[0]
    label = re.sub(r"\d+$", "", label)
    return label or stem


def _safe_name(filename: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name)[-80:]
    return base.lstrip(".") or "upload"


UPLOAD_PREFIX = "stca_uploads_"
_OWNED = re.compile(rf"^{UPLOAD_PREFIX}(\d+)_")
LEGACY_MAX_AGE_S = 24 * 3600  # folders from before the pid was in the name: removed when this old


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # exists under another user (or an absurd number: keep nothing for it)
    return True


class UploadFolder:
    """A fresh ``<tmp>/stca_uploads_<pid>_*`` folder, removed when this object is garbage-collected,
    on ``remove()`` or at exit. The app keeps one per browser session in ``st.session_state`` (and
    nowhere else), so the folder goes when the session ends or a new upload set replaces it."""

    def __init__(self, tmpdir: str | os.PathLike | None = None):
        self.path = Path(tempfile.mkdtemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}_", dir=tmpdir))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def remove(self) -> None:
        self._finalizer()


def remove_stale_upload_dirs(tmpdir: str | os.PathLike | None = None) -> list[str]:
    """Remove the per-session upload folders (``<tmp>/stca_uploads_<pid>_*``) of server processes that
    are gone, and unowned ``stca_uploads_*`` folders older than a day; returns what was removed. The
    app calls it once when the server starts; the live server's own folders are kept."""
    root = Path(tmpdir) if tmpdir is not None else Path(tempfile.gettempdir())
    removed = []
    try:
        entries = [p for p in root.iterdir() if p.name.startswith(UPLOAD_PREFIX)]
    except OSError:
        return removed
    now = time.time()
    for p in entries:
        try:
            if p.is_symlink() or not p.is_dir():
                continue
            m = _OWNED.match(p.name)
            stale = (not _pid_alive(int(m.group(1)))) if m else now - p.stat().st_mtime > LEGACY_MAX_AGE_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(str(p))
    return removed


def uploads_clipset(
    files: list[tuple[bytes, str]],
    labels: list[str] | None = None,
    dest: str | os.PathLike | None = None,
    seed: int = 0,
    max_mb: float | None = None,
    max_seconds: float | None = None,
) -> ClipSet:
    """Uploads as a labelled ClipSet with a seeded half/half split per class.

    Accepted uploads are written to ``dest`` (default: a new temporary folder
    ``stca_uploads_<pid>_*``, removed when the returned ClipSet is garbage-collected — the browser
    session that held it ended, or it was replaced — or when the process exits). Classes with fewer
    than two good uploads are left out and listed. Raises ``DatasetError`` when no class is left (a
    temporary folder is removed then)."""
    if labels is not None and len(labels) != len(files):
        raise DatasetError(f"{len(labels)} labels for {len(files)} uploads", "uploads")
    if dest is not None:
        return _uploads_clipset(files, labels, Path(dest), seed, max_mb, max_seconds)
    folder = UploadFolder()
    try:
        cs = _uploads_clipset(files, labels, folder.path, seed, max_mb, max_seconds)
    except BaseException:
        folder.remove()
        raise
    weakref.finalize(cs, folder.remove)  # the folder lives as long as the clip set that reads it
    return cs


ARCHIVE_EXTS = (".zip",)


def _member_dirs(info: zipfile.ZipInfo) -> tuple[tuple[str, ...], str] | None:
    """``(folders, file name)`` of a zip member worth reading, or None (folders, macOS and hidden entries)."""
    path = PurePosixPath(info.filename.replace("\\", "/"))
    parts = [p for p in path.parts if p not in ("", ".", "/")]
    if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX" or p == ".." for p in parts):
        return None
    return tuple(parts[:-1]), parts[-1]


def archive_labels(members: list[tuple[tuple[str, ...], str]]) -> list[str]:
    """The class of each ``(folders, file name)``: the first folder below the folders all share
    (``sounds/dog/1.wav`` and ``sounds/cat/1.wav`` -> dog, cat); when every file sits in the same folder,
    that folder (a one-class zip); files at the top of the archive are named by their file name."""
    if not members:
        return []
    common: list[str] = list(members[0][0])
    for dirs, _ in members[1:]:
        n = 0
        while n < min(len(common), len(dirs)) and common[n] == dirs[n]:
            n += 1
        common = common[:n]
    if all(len(dirs) == len(common) for dirs, _ in members):
        return [common[-1] if common else label_from_filename(f) for _, f in members]
    return [dirs[len(common)] if len(dirs) > len(common) else label_from_filename(f) for dirs, f in members]


def _archive_members(data: bytes, name: str, skipped: list, max_mb: float | None) -> Iterator[tuple[bytes, str, str]]:
    """``(bytes, "archive.zip:path", label)`` for each sound file in the zip ``data``, read one at a time:
    the member's declared size is checked against the upload cap before it is unpacked, and never more
    than that is read (a member that unpacks to gigabytes is listed in ``skipped``, not read)."""
    import io

    from .. import limits

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        skipped.append((name, "not a zip archive"))
        return
    cap = int((limits.max_upload_mb() if max_mb is None else float(max_mb)) * 1024 * 1024)
    budget = int(limits.max_archive_mb() * 1024 * 1024)
    with z:
        infos, members = [], []
        for info in z.infolist():
            m = _member_dirs(info)
            if m is None:
                continue
            if PurePosixPath(m[1]).suffix.lower() not in AUDIO_EXTS:
                skipped.append(
                    (f"{name}:{info.filename}", f"not an audio file name (supported: {', '.join(AUDIO_EXTS)})")
                )
                continue
            infos.append(info)
            members.append(m)
        if len(infos) > limits.max_archive_files():
            raise DatasetError(
                f"holds {len(infos)} sound files, more than {limits.max_archive_files()} "
                f"(set by {limits.ENV_MAX_ARCHIVE_FILES}); split it into several archives",
                name,
            )
        total = 0
        for info, label in zip(infos, archive_labels(members)):
            where = f"{name}:{info.filename}"
            if info.file_size > cap:
                skipped.append(
                    (where, f"unpacks to {info.file_size / 2**20:.1f} MB, over the upload limit of {cap / 2**20:g} MB")
                )
                continue
            if total + info.file_size > budget:
                skipped.append(
                    (
                        where,
                        f"the archive unpacks to more than {budget / 2**20:g} MB (set by {limits.ENV_MAX_ARCHIVE_MB})",
                    )
                )
                continue
            try:
                with z.open(info) as f:
                    member = f.read(cap + 1)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
                skipped.append((where, f"cannot be unpacked ({type(exc).__name__}: {exc})"))
                continue
            except Exception as exc:  # noqa: BLE001 - zlib errors of damaged deflate streams
                skipped.append((where, f"cannot be unpacked ({exc})"))
                continue
            if len(member) > cap:  # the header under-declared the size
                skipped.append((where, f"unpacks to more than the upload limit of {cap / 2**20:g} MB"))
                continue
            total += len(member)
            yield member, where, label


def _expanded(files, labels, skipped, max_mb) -> Iterator[tuple[bytes, str, str | None]]:
    """Every upload as ``(bytes, name, label or None)``, archives replaced by their sound files."""
    for k, (data, name) in enumerate(files):
        if Path(name).suffix.lower() in ARCHIVE_EXTS:
            yield from _archive_members(data, name, skipped, max_mb)
        else:
            yield data, name, labels[k] if labels is not None else None


def _uploads_clipset(files, labels, dest: Path, seed, max_mb, max_seconds) -> ClipSet:
    dest.mkdir(parents=True, exist_ok=True)
    by_class: dict[str, list[tuple[Path, str]]] = {}
    skipped: list[tuple[str, str]] = []
    for data, name, given in _expanded(files, labels, skipped, max_mb):
        if Path(name).suffix.lower() not in AUDIO_EXTS:
            skipped.append((name, f"not an audio file name (supported: {', '.join(AUDIO_EXTS)})"))
            continue
        try:
            _check_one(data, name, max_mb, max_seconds, 16000)
        except StcaError as exc:
            skipped.append((name, exc.problem))
            continue
        label = (given if given is not None else label_from_filename(name)).strip()
        if not label:
            skipped.append((name, "empty class label"))
            continue
        path = dest / f"{hashlib.sha256(data).hexdigest()[:16]}_{_safe_name(name)}"
        if not path.exists():
            write_atomic(path, data)
        by_class.setdefault(label, []).append((path, name))
    rng = np.random.default_rng(seed)
    clips, train_idx, test_idx, kept = [], [], [], []
    for cls in sorted(by_class):
        paths = sorted({p for p, _ in by_class[cls]})
        if len(paths) < 2:
            skipped.append((by_class[cls][0][1], f"class {cls!r} has only one usable upload; need 2 (train + test)"))
            continue
        tr, te = split_half(len(paths), rng)
        base = len(clips)
        clips.extend(AudioClip(str(p), cls, group="upload") for p in paths)
        train_idx.extend(base + i for i in tr)
        test_idx.extend(base + i for i in te)
        kept.append(cls)
    if not kept:
        reasons = "; ".join(f"{n}: {r}" for n, r in skipped[:3])
        raise DatasetError(f"no class with at least two usable uploads ({reasons})", "uploads")
    return ClipSet(clips, kept, train_idx, test_idx, skipped, "uploads", {"folder": str(dest)})
