"""The non-spiking reference for image data: logistic regression on the raw pixels, on exactly the
train / test images that ``stca train --data SPEC --seed S`` uses, printed beside the score of a
network that never fires (the largest class's share of the test images).

    python benchmarks/image_reference.py --data mnist:PATH [--seed 0] [--train-images N|all] [--test-images N|all]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from stca_engine.data.sources import load_clipset  # noqa: E402


def reference(images, max_iter: int = 1000) -> dict:
    """Test accuracy of standardised-pixel logistic regression (scikit-learn, lbfgs) and the floor."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = images.images.reshape(len(images.images), -1).astype(np.float64)
    y = images.labels
    tr, te = np.asarray(images.train_idx), np.asarray(images.test_idx)
    scaler = StandardScaler().fit(x[tr])
    clf = LogisticRegression(max_iter=max_iter, C=1.0)
    t0 = time.perf_counter()
    clf.fit(scaler.transform(x[tr]), y[tr])
    acc = float((clf.predict(scaler.transform(x[te])) == y[te]).mean())
    floor = float(np.bincount(y[te]).max() / len(te))
    return {"accuracy": acc, "floor": floor, "n_train": len(tr), "n_test": len(te), "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="digits or mnist:PATH")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-images", default=None)
    ap.add_argument("--test-images", default=None)
    args = ap.parse_args(argv)
    opts = {"seed": args.seed}
    if args.train_images is not None:
        opts["n_train"] = args.train_images
    if args.test_images is not None:
        opts["n_test"] = args.test_images
    images = load_clipset(args.data, **opts)
    r = reference(images)
    print(
        f"{args.data} seed {args.seed}: {r['n_train']} train / {r['n_test']} test images; "
        f"logistic regression on the pixels {r['accuracy']:.4f}; a network that never fires {r['floor']:.4f} "
        f"({r['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
