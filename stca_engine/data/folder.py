"""A generic dataset: one sub-folder per class holding audio files (wav, flac, ogg, mp3, ...).

Files are only listed here; each is decoded when it is encoded, and one that turns out to be
unreadable is skipped then (``encode_clips`` lists it) without losing the rest.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .clips import AudioClip, ClipSet, class_keyword, entry_problem, split_half

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
MAX_DEPTH = 4  # folders below a class folder that are searched for audio files
MAX_ENTRIES = 200_000  # files and folders looked at in all; a dataset root is not a whole disk
MAX_CLASSES = 1000


def load_folder(
    root: str | os.PathLike, classes=None, max_per_class: int | None = None, seed: int = 0, source: str | None = None
) -> ClipSet:
    """``<root>/<class>/**/<file>.<audio ext>`` -> ClipSet with a seeded half/half split per class.

    ``classes``: ``None`` = every sub-folder with at least two audio files, or a list / comma string.
    ``max_per_class`` keeps a seeded choice of that many files per class. Empty files, non-audio files
    and classes with fewer than two files are listed in ``skipped``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError("dataset folder does not exist or is not a folder", root)
    if root.resolve() == Path(root.resolve().anchor):
        raise DatasetError(
            "is the root of the file system, not a dataset folder (expected <folder>/<class>/<file>.wav)", root
        )
    entries = list(itertools.islice(root.iterdir(), MAX_ENTRIES + 1))
    if len(entries) > MAX_ENTRIES:
        raise DatasetError(
            f"holds more than {MAX_ENTRIES} entries; not a dataset folder (expected <folder>/<class>/<file>.wav)", root
        )
    subdirs = sorted(d for d in entries if not d.name.startswith(".") and d.is_dir())
    if len(subdirs) > MAX_CLASSES:
        raise DatasetError(
            f"has {len(subdirs)} sub-folders, more than the {MAX_CLASSES} classes a dataset folder "
            "may have (expected <folder>/<class>/<file>.wav)",
            root,
        )
    if not subdirs:
        raise DatasetError("no class sub-folders (expected <folder>/<class>/<file>.wav)", root)
    available = [d.name for d in subdirs]
    if classes is None or class_keyword(classes) in ("all", "any"):
        wanted = available
        explicit = False
    else:
        wanted = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else list(classes)
        wanted = list(dict.fromkeys(c for c in wanted if c))
        missing = [c for c in wanted if c not in available]
        if missing:
            raise DatasetError(f"missing class folder(s) {', '.join(missing)}; found: {', '.join(available)}", root)
        explicit = True
    rng = np.random.default_rng(seed)
    clips, train_idx, test_idx, skipped, kept = [], [], [], [], []
    per_class = {}
    seen = 0
    for cls in wanted:
        files = []
        base_depth = len((root / cls).parts)
        for dirpath, dirnames, filenames in os.walk(root / cls):
            seen += len(dirnames) + len(filenames)
            if seen > MAX_ENTRIES:
                raise DatasetError(
                    f"holds more than {MAX_ENTRIES} files and folders; not a dataset folder "
                    "(expected <folder>/<class>/<file>.wav)",
                    root,
                )
            deep = len(Path(dirpath).parts) - base_depth >= MAX_DEPTH
            dirnames[:] = [] if deep else sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                f = Path(dirpath) / name
                if f.suffix.lower() not in AUDIO_EXTS:
                    skipped.append((str(f), f"not an audio file (supported: {', '.join(AUDIO_EXTS)})"))
                    continue
                problem = entry_problem(f)
                if problem is not None:
                    skipped.append((str(f), problem))
                else:
                    files.append(f)
        if len(files) < 2:
            msg = f"class {cls!r} has {len(files)} usable audio file(s); need at least 2 (one train, one test)"
            if explicit:
                raise DatasetError(msg, root / cls)
            skipped.append((str(root / cls), msg))
            continue
        if max_per_class is not None and len(files) > max_per_class:
            files = [files[i] for i in sorted(rng.choice(len(files), max_per_class, replace=False).tolist())]
        tr, te = split_half(len(files), rng)
        base = len(clips)
        clips.extend(AudioClip(str(f), cls, group=cls) for f in files)
        train_idx.extend(base + i for i in tr)
        test_idx.extend(base + i for i in te)
        kept.append(cls)
        per_class[cls] = len(files)
    if not kept:
        raise DatasetError("no class folder has at least 2 audio files", root)
    return ClipSet(clips, kept, train_idx, test_idx, skipped, source or f"folder:{root}", {"per_class": per_class})
