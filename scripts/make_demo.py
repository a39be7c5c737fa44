#!/usr/bin/env python
"""Generate the built-in demo sound set into assets/demo/ (deterministic; skipped when current).

Usage: python scripts/make_demo.py [--force] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stca_engine.data import demo  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="regenerate even when the set is current")
    ap.add_argument("--out", default=None, help=f"target folder (default {demo.demo_dir()})")
    args = ap.parse_args(argv)
    root = Path(args.out) if args.out else demo.demo_dir()
    if not args.force and demo.demo_is_complete(root):
        print(f"demo set is current: {root}")
        return 0
    t0 = time.perf_counter()
    demo.generate_demo(root)
    size = sum(f.stat().st_size for f in root.rglob("*.raw"))
    print(
        f"wrote {len(demo.CLASSES)} classes x {demo.CLIPS_PER_CLASS} clips ({size / 2**20:.1f} MiB) "
        f"to {root} in {time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
