"""How well `stca train` at its defaults learns real sound it never saw, beside a floor and a reference.

For every source of ``benchmarks/real_sounds.py`` and both tasks, over several seeds (each seed draws its
own train/test split of the clips and its own streams), this runs exactly what a user runs,
``stca train --data SOURCE --task TASK --seed S`` (plus any ``--extra`` flags), and prints beside each
figure:

* the **floor**: what a network that never fires scores on the same test set (detection: count
  accuracy with every count 0; exact-stream and event F1 are 0; classification: the largest class's share);
* the **reference**: a plain non-spiking classifier on the same clip split, MFCC statistics (mean and
  standard deviation of 20 MFCCs and their deltas) with standardisation and logistic regression.

Results are written as JSON lines (``--out``) and a Markdown table (median and min-max over seeds).

    python benchmarks/generalization.py [--sources voices,speech,instruments,drums,instruments-medleydb]
        [--tasks detect,classify] [--seeds 0,1,2] [--extra "--epochs 5"] [--out runs/generalization]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_sounds  # noqa: E402

SOURCES = ("voices", "speech", "instruments", "drums", "instruments-medleydb")
DETECT_COLS = ("count_accuracy", "stream_accuracy", "event_f1")
CLASSIFY_COLS = ("accuracy", "f1")


# ------------------------------------------------------------------------------------------------
# reference and floor
# ------------------------------------------------------------------------------------------------
def mfcc_features(wave: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Mean and std over time of 20 MFCCs and their deltas: the usual non-spiking baseline."""
    import librosa

    m = librosa.feature.mfcc(y=wave, sr=sr, n_mfcc=20, n_fft=512, hop_length=160)
    d = (
        librosa.feature.delta(m, width=min(9, m.shape[1] - (1 - m.shape[1] % 2)))
        if m.shape[1] >= 3
        else np.zeros_like(m)
    )
    return np.concatenate([m.mean(1), m.std(1), d.mean(1), d.std(1)])


def split_flag(extra: list[str]) -> str | None:
    """The ``--split`` a run's extra flags ask for (MedleyDB: ``track`` or ``random``), so the reference
    is scored on the very split the network saw."""
    for i, a in enumerate(extra):
        if a == "--split" and i + 1 < len(extra):
            return extra[i + 1]
        if a.startswith("--split="):
            return a.split("=", 1)[1]
    return None


def reference_scores(spec: str, seed: int, split: str | None = None) -> dict:
    """MFCC + logistic regression trained on the train clips of ``seed``'s split, scored on its test clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from stca_engine.data.sources import load_clipset

    cs = load_clipset(spec, seed=seed, split=split)
    labels = cs.labels()
    feats = {i: mfcc_features(cs.clips[i].load()) for i in [*cs.train_idx, *cs.test_idx]}
    xtr = np.stack([feats[i] for i in cs.train_idx])
    xte = np.stack([feats[i] for i in cs.test_idx])
    ytr = np.array([labels[i] for i in cs.train_idx])
    yte = np.array([labels[i] for i in cs.test_idx])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0))
    clf.fit(xtr, ytr)
    pred = clf.predict(xte)
    counts = np.bincount(yte)
    return {
        "ref_accuracy": float(accuracy_score(yte, pred)),
        "ref_f1": float(f1_score(yte, pred, average="macro")),
        "floor_accuracy": float(counts.max() / counts.sum()),
        "n_train_clips": len(ytr),
        "n_test_clips": len(yte),
    }


def detect_floor(metrics: dict) -> dict:
    """A silent network predicts 0 events of every class: count accuracy = share of (stream, class)
    pairs whose true count is 0; no stream is exact (every stream has events); no event is found."""
    return {
        "floor_count_accuracy": metrics.get("count_accuracy_floor", float("nan")),
        "floor_stream_accuracy": 0.0,
        "floor_event_f1": 0.0,
    }


# ------------------------------------------------------------------------------------------------
# one run
# ------------------------------------------------------------------------------------------------
def run_one(spec: str, task: str, seed: int, extra: list[str], out_dir: Path, quiet: bool = True) -> dict:
    from stca_engine import cli

    run_dir = out_dir / "models" / f"{spec.split(':')[-1].rstrip('/').split('/')[-1]}-{task}-s{seed}"
    argv = (["--quiet"] if quiet else []) + [
        "train",
        "--data",
        spec,
        "--task",
        task,
        "--seed",
        str(seed),
        "--out",
        str(run_dir),
        *extra,
    ]
    t0 = time.perf_counter()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(argv)
    if rc != 0:
        raise RuntimeError(f"stca {' '.join(argv)} exited {rc}: {buf.getvalue()[-500:]}")
    m = json.loads((run_dir / "metrics.json").read_text())
    test = m["test"]
    row = {
        "spec": spec,
        "task": task,
        "seed": seed,
        "extra": " ".join(extra),
        "seconds": time.perf_counter() - t0,
        "epochs": len(m["epochs"]),
        "train_loss": m["epochs"][-1]["train_loss"] if m["epochs"] else None,
        "mean_clusters": test.get("mean_clusters"),
    }
    if task == "detect":
        row.update({k: test.get(k) for k in (*DETECT_COLS, "event_precision", "event_recall")})
        row.update(detect_floor(test))
    else:
        row.update({k: test.get(k) for k in CLASSIFY_COLS})
        row.update(reference_scores(spec, seed, split_flag(extra)))
    for k in ("selected_epoch", "val_accuracy"):
        if k in m:
            row[k] = m[k]
    return row


def _fmt(values: list[float]) -> str:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return "–"
    med = statistics.median(vals)
    return f"{med:.3f}" if len(vals) == 1 else f"{med:.3f} ({min(vals):.3f}–{max(vals):.3f})"


def table(rows: list[dict]) -> str:
    """Markdown: one line per (source, task): median (min–max) over seeds, with floor and reference."""
    lines = [
        "| source | task | seeds | count acc. | floor | exact-stream | event F1 | accuracy | macro F1 | "
        "floor | MFCC+LR acc. | MFCC+LR F1 |",
        "|" + " --- |" * 13,
    ]
    keys = []
    for r in rows:
        k = (r["spec"], r["task"], r["extra"])
        if k not in keys:
            keys.append(k)
    for spec, task, extra in keys:
        rs = [r for r in rows if (r["spec"], r["task"], r["extra"]) == (spec, task, extra)]
        col = lambda name, rs=rs: _fmt([r.get(name) for r in rs])  # noqa: E731
        name = spec.split(":")[-1].rstrip("/").split("/")[-1] + (f" `{extra}`" if extra else "")
        if task == "detect":
            cells = [
                col("count_accuracy"),
                col("floor_count_accuracy"),
                col("stream_accuracy"),
                col("event_f1"),
                "",
                "",
                "",
                "",
                "",
            ]
        else:
            cells = [
                "",
                "",
                "",
                "",
                col("accuracy"),
                col("f1"),
                col("floor_accuracy"),
                col("ref_accuracy"),
                col("ref_f1"),
            ]
        lines.append(f"| {name} | {task} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sources", default=",".join(SOURCES))
    p.add_argument("--tasks", default="detect,classify")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--extra", default="", help='more `stca train` flags, e.g. "--epochs 5 --hidden 500"')
    p.add_argument("--out", default="runs/generalization")
    p.add_argument("--root", default=None, help="where the sources are built (default: real_sounds.default_root())")
    a = p.parse_args(argv)
    root = Path(a.root) if a.root else None
    sources = [s for s in a.sources.split(",") if s]
    try:
        specs = real_sounds.build_all(
            root, [s for s in sources if s in real_sounds.SOURCES], medleydb="instruments-medleydb" in sources
        )
    except real_sounds.MissingPackage as exc:
        print(f"generalization: error: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = shlex.split(a.extra)
    rows = []
    log = out_dir / "results.jsonl"
    for name in sources:
        for task in a.tasks.split(","):
            if name == "instruments-medleydb" and task == "detect":
                continue  # MedleyDB pieces are instrument classification (paper §3.2)
            for seed in [int(s) for s in a.seeds.split(",")]:
                row = run_one(specs[name], task, seed, extra, out_dir)
                row["source"] = name
                rows.append(row)
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                show = (
                    DETECT_COLS + ("floor_count_accuracy",)
                    if task == "detect"
                    else CLASSIFY_COLS + ("floor_accuracy", "ref_accuracy")
                )
                print(
                    f"{name:22s} {task:8s} seed {seed}: "
                    + "  ".join(f"{k}={row[k]:.3f}" for k in show if row.get(k) is not None)
                    + f"  ({row['seconds']:.0f} s)",
                    flush=True,
                )
    print()
    print(table(rows))
    (out_dir / "table.md").write_text(table(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
