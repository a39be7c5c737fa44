"""Labels in and out, in the formats people use for sound-event annotation, and event scoring.

* **Audacity label track** (File → Export → Labels / Import → Labels): one label per line,
  ``start<TAB>end<TAB>label`` with times in seconds (written with 6 decimals). Reading accepts what
  Audacity writes and what people type: blank lines and ``#`` comments are skipped, the frequency
  lines Audacity adds for spectral selections (starting with a backslash) are skipped, fields may be
  separated by tabs or (when a line has no tab) by runs of spaces, and a label may contain spaces.
  Anything else is a ``DatasetError`` naming the file and the line.
* **CSV** (``file,class,start_s,end_s,n_spikes[,peak_v]``) for spreadsheets and pandas.
* **Scoring** (``score_events``): event precision / recall / F1 of detections against ground truth.
  A detection *hits* an event when both have the same class and their spans overlap once the event
  is widened by ``tolerance_s`` on each side; each detection matches at most one event and each
  event at most one detection, so a second detection inside an already matched event is a false
  alarm. Detections are matched in time order, each to the unmatched overlapping event it overlaps
  most (the earliest on a tie).

Events are plain dicts ``{"class", "start_s", "end_s", ...}`` like ``DetectionResult.events``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import DatasetError

DEFAULT_TOLERANCE_S = 0.1
MAX_LABEL_FILE_BYTES = 20 * 1024 * 1024
CSV_COLUMNS = ["file", "class", "start_s", "end_s", "n_spikes", "peak_v"]


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
def _label_text(name) -> str:
    """A class name as one Audacity label field (tabs and line breaks would break the line format)."""
    return " ".join(str(name).replace("\t", " ").splitlines()).strip()


def to_audacity(events: Iterable[dict]) -> str:
    """An Audacity label track: ``start<TAB>end<TAB>label`` per event, seconds with 6 decimals."""
    return "".join(
        f"{float(ev['start_s']):.6f}\t{float(ev['end_s']):.6f}\t{_label_text(ev['class'])}\n" for ev in events
    )


def to_csv(events: Iterable[dict], file: str = "") -> str:
    """CSV with a header row: file, class, start_s, end_s (6 decimals), n_spikes, peak_v (blank when unknown)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for ev in events:
        peak = ev.get("peak_v")
        w.writerow(
            [
                file,
                ev["class"],
                f"{float(ev['start_s']):.6f}",
                f"{float(ev['end_s']):.6f}",
                ev.get("n_spikes", ""),
                "" if peak is None else f"{float(peak):.4f}",
            ]
        )
    return buf.getvalue()


def format_labels(events: Iterable[dict], fmt: str = "audacity", file: str = "") -> str:
    """``to_audacity`` or ``to_csv`` by name."""
    if fmt == "audacity":
        return to_audacity(events)
    if fmt == "csv":
        return to_csv(events, file)
    raise DatasetError(f"unknown label format {fmt!r} (audacity or csv)")


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
def _time(text: str, what: str, where: str) -> float:
    try:
        t = float(text.strip().replace(",", "."))
    except ValueError:
        raise DatasetError(
            f"{where}: {what} time {text.strip()!r} is not a number (expected start<TAB>end<TAB>label in seconds)"
        ) from None
    if not math.isfinite(t) or t < 0:
        raise DatasetError(f"{where}: {what} time {text.strip()!r} must be a finite number of seconds >= 0")
    return t


def parse_audacity(text: str, source: str = "labels") -> list[dict]:
    """Ground-truth events ``[{"class", "start_s", "end_s"}]`` (in time order) from an Audacity label track.

    ``source`` names the file in error messages (``"<source>: line N: <problem>"``).
    """
    events = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\r\n")
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("\\"):
            continue  # blank, comment, or Audacity's "\tf_low\tf_high" frequency line
        where = f"line {n}"
        if "\t" in line:
            fields = line.strip(" ").split("\t", 2)
        else:
            fields = stripped.split(None, 2)
        if len(fields) < 3 or not fields[2].strip():
            raise _err(source, f"{where}: expected start<TAB>end<TAB>label, got {stripped[:60]!r}")
        try:
            start = _time(fields[0], "start", where)
            end = _time(fields[1], "end", where)
        except DatasetError as exc:
            raise _err(source, str(exc)) from None
        if end < start:
            raise _err(source, f"{where}: end {end:g} s is before start {start:g} s")
        events.append({"class": _label_text(fields[2]), "start_s": start, "end_s": end})
    events.sort(key=lambda e: (e["start_s"], e["end_s"]))
    return events


def _err(source: str, problem: str) -> DatasetError:
    return DatasetError(problem, source)


def decode_label_bytes(data: bytes, source: str = "labels") -> str:
    """Label file bytes as text (UTF-8, a BOM allowed, Latin-1 as the fallback); refuses binary data."""
    if len(data) > MAX_LABEL_FILE_BYTES:
        raise DatasetError(
            f"{len(data) / 1e6:.1f} MB is too large for a label file "
            f"(at most {MAX_LABEL_FILE_BYTES // (1024 * 1024)} MB)",
            source,
        )
    if b"\x00" in data:
        raise DatasetError("is not a text label file (it holds binary data)", source)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_label_bytes(data: bytes, source: str = "labels") -> list[dict]:
    """``parse_audacity`` on uploaded bytes."""
    return parse_audacity(decode_label_bytes(data, source), source)


def read_labels(path: str | os.PathLike) -> list[dict]:
    """Ground-truth events from an Audacity label file on disk (errors name the file and line)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError("no such label file" if not p.exists() else "is not a label file", p)
    if p.stat().st_size > MAX_LABEL_FILE_BYTES:
        raise DatasetError(f"is too large for a label file (at most {MAX_LABEL_FILE_BYTES // (1024 * 1024)} MB)", p)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot be read ({exc.strerror or exc})", p) from None
    return parse_label_bytes(data, str(p))


# ------------------------------------------------------------------------------------------------
# scoring
# ------------------------------------------------------------------------------------------------
def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1; 0 when undefined, all 1 when there is nothing to find and nothing found."""
    if tp + fp + fn == 0:
        return 1.0, 1.0, 1.0
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def score_events(
    detections: Sequence[dict],
    truth: Sequence[dict],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    class_names: Sequence[str] | None = None,
) -> dict:
    """Event precision / recall / F1 of ``detections`` against ``truth`` (rules in the module docstring).

    Returns ``{"tp", "fp", "fn", "precision", "recall", "f1", "tolerance_s", "per_class", "hits",
    "misses", "false_alarms", "pairs"}``: ``per_class[c]`` has tp/fp/fn/precision/recall/f1 for every
    class in ``class_names`` (default: the classes seen) plus any class only the truth has;
    ``hits`` / ``false_alarms`` are the detections (dicts as given) that matched / did not;
    ``misses`` the true events no detection matched; ``pairs`` the ``(detection index, truth index)``
    matches.
    """
    if tolerance_s < 0 or not math.isfinite(tolerance_s):
        raise DatasetError(f"the scoring tolerance must be a finite number of seconds >= 0, got {tolerance_s}")
    tol = float(tolerance_s)
    det_order = sorted(
        range(len(detections)), key=lambda i: (float(detections[i]["start_s"]), float(detections[i]["end_s"]))
    )
    matched_truth: dict[int, int] = {}
    pairs = []
    false_alarm_idx = []
    for i in det_order:
        d = detections[i]
        a, b = float(d["start_s"]), float(d["end_s"])
        best, best_overlap = None, -math.inf
        for j, e in enumerate(truth):
            if j in matched_truth or str(e["class"]) != str(d["class"]):
                continue
            lo, hi = float(e["start_s"]) - tol, float(e["end_s"]) + tol
            if a > hi or b < lo:
                continue
            overlap = min(b, hi) - max(a, lo)
            if overlap > best_overlap:  # the first (earliest in truth order) wins a tie
                best, best_overlap = j, overlap
        if best is None:
            false_alarm_idx.append(i)
        else:
            matched_truth[best] = i
            pairs.append((i, best))
    names = list(class_names) if class_names is not None else []
    for ev in list(detections) + list(truth):
        if str(ev["class"]) not in names:
            names.append(str(ev["class"]))
    per_class = {}
    for c in names:
        tp = sum(1 for j in matched_truth if str(truth[j]["class"]) == c)
        fp = sum(1 for i in false_alarm_idx if str(detections[i]["class"]) == c)
        fn = sum(1 for j, e in enumerate(truth) if str(e["class"]) == c and j not in matched_truth)
        p, r, f = _prf(tp, fp, fn)
        per_class[c] = {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f}
    tp, fp = len(pairs), len(false_alarm_idx)
    fn = len(truth) - len(matched_truth)
    p, r, f = _prf(tp, fp, fn)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": p,
        "recall": r,
        "f1": f,
        "tolerance_s": tol,
        "per_class": per_class,
        "hits": [detections[i] for i, _ in sorted(pairs)],
        "false_alarms": [detections[i] for i in sorted(false_alarm_idx)],
        "misses": [e for j, e in enumerate(truth) if j not in matched_truth],
        "pairs": sorted(pairs),
    }


def merge_scores(scores: Sequence[dict]) -> dict:
    """Totals over several recordings' ``score_events`` results: summed tp/fp/fn and the P/R/F1 of the sums."""
    tp = sum(s["tp"] for s in scores)
    fp = sum(s["fp"] for s in scores)
    fn = sum(s["fn"] for s in scores)
    p, r, f = _prf(tp, fp, fn)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f}


def format_score(score: dict) -> str:
    """One line: ``precision 0.750  recall 0.600  F1 0.667  (hits 3, false alarms 1, misses 2)``."""
    return (
        f"precision {score['precision']:.3f}  recall {score['recall']:.3f}  F1 {score['f1']:.3f}  "
        f"(hits {score['tp']}, false alarms {score['fp']}, misses {score['fn']})"
    )
