"""MNIST from the standard IDX files (gzipped or not) at a user path; images in [0, 1].

The files are looked up under their usual names (``train-images-idx3-ubyte[.gz]`` and the Kaggle
spelling ``train-images.idx3-ubyte``); the IDX header is checked (magic, dimensions, size) so a
truncated or wrong file fails with a message naming it instead of producing garbage digits.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
PARTS = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


@dataclass
class ImageSet:
    """Images ``[N, H, W]`` in [0, 1] with integer labels and a train/test split."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    train_idx: list[int]
    test_idx: list[int]
    source: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file (``.gz`` or plain) -> array with the shape in its header."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"cannot read IDX file ({exc})", path) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError("not an IDX file (bad magic number)", path)
    ndim = raw[3]
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise DatasetError("not an IDX file (truncated header)", path)
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    need = int(np.prod(shape)) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != need:
        raise DatasetError(f"IDX header says {shape} ({need} bytes of data) but the file has {len(body)}", path)
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def find_part(root: Path, part: str) -> Path:
    for base in PARTS[part]:
        for name in (base, base + ".gz"):
            if (root / name).is_file():
                return root / name
    raise DatasetError(f"missing {PARTS[part][0]}[.gz] (the standard MNIST IDX files)", root)


DEFAULT_N_TRAIN, DEFAULT_N_TEST = 10000, 2000


def _count(n, name: str) -> int | None:
    if n is None or (isinstance(n, str) and n.strip().lower() == "all"):
        return None
    try:
        v = int(n)
    except (TypeError, ValueError):
        raise DatasetError(f"{name} must be a positive number of images or 'all', got {n!r}", "MNIST") from None
    if isinstance(n, bool) or v < 1:
        raise DatasetError(f"{name} must be a positive number of images or 'all', got {n!r}", "MNIST")
    return v


def load_mnist(
    root: str | os.PathLike,
    n_train: int | str | None = DEFAULT_N_TRAIN,
    n_test: int | str | None = DEFAULT_N_TEST,
    seed: int = 0,
) -> ImageSet:
    """MNIST images in [0, 1]: a seeded subset of ``n_train`` of the 60k training and ``n_test`` of
    the 10k test images (``None`` or ``"all"`` = all, as Table 1). The default subset bounds memory: a
    rate-coded digit has ~13k spikes (~100 KB as a SpikeTrain), so all 70k need ~7 GB."""
    n_train, n_test = _count(n_train, "n_train"), _count(n_test, "n_test")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError("MNIST folder does not exist or is not a folder", root)
    parts = {k: find_part(root, k) for k in PARTS}
    arrays = {k: read_idx(p) for k, p in parts.items()}
    for side in ("train", "test"):
        im, lab = arrays[f"{side}_images"], arrays[f"{side}_labels"]
        if im.ndim != 3:
            raise DatasetError(f"expected [N, rows, cols] images, got shape {im.shape}", parts[f"{side}_images"])
        if lab.ndim != 1 or lab.shape[0] != im.shape[0]:
            raise DatasetError(f"{lab.shape[0]} labels for {im.shape[0]} images", parts[f"{side}_labels"])
        if lab.size and (lab.min() < 0 or lab.max() > 9):
            raise DatasetError("labels outside 0..9", parts[f"{side}_labels"])
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DatasetError("train and test images differ in size", root)
    rng = np.random.default_rng(seed)

    def pick(n_all, n):
        return np.arange(n_all) if n is None or n >= n_all else np.sort(rng.choice(n_all, n, replace=False))

    tr = pick(arrays["train_images"].shape[0], n_train)
    te = pick(arrays["test_images"].shape[0], n_test)
    images = np.concatenate([arrays["train_images"][tr], arrays["test_images"][te]]).astype(np.float32) / 255.0
    labels = np.concatenate([arrays["train_labels"][tr], arrays["test_labels"][te]]).astype(np.int64)
    n = len(tr)
    return ImageSet(
        images,
        labels,
        [str(d) for d in range(10)],
        list(range(n)),
        list(range(n, n + len(te))),
        f"mnist:{root}",
        # how many of each side's images the files hold: a subset is said so in the run's summary
        info={
            "images_of": {"train": int(arrays["train_images"].shape[0]), "test": int(arrays["test_images"].shape[0])}
        },
    )


class RateImageEncoder:
    """Images -> rate-coded SpikeTrains (:func:`stca_engine.rate.rate_encode`) behind the same
    ``name / n_units / dt_ms / settings() / encode()`` interface as the sound encoders.

    MNIST in the paper: ``round(125 * pixel)`` regular spikes over 250 steps. Poisson draws come
    from one generator seeded at construction, so a run is reproducible for a seed."""

    name = "rate"

    def __init__(
        self,
        n_units: int,
        n_steps: int = 250,
        max_spikes: int = 125,
        mode: str = "regular",
        dt_ms: float = 3.0,
        seed: int = 0,
    ):
        from ..rate import _check

        _check(np.zeros(1), n_steps, max_spikes, mode, "rate")  # validates the settings
        self.n_units = int(n_units)
        self.n_steps, self.max_spikes, self.mode = int(n_steps), int(max_spikes), mode
        self.dt_ms = float(dt_ms)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def settings(self) -> dict:
        return {
            "encoder": "rate",
            "n_units": self.n_units,
            "n_steps": self.n_steps,
            "max_spikes": self.max_spikes,
            "mode": self.mode,
            "dt_ms": self.dt_ms,
            "seed": self.seed,
        }

    def encode(self, image: np.ndarray, name: str = "image"):
        from ..rate import rate_encode

        if np.asarray(image).size != self.n_units:
            raise DatasetError(f"image has {np.asarray(image).size} pixels, the encoder expects {self.n_units}", name)
        tr = rate_encode(image, self.n_steps, self.max_spikes, self.mode, self.dt_ms, self._rng, name=name)
        return tr, {"n_spikes": tr.n_spikes}
