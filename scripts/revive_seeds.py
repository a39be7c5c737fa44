"""Does reviving silent neurons change healthy training? The toy detection set of tests/test_trainer.py,
12 seeds, 6 epochs, ``revive`` off and on; prints each run and the means (docs/ARCHITECTURE.md cites it).

    .venv/bin/python scripts/revive_seeds.py      # about 2 min on 2 cores
"""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_trainer import CFG, TEST, TRAIN, _cfg  # noqa: E402

from stca_engine.trainer import Trainer  # noqa: E402


def main(seeds: int = 12, epochs: int = 6) -> None:
    res: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for seed in range(seeds):
        for revive in (False, True):
            reports = Trainer(None, TRAIN, TEST, CFG, _cfg(revive=revive, seed=seed, epochs=epochs)).fit(epochs)
            last = reports[-1]
            res[revive].append((last.train_accuracy, last.test_accuracy))
            revived = sum(r.n_revived for r in reports)
            print(
                f"seed {seed:2d} revive {revive!s:5}: train {last.train_accuracy:.3f} test {last.test_accuracy:.3f}"
                f"  revived pairs {revived}",
                flush=True,
            )
    for revive, runs in res.items():
        tr, te = [a for a, _ in runs], [b for _, b in runs]
        print(
            f"revive {revive!s:5}: train count accuracy mean {statistics.mean(tr):.3f} (median "
            f"{statistics.median(tr):.3f}), test mean {statistics.mean(te):.3f} (median {statistics.median(te):.3f})"
        )


if __name__ == "__main__":
    main()
