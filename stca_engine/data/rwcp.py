"""RWCP-SSD dry sources: ``<root>/nospeech/drysrc/<group>/<class>/48khz/<NNN>.raw``.

Headerless mono 16-bit PCM at 48 kHz. The root may be given at any level above ``<class>`` (the
top folder, ``nospeech``, ``drysrc`` or a group folder). The byte order is detected per file when
the clip is read (the wrong order looks like full-scale noise), so a tree with mixed orders works.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..audio import detect_pcm16_byteorder
from ..errors import DatasetError
from .cache import _blas_single_thread
from .clips import AudioClip, ClipSet, class_keyword, entry_problem, split_half

PAPER_CLASSES = ["bank", "bells5", "bowl", "cherry1", "coin3", "cup1", "horn", "phone4", "ring", "whistle1"]
AUTHORS_CLASSES = ["bells5", "bottle1", "buzzer", "cymbals", "horn", "kara", "metal15", "phone4", "ring", "whistle1"]
CLASS_LISTS = {"paper": PAPER_CLASSES, "authors": AUTHORS_CLASSES}
SAMPLES_PER_CLASS = 80
RATE_DIR = "48khz"
_MAX_DEPTH = 6  # root/nospeech/drysrc/group/class/48khz is depth 5
MAX_FOLDERS = 100_000  # folders looked at while searching for class folders: a dataset is not a disk


def find_class_dirs(root: str | os.PathLike) -> dict[str, list[tuple[str, Path]]]:
    """class name -> [(group, path of its 48khz folder)], found up to a few levels below ``root``."""
    root = Path(root)
    found: dict[str, list[tuple[str, Path]]] = {}
    base_depth = len(root.parts)
    seen = 0
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):
        seen += len(dirnames)
        if seen > MAX_FOLDERS:
            raise DatasetError(
                f"holds more than {MAX_FOLDERS} folders; not an RWCP folder (expected "
                "nospeech/drysrc/<group>/<class>/48khz/*.raw)",
                root,
            )
        depth = len(Path(dirpath).parts) - base_depth
        dirnames.sort()
        hits = [d for d in dirnames if d.lower() == RATE_DIR]
        if hits and depth >= 1:
            here = Path(dirpath)
            group = here.parent.name  # the RWCP group folder (or whatever holds the class)
            found.setdefault(here.name, []).append((group, here / hits[0]))
        if depth >= _MAX_DEPTH - 1:
            dirnames[:] = []
        else:
            dirnames[:] = [d for d in dirnames if d.lower() != RATE_DIR and not d.startswith(".")]
    return found


def _named_dirs(root: Path, name: str) -> list[Path]:
    """Folders called ``name`` (any case) below ``root``: to tell 'no 48khz folder' from 'missing'."""
    out = []
    base_depth = len(root.parts)
    for dirpath, dirnames, _ in os.walk(root):
        if len(Path(dirpath).parts) - base_depth >= _MAX_DEPTH - 1:
            dirnames[:] = []
        out.extend(Path(dirpath) / d for d in dirnames if d.lower() == name.lower())
    return out


def resolve_classes(classes, available: list[str]) -> list[str] | None:
    """``None``/"auto": the paper's set when all of it is present, else everything found;
    "all"/"any": everything found; "paper"/"authors": those lists; or an explicit list/comma string."""
    key = class_keyword(classes)
    if classes is None or key == "auto":
        return list(PAPER_CLASSES) if set(PAPER_CLASSES) <= set(available) else None
    if key in ("all", "any"):
        return None
    if key in CLASS_LISTS:
        return list(CLASS_LISTS[key])
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    return list(dict.fromkeys(classes))


def load_rwcp(
    root: str | os.PathLike,
    classes=None,
    n_per_class: int = SAMPLES_PER_CLASS,
    pick: str = "first",
    seed: int = 0,
    source: str | None = None,
    check_byteorder: bool = True,
) -> ClipSet:
    """RWCP clip set: per class ``n_per_class`` files (sorted: the first ones, or a seeded choice with
    ``pick="random"``), half for training and half for testing (seeded split).

    Raises ``DatasetError`` naming the folder for a missing root, missing requested classes (listing
    what exists), a class without a 48khz folder or without files. Odd-sized or empty files are
    skipped and listed in ``ClipSet.skipped``. With ``check_byteorder`` the byte order of every
    file is detected up front and counted in ``ClipSet.info["byte_orders"]`` (mixed orders are noted).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError("RWCP folder does not exist or is not a folder", root)
    if root.resolve() == Path(root.resolve().anchor):
        raise DatasetError(
            "is the root of the file system, not an RWCP folder (expected nospeech/drysrc/<group>/<class>/48khz/*.raw)",
            root,
        )
    if n_per_class < 2:
        raise DatasetError(f"need at least 2 samples per class, got n_per_class={n_per_class}", root)
    if pick not in ("first", "random"):
        raise DatasetError(f"pick must be 'first' or 'random', got {pick!r}", root)
    found = find_class_dirs(root)
    wanted = resolve_classes(classes, sorted(found))
    if wanted is None:
        if not found:
            raise DatasetError(
                "no RWCP class folders found (expected <class>/48khz/*.raw, e.g. "
                "nospeech/drysrc/<group>/<class>/48khz/000.raw)",
                root,
            )
        wanted = sorted(found)
        explicit = False
    else:
        explicit = True
        lower = {k.lower(): k for k in found}
        wanted = [c if c in found else lower.get(c.lower(), c) for c in wanted]
        missing = [c for c in wanted if c not in found]
        if missing:
            no_rate = [c for c in missing if _named_dirs(root, c)]
            if no_rate:
                where = _named_dirs(root, no_rate[0])[0]
                raise DatasetError(
                    f"class folder has no {RATE_DIR} folder (expected {where.name}/{RATE_DIR}/*.raw)", where
                )
            have = ", ".join(sorted(found)) if found else "none"
            raise DatasetError(f"missing class(es) {', '.join(missing)}; found: {have}", root)

    rng = np.random.default_rng(seed)
    clips: list[AudioClip] = []
    train_idx: list[int] = []
    test_idx: list[int] = []
    skipped: list[tuple[str, str]] = []
    kept: list[str] = []
    orders = {"little": 0, "big": 0}
    for cls in wanted:
        files: list[tuple[str, Path]] = []
        for group, rate_dir in found[cls]:
            for f in sorted(rate_dir.iterdir()):
                if f.suffix.lower() == ".raw" and (f.is_symlink() or not f.is_dir()):
                    files.append((group, f))
        usable = []
        for group, f in files:
            problem = entry_problem(f, "rwcp_raw")  # links, FIFOs, too long: from the entry, never read
            size = f.stat().st_size if problem is None else 0
            if problem == "empty file (0 bytes)":
                skipped.append((str(f), "empty file"))
            elif problem is not None:
                skipped.append((str(f), problem))
            elif size % 2:
                skipped.append((str(f), f"odd size ({size} bytes) - not 16-bit PCM"))
            else:
                usable.append((group, f))
        if len(usable) < 2:
            reason = "no .raw files" if not files else f"only {len(usable)} usable .raw file(s)"
            if explicit:
                raise DatasetError(f"class {cls!r}: {reason} (need at least 2)", found[cls][0][1])
            skipped.append((str(found[cls][0][1]), f"class {cls!r} left out: {reason}"))
            continue
        if len(usable) > n_per_class:
            if pick == "random":
                chosen = sorted(rng.choice(len(usable), n_per_class, replace=False).tolist())
                usable = [usable[i] for i in chosen]
            else:
                usable = usable[:n_per_class]
        if check_byteorder:
            with _blas_single_thread():
                for _, f in usable:
                    orders[detect_pcm16_byteorder(f.read_bytes())[0]] += 1
        tr, te = split_half(len(usable), rng)
        base = len(clips)
        clips.extend(AudioClip(str(f), cls, kind="rwcp_raw", group=g) for g, f in usable)
        train_idx.extend(base + i for i in tr)
        test_idx.extend(base + i for i in te)
        kept.append(cls)
    if not kept:
        raise DatasetError("no class has at least 2 usable .raw files", root)
    info = {"per_class": {c: n for c, n in zip(kept, _class_sizes(clips, kept))}}
    if check_byteorder:
        info["byte_orders"] = orders
        if orders["little"] and orders["big"]:
            info["note"] = (
                f"mixed byte orders: {orders['little']} little-endian and {orders['big']} "
                "big-endian files (each file is read in its own order)"
            )
    return ClipSet(clips, kept, train_idx, test_idx, skipped, source or f"rwcp:{root}", info)


def _class_sizes(clips: list[AudioClip], classes: list[str]) -> list[int]:
    return [sum(1 for c in clips if c.class_name == k) for k in classes]
