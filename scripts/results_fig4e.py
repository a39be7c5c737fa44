"""The paper's Fig. 4e on any detection source: STCA against TDP1 asked for n spikes per event.

For each seed, on the same streams, trains (one run at a time: the runs share the machine's cores)

* ``stca``: STCA, 300 hidden neurons (the paper's 128-300-10);
* ``tdp1-nN``: the TDP1 spike-count rule asking for N spikes per event (N = 1, 3, 5, 7, 9, 11), same network;
* ``tdp1-single``: TDP1 (N = 1) on a single-layer network (no hidden layer), TDP1's own setting;

then scores every final model two ways: count accuracy and event F1 on the test streams (as everywhere
here), and the authors' metric, each single test event (one clip) classified by the output whose
voltage peaks highest (``stca eval --per-event``). Prints mean ± std over the seeds and plots the test
count accuracy per epoch into ``docs/img/fig4e_stca_vs_tdp1.png``.

    python scripts/results_fig4e.py [--data demo] [--seeds 0 1 2 3] [--epochs 10] [--variants stca tdp1-n3 ...]
                                    [--runs runs/fig4e] [--plot-only] [--quiet] [-- extra stca train flags]

Extra arguments after ``--`` go to every ``stca train`` call (e.g. ``-- --streams 300``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TDP1_SPIKES = (1, 3, 5, 7, 9, 11)
VARIANTS = ("stca", *(f"tdp1-n{n}" for n in TDP1_SPIKES), "tdp1-single")


def variant_flags(variant: str) -> list[str]:
    """The ``stca train`` flags of one variant."""
    if variant == "stca":
        return ["--objective", "stca", "--hidden", "300"]
    if variant == "tdp1-single":
        return ["--objective", "tdp1", "--hidden", "0"]
    m = re.fullmatch(r"tdp1-n(\d+)", variant)
    if not m:
        raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return ["--objective", "tdp1", "--tdp1-spikes", m.group(1), "--hidden", "300"]


def run_dir(runs: Path, variant: str, seed: int) -> Path:
    return runs / f"{variant}-s{seed}"


def _stca(*args: str, quiet: bool) -> None:
    cmd = [sys.executable, "-m", "stca_engine", *(["--quiet"] if quiet else []), *args]
    print("$ stca " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def train(runs: Path, data: str, variant: str, seed: int, epochs: int, extra: list[str], quiet: bool) -> None:
    out = run_dir(runs, variant, seed)
    metrics = out / "metrics.json"
    if not (metrics.is_file() and json.loads(metrics.read_text()).get("test")):
        _stca(
            "train", "--data", data, "--task", "detect", *variant_flags(variant), "--seed", str(seed),
            "--epochs", str(epochs), "--out", str(out), *extra, quiet=quiet,
        )  # fmt: skip
    if not (out / "per_event.json").is_file():
        _stca("eval", str(out), "--data", data, "--per-event", "--out", str(out / "per_event.json"), quiet=quiet)


def load(runs: Path, seeds: list[int], variants) -> dict:
    """variant -> list of (epoch rows, final test block incl. per-event scores) over the finished seeds."""
    out = {}
    for variant in variants:
        for seed in seeds:
            d = run_dir(runs, variant, seed)
            if (d / "metrics.json").is_file() and (d / "per_event.json").is_file():
                m = json.loads((d / "metrics.json").read_text())
                pe = json.loads((d / "per_event.json").read_text())["test"]
                out.setdefault(variant, []).append((m["epochs"], pe))
    return out


def _mean_std(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None and x == x]
    if not xs:
        return "–"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {sd:.3f}"


def table(results: dict) -> str:
    rows = [
        "| variant | runs | count accuracy | event F1 | exact-stream | per-event accuracy (highest peak V) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for variant, runs in results.items():
        blocks = [b for _, b in runs]
        rows.append(
            f"| {variant} | {len(runs)} | {_mean_std([b['count_accuracy'] for b in blocks])} | "
            f"{_mean_std([b.get('event_f1') for b in blocks])} | {_mean_std([b['stream_accuracy'] for b in blocks])} | "
            f"{_mean_std([b['per_event_accuracy'] for b in blocks])} |"
        )
    floor = next((b["count_accuracy_floor"] for runs in results.values() for _, b in runs), None)
    if floor is not None:
        rows.append(f"\nA network that never fires scores a count accuracy of {floor:.3f} on these test streams.")
    return "\n".join(rows)


def plot(results: dict, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    cmap = plt.get_cmap("viridis")
    for i, (variant, runs) in enumerate(results.items()):
        n = min(len(rows) for rows, _ in runs)
        ys = np.array([[r.get("test_accuracy", np.nan) for r in rows[:n]] for rows, _ in runs], float)
        mean, sd = np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)
        x = np.arange(1, n + 1)
        color = "#1f77b4" if variant == "stca" else cmap(0.25 + 0.7 * i / max(1, len(results) - 1))
        lw = 2.6 if variant == "stca" else 1.4
        ax.plot(x, mean, color=color, lw=lw, marker="o", ms=3, label=f"{variant} ({len(runs)} runs)")
        ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.12)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test count accuracy")
    ax.set_title("STCA vs TDP1 asked for n spikes per event (cf. paper Fig. 4e); mean ± std", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    print(f"wrote {out_png}")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        k = argv.index("--")
        argv, extra = argv[:k], argv[k + 1 :]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="demo", help="any detection source: demo, rwcp:PATH, folder:PATH, ...")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help=f"default: {' '.join(VARIANTS)}")
    p.add_argument("--runs", default=str(REPO / "runs" / "fig4e"))
    p.add_argument("--png", default=str(REPO / "docs" / "img" / "fig4e_stca_vs_tdp1.png"))
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars from the training runs")
    a = p.parse_args(argv)
    for v in a.variants:
        variant_flags(v)  # unknown names fail before any training
    runs = Path(a.runs)
    if not a.plot_only:
        for seed in a.seeds:
            for variant in a.variants:
                train(runs, a.data, variant, seed, a.epochs, extra, a.quiet)
    results = load(runs, a.seeds, a.variants)
    if not results:
        sys.exit(f"no finished runs under {runs}")
    print(
        f"data {a.data}, seeds {' '.join(map(str, a.seeds))}, {a.epochs} epochs, extra flags: {' '.join(extra) or '-'}"
    )
    print(table(results))
    plot(results, Path(a.png))


if __name__ == "__main__":
    main()
