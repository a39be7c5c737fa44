"""MedleyDB instrument pieces (paper §3.2).

Layout: ``<root>/Audio/<T>/<T>_METADATA.yaml`` (``stems: S01: {instrument, filename, ...}``), stems in
``<T>_STEMS/<T>_STEM_NN.wav``, optional activation confidence
``<root>/Annotations/Instrument_Activations/ACTIVATION_CONF/<T>_ACTIVATION_CONF.lab`` (CSV
``time,S01,...``, ~46 ms hop; active where >= 0.5; without it an energy threshold is used).
Single-instrument stems of the chosen instruments are cut into 1.5 s pieces that lie wholly inside
active regions. By default the split is by track, so no recording feeds both train and test (pieces
of one stem are far more alike than pieces of different recordings, which would inflate test scores);
``split="random"`` (``--split random``) is the paper's protocol, pieces drawn at random wherever they
come from, for comparing with its Table 2.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..names import SPLITS
from .clips import AudioClip, ClipSet, class_keyword, entry_problem

PIECE_S = 1.5
N_TRAIN, N_TEST = 160, 80
MIN_PIECES = 20
ACTIVE_CONF = 0.5
ENERGY_DB = -30.0  # energy fallback: frames within 30 dB of the stem's loudest frame are active
FRAME_S = 2048 / 44100  # MedleyDB's activation hop (~46 ms)
ACTIVATION_DIR = Path("Annotations") / "Instrument_Activations" / "ACTIVATION_CONF"

# The paper's instruments (its list names nine) -> MedleyDB instrument labels.
PAPER_INSTRUMENTS = {
    "violin": ["violin"],
    "guitar": ["acoustic guitar", "clean electric guitar", "distorted electric guitar"],
    "flute": ["flute"],
    "female": ["female singer"],
    "drum": ["drum set"],
    "cymbal": ["cymbal"],
    "cello": ["cello"],
    "double bass": ["double bass"],
    "erhu": ["erhu"],
}


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"bad YAML ({first})") from None
    if not isinstance(data, dict) or not isinstance(data.get("stems"), dict):
        raise ValueError("no 'stems' mapping in the metadata")
    return data


def read_activation(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(frame times [F], {stem id: confidence [F]})`` from an ACTIVATION_CONF ``.lab`` file."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(x.strip() for x in r)]
    if len(rows) < 2:
        raise ValueError("no data rows")
    header = [h.strip() for h in rows[0]]
    if header[0].lower() != "time":
        raise ValueError(f"first column must be 'time', got {header[0]!r}")
    try:
        table = np.array([[float(x) for x in r] for r in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"non-numeric value ({exc})") from None
    if table.shape[1] != len(header):
        raise ValueError(f"{table.shape[1]} columns in the rows but {len(header)} in the header")
    return table[:, 0], {h: table[:, j] for j, h in enumerate(header) if j}


def energy_activity(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(frame times, active bool)``: frames whose RMS is within ``ENERGY_DB`` of the loudest."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    hop = max(1, int(round(FRAME_S * sr)))
    n = mono.size // hop
    if n == 0:
        return np.zeros(0), np.zeros(0, bool)
    rms = np.sqrt(np.mean(mono[: n * hop].reshape(n, hop) ** 2, axis=1))
    peak = float(rms.max())
    active = rms >= peak * 10 ** (ENERGY_DB / 20) if peak > 0 else np.zeros(n, bool)
    return np.arange(n) * hop / sr, active


def active_pieces(
    times: np.ndarray, active: np.ndarray, duration_s: float, piece_s: float = PIECE_S
) -> list[tuple[float, float]]:
    """Non-overlapping ``piece_s`` spans lying wholly inside runs of active frames.

    Frame ``i`` covers ``[times[i], times[i+1])`` (the last one a median hop); spans are clipped to
    the stem's duration."""
    if times.size == 0:
        return []
    hop = float(np.median(np.diff(times))) if times.size > 1 else FRAME_S
    ends = np.append(times[1:], times[-1] + hop)
    out = []
    i, n = 0, times.size
    while i < n:
        if not active[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and active[j + 1]:
            j += 1
        a, b = float(times[i]), min(float(ends[j]), duration_s)
        k = 0
        while a + (k + 1) * piece_s <= b + 1e-9:
            out.append((round(a + k * piece_s, 6), round(a + (k + 1) * piece_s, 6)))
            k += 1
        i = j + 1
    return out


def _split_tracks(pieces_by_track: dict[str, dict[str, int]], test_frac: float, rng: np.random.Generator) -> set[str]:
    """Tracks for the test side: greedy, largest first, each to the side whose per-class deficit
    (towards ``test_frac`` of every class's pieces on the test side) its pieces reduce most."""
    totals: dict[str, int] = {}
    for counts in pieces_by_track.values():
        for c, k in counts.items():
            totals[c] = totals.get(c, 0) + k
    names = sorted(pieces_by_track)
    order = [names[i] for i in rng.permutation(len(names))]
    order.sort(key=lambda t: -sum(pieces_by_track[t].values()))  # stable: ties stay shuffled
    got = {"train": dict.fromkeys(totals, 0), "test": dict.fromkeys(totals, 0)}
    want = {
        "train": {c: (1 - test_frac) * k for c, k in totals.items()},
        "test": {c: test_frac * k for c, k in totals.items()},
    }
    test = set()
    for t in order:
        counts = pieces_by_track[t]
        score = {
            side: sum(k * (want[side][c] - got[side][c]) / totals[c] for c, k in counts.items())
            for side in ("train", "test")
        }
        side = "test" if score["test"] > score["train"] else "train"
        if side == "test":
            test.add(t)
        for c, k in counts.items():
            got[side][c] += k
    return test


def load_medleydb(
    root: str | os.PathLike,
    classes=None,
    n_train: int = N_TRAIN,
    n_test: int = N_TEST,
    min_pieces: int = MIN_PIECES,
    piece_s: float = PIECE_S,
    seed: int = 0,
    source: str | None = None,
    split: str = "track",
) -> ClipSet:
    """MedleyDB pieces: per instrument up to ``n_train`` train / ``n_test`` test 1.5 s pieces.

    ``split``: ``"track"`` (default) puts every recording on one side only, so no test piece comes from a
    track the network heard in training; ``"random"`` is the paper's protocol (§3.2): the pieces of an
    instrument are drawn at random, 160 / 80, wherever they come from, so pieces of one track land on both
    sides (a neighbour of a test piece, from the same take, may be in the training set; the scores it gives
    are higher than a listener with new recordings would see: docs/RESULTS.md).

    ``classes``: ``None`` = every instrument label with at least ``min_pieces`` active pieces in at
    least two tracks; ``"paper"`` (or ``["paper"]``, as ``--classes paper`` arrives) = the paper's
    instruments (grouping MedleyDB labels, e.g. guitar);
    or a list of labels. Bad metadata and missing stems are skipped and listed; ``DatasetError`` only
    when nothing usable is left or requested instruments are missing. ``ClipSet.info["pieces"]``
    reports, per class, the pieces found and used on each side.
    """
    import soundfile as sf

    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError("MedleyDB folder does not exist or is not a folder", root)
    audio_dir = root / "Audio"
    if not audio_dir.is_dir():
        raise DatasetError("no Audio/ folder (expected Audio/<track>/<track>_METADATA.yaml)", root)
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}", root)
    if n_train < 1 or n_test < 1 or piece_s <= 0:
        raise DatasetError(f"need n_train, n_test >= 1 and piece_s > 0 (got {n_train}, {n_test}, {piece_s})", root)

    key = class_keyword(classes)
    if key == "paper":
        groups = dict(PAPER_INSTRUMENTS)
    elif classes is None or key in ("all", "any", "auto"):
        groups = None
    elif key == "authors":
        raise DatasetError("MedleyDB has no 'authors' instrument list (presets: paper, all)", root)
    else:
        names = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else list(classes)
        groups = {c: PAPER_INSTRUMENTS.get(c, [c]) for c in dict.fromkeys(n for n in names if n)}
    label_to_class = None if groups is None else {lab: c for c, labs in groups.items() for lab in labs}

    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    pieces: dict[str, list[AudioClip]] = {}  # class -> pieces
    by_track: dict[str, dict[str, int]] = {}
    labels_seen: dict[str, int] = {}
    track_dirs = sorted(d for d in audio_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not track_dirs:
        raise DatasetError("no track folders under Audio/", audio_dir)
    for tdir in track_dirs:
        t = tdir.name
        meta_path = tdir / f"{t}_METADATA.yaml"
        if not meta_path.is_file():
            skipped.append((str(meta_path), "missing metadata file"))
            continue
        try:
            meta = _read_yaml(meta_path)
        except (ValueError, OSError) as exc:
            skipped.append((str(meta_path), str(exc)))
            continue
        act_path = root / ACTIVATION_DIR / f"{t}_ACTIVATION_CONF.lab"
        activation = None
        if act_path.is_file():
            try:
                activation = read_activation(act_path)
            except (ValueError, OSError) as exc:
                notes.append(f"{act_path}: {exc}; used the energy threshold instead")
        for sid, stem in sorted(meta["stems"].items(), key=lambda kv: str(kv[0])):
            if not isinstance(stem, dict):
                skipped.append((str(meta_path), f"stem {sid}: not a mapping"))
                continue
            inst = stem.get("instrument")
            if isinstance(inst, list):
                if len(inst) != 1:
                    continue  # a stem mixing several instruments is not monophonic
                inst = inst[0]
            if not isinstance(inst, str) or not inst.strip():
                skipped.append((str(meta_path), f"stem {sid}: no instrument label"))
                continue
            inst = inst.strip()
            cls = inst if label_to_class is None else label_to_class.get(inst)
            if cls is None:
                labels_seen.setdefault(inst, 0)
                continue
            fname = stem.get("filename") or f"{t}_STEM_{str(sid)[1:]}.wav"
            stem_path = tdir / f"{t}_STEMS" / str(fname)
            if not stem_path.exists() and not stem_path.is_symlink():
                skipped.append((str(stem_path), f"stem {sid} ({inst}) listed in the metadata but missing"))
                continue
            problem = entry_problem(stem_path)  # links, FIFOs, too long: from the entry, never decoded
            if problem is not None:
                skipped.append((str(stem_path), f"stem {sid} ({inst}): {problem}"))
                continue
            try:
                duration = sf.info(str(stem_path)).duration
                if activation is not None and str(sid) in activation[1]:
                    times, act = activation[0], activation[1][str(sid)] >= ACTIVE_CONF
                else:
                    times, act = energy_activity(stem_path)
            except (RuntimeError, sf.LibsndfileError, OSError, ValueError) as exc:
                skipped.append((str(stem_path), f"unreadable audio ({exc})"))
                continue
            spans = active_pieces(times, act, duration, piece_s)
            labels_seen[inst] = labels_seen.get(inst, 0) + len(spans)
            for a, b in spans:
                pieces.setdefault(cls, []).append(AudioClip(str(stem_path), cls, a, b, "audio", t))
            if spans:
                by_track.setdefault(t, {})
                by_track[t][cls] = by_track[t].get(cls, 0) + len(spans)

    tracks_of = {c: {p.group for p in ps} for c, ps in pieces.items()}
    if groups is not None:
        missing = [c for c in groups if len(pieces.get(c, [])) == 0]
        if missing:
            have = ", ".join(sorted(labels_seen)) or "none"
            raise DatasetError(
                f"no active pieces for instrument(s) {', '.join(missing)}; instrument labels found: {have}", root
            )
        chosen = list(groups)
    else:
        chosen = sorted(c for c, ps in pieces.items() if len(ps) >= min_pieces)
    for c in list(chosen):
        if split == "track" and len(tracks_of[c]) < 2:
            skipped.append(
                (
                    str(root),
                    f"instrument {c!r} left out: all {len(pieces[c])} pieces come from "
                    "one track, so it cannot be split by track",
                )
            )
            chosen.remove(c)
    if not chosen:
        raise DatasetError(
            f"no instrument with at least {min_pieces} active {piece_s:g} s pieces in two or "
            f"more tracks (skipped {len(skipped)} item(s))",
            root,
        )

    rng = np.random.default_rng(seed)
    if split == "random":
        return _random_split(
            pieces, chosen, n_train, n_test, rng, skipped, labels_seen, notes, source or f"medleydb:{root}"
        )
    sub = {t: {c: k for c, k in counts.items() if c in chosen} for t, counts in by_track.items()}
    test_tracks = _split_tracks({t: v for t, v in sub.items() if v}, n_test / (n_train + n_test), rng)
    clips: list[AudioClip] = []
    train_idx: list[int] = []
    test_idx: list[int] = []
    report = {}
    for c in list(chosen):
        tr = [p for p in pieces[c] if p.group not in test_tracks]
        te = [p for p in pieces[c] if p.group in test_tracks]
        if not tr or not te:
            skipped.append(
                (
                    str(root),
                    f"instrument {c!r} left out: the track split left no {'train' if not tr else 'test'} pieces",
                )
            )
            chosen.remove(c)
            continue
        pick_tr = sorted(rng.choice(len(tr), min(n_train, len(tr)), replace=False).tolist())
        pick_te = sorted(rng.choice(len(te), min(n_test, len(te)), replace=False).tolist())
        report[c] = {
            "found_train": len(tr),
            "found_test": len(te),
            "train": len(pick_tr),
            "test": len(pick_te),
            "tracks_train": len({p.group for p in tr}),
            "tracks_test": len({p.group for p in te}),
        }
        train_idx.extend(range(len(clips), len(clips) + len(pick_tr)))
        clips.extend(tr[i] for i in pick_tr)
        test_idx.extend(range(len(clips), len(clips) + len(pick_te)))
        clips.extend(te[i] for i in pick_te)
    if not chosen:
        raise DatasetError("no instrument could be split into train and test tracks", root)
    info = {
        "split": "track",
        "pieces": report,
        "test_tracks": sorted(test_tracks),
        "labels_found": labels_seen,
        "notes": notes,
        "encoder_preset": "medleydb",
    }  # the paper's 128 kernels x 3 bins = 384 afferents
    return ClipSet(clips, chosen, train_idx, test_idx, skipped, source or f"medleydb:{root}", info)


def _random_split(pieces, chosen, n_train, n_test, rng, skipped, labels_seen, notes, source) -> ClipSet:
    """The paper's protocol: per instrument ``n_train + n_test`` pieces drawn at random from all its
    pieces, the first ``n_train`` for training (with fewer pieces, the same proportion, at least one each)."""
    clips: list[AudioClip] = []
    train_idx: list[int] = []
    test_idx: list[int] = []
    report = {}
    for c in list(chosen):
        ps = pieces[c]
        want = n_train + n_test
        if len(ps) < 2:
            skipped.append((source, f"instrument {c!r} left out: one piece cannot be split into train and test"))
            chosen.remove(c)
            continue
        take = min(want, len(ps))
        n_te = max(1, min(take - 1, round(take * n_test / want)))
        order = rng.permutation(len(ps))[:take]
        tr, te = [ps[i] for i in order[: take - n_te]], [ps[i] for i in order[take - n_te :]]
        shared = len({p.group for p in tr} & {p.group for p in te})
        report[c] = {
            "found": len(ps),
            "train": len(tr),
            "test": len(te),
            "tracks_train": len({p.group for p in tr}),
            "tracks_test": len({p.group for p in te}),
            "tracks_on_both_sides": shared,
        }
        train_idx.extend(range(len(clips), len(clips) + len(tr)))
        clips.extend(tr)
        test_idx.extend(range(len(clips), len(clips) + len(te)))
        clips.extend(te)
    if not chosen:
        raise DatasetError("no instrument has two or more pieces", source)
    info = {
        "split": "random",
        "pieces": report,
        "labels_found": labels_seen,
        "notes": notes,
        "encoder_preset": "medleydb",
    }
    return ClipSet(clips, chosen, train_idx, test_idx, skipped, source, info)
