"""Reproduce the paper's Fig. 4e on the demo set: STCA against TDP1 learning curves on the same streams.

Runs ``stca train --data demo --task detect --objective {stca,tdp1}`` for each seed (one run at a
time: the runs share the machine's cores), then plots the test count accuracy and event F1 per epoch
(mean over seeds, individual runs faint) into ``docs/img/fig4e_stca_vs_tdp1.png``.

    python scripts/results_fig4e.py [--seeds 0 1] [--epochs 10] [--runs runs/fig4e] [--plot-only] [--quiet]

Extra arguments after ``--`` go to every ``stca train`` call (e.g. ``-- --streams 200``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OBJECTIVES = ("stca", "tdp1")
COLORS = {"stca": "#1f77b4", "tdp1": "#d62728"}


def run_dir(runs: Path, objective: str, seed: int) -> Path:
    return runs / f"{objective}-s{seed}"


def train(runs: Path, objective: str, seed: int, epochs: int, extra: list[str], quiet: bool = False) -> None:
    out = run_dir(runs, objective, seed)
    if (out / "metrics.json").is_file() and json.loads((out / "metrics.json").read_text()).get("test"):
        print(f"{out}: already done", flush=True)
        return
    cmd = [
        sys.executable,
        "-m",
        "stca_engine",
        *(["--quiet"] if quiet else []),
        "train",
        "--data",
        "demo",
        "--task",
        "detect",
        "--objective",
        objective,
        "--seed",
        str(seed),
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        *extra,
    ]
    print("$ " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def load_curves(runs: Path, seeds: list[int]):
    curves = {}
    for obj in OBJECTIVES:
        for seed in seeds:
            path = run_dir(runs, obj, seed) / "metrics.json"
            if path.is_file():
                m = json.loads(path.read_text())
                curves.setdefault(obj, []).append(m["epochs"])
    return curves


def plot(curves: dict, out_png: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    summary = {}
    for ax, key, label in (
        (axes[0], "test_accuracy", "test count accuracy"),
        (axes[1], "test_event_f1", "test event F1"),
    ):
        for obj, runs in curves.items():
            n = min(len(r) for r in runs)
            ys = np.array([[(e.get(key) if e.get(key) is not None else np.nan) for e in r[:n]] for r in runs])
            x = np.arange(1, n + 1)
            for y in ys:
                ax.plot(x, y, color=COLORS[obj], alpha=0.25, lw=1)
            mean = np.nanmean(ys, axis=0)
            ax.plot(
                x,
                mean,
                color=COLORS[obj],
                lw=2.2,
                marker="o",
                ms=3,
                label=f"{obj.upper()} (mean of {len(runs)} run{'s' if len(runs) > 1 else ''})",
            )
            summary.setdefault(obj, {})[key] = {
                "final_mean": float(mean[-1]),
                "best_mean": float(np.nanmax(mean)),
                "epochs": int(n),
            }
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_title("STCA vs TDP1 on the same demo streams (cf. paper Fig. 4e)", fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    print(f"wrote {out_png}")
    return summary


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        k = argv.index("--")
        argv, extra = argv[:k], argv[k + 1 :]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--runs", default=str(REPO / "runs" / "fig4e"))
    p.add_argument("--png", default=str(REPO / "docs" / "img" / "fig4e_stca_vs_tdp1.png"))
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars from the training runs")
    a = p.parse_args(argv)
    runs = Path(a.runs)
    if not a.plot_only:
        for seed in a.seeds:
            for obj in OBJECTIVES:
                train(runs, obj, seed, a.epochs, extra, a.quiet)
    curves = load_curves(runs, a.seeds)
    if not curves:
        sys.exit(f"no finished runs under {runs}")
    summary = plot(curves, Path(a.png))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
