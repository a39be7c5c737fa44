#!/usr/bin/env python
"""Train the ready detection model for the demo set that the Detect page selects by default.

Usage: python scripts/make_demo_model.py [--out DIR]      (default assets/models/demo-detect)

It runs exactly this (every setting spelled out, so later changes of the CLI defaults do not change it):

    stca train --data demo --task detect --seed 0 --epochs 10 --hidden 300 --batch 16 --optimizer adam \
               --lr 0.01 --streams 1500 --out assets/models/demo-detect

and keeps config.json, model.safetensors and metrics.json (the test block it reached). About 2-3 min on 2 cores;
the result is committed (< 2 MB) so `make app` needs no training.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stca_engine import cli  # noqa: E402

ARGS = [
    "train",
    "--data",
    "demo",
    "--task",
    "detect",
    "--seed",
    "0",
    "--epochs",
    "10",
    "--hidden",
    "300",
    "--batch",
    "16",
    "--optimizer",
    "adam",
    "--lr",
    "0.01",
    "--streams",
    "1500",
]
KEEP = ("config.json", "model.safetensors", "metrics.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "assets" / "models" / "demo-detect"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        code = cli.main(ARGS + ["--out", str(run)])
        if code:
            return code
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in KEEP:
            if (run / name).is_file():
                shutil.copy2(run / name, out / name)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
