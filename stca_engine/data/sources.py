"""The one entry the CLI and the app use to get data: a spec string -> clip/image set -> datasets.

``"demo" | "rwcp:PATH" | "medleydb:PATH" | "folder:PATH" | "digits" | "mnist:PATH"``. For sound,
``prepare_datasets`` encodes every clip once (cached on disk, misses in parallel) and then either
splices detection streams (train streams from train clips only, test streams from test clips) or
keeps single clips for classification; images are rate coded.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import TASKS
from ..errors import ConfigError, DatasetError
from .clips import ClipSet
from .mnist import ImageSet
from .streams import build_streams, gap_settings
from .types import Sample, SpikeDataset, SpikeTrain

KINDS_WITH_PATH = ("rwcp", "medleydb", "folder", "mnist")
KINDS_WITHOUT_PATH = ("demo", "digits")
IMAGE_KINDS = ("digits", "mnist")
SPEC_HELP = "demo, digits, rwcp:PATH, medleydb:PATH, folder:PATH or mnist:PATH"
# Sized so the demo detection task trains in minutes on two cores (the paper used 3000 streams).
DEFAULT_TRAIN_STREAMS = 300
DEFAULT_TEST_STREAMS = 100


@dataclass(frozen=True)
class DataSpec:
    kind: str
    path: str | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"

    @property
    def is_image(self) -> bool:
        return self.kind in IMAGE_KINDS


def parse_data_spec(spec) -> DataSpec:
    """Parse a data spec; ``ConfigError`` with a one-line message for anything else."""
    if isinstance(spec, DataSpec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"empty data source; use {SPEC_HELP}", "data")
    text = spec.strip()
    kind, sep, path = text.partition(":")
    kind = kind.strip().lower()
    if kind in KINDS_WITHOUT_PATH:
        if sep and path.strip():
            raise ConfigError(f"'{kind}' takes no path; use {SPEC_HELP}", text)
        return DataSpec(kind)
    if kind in KINDS_WITH_PATH:
        if not path.strip():
            raise ConfigError(f"'{kind}' needs a folder: {kind}:PATH", text)
        try:
            folder = Path(path.strip()).expanduser()
        except RuntimeError as exc:  # "~someone/..." for an unknown user
            raise ConfigError(f"cannot expand the folder ({exc})", text) from None
        return DataSpec(kind, str(folder))
    raise ConfigError(f"unknown data source '{kind}'; use {SPEC_HELP}", text)


def _call(fn, spec: DataSpec, opts: dict, *args):
    params = inspect.signature(fn).parameters
    unknown = [k for k in opts if k not in params]
    if unknown:
        allowed = ", ".join(k for k in params if k not in ("root", "source"))
        raise ConfigError(
            f"option(s) {', '.join(unknown)} do not apply to '{spec.kind}' data (its options: {allowed})", str(spec)
        )
    return fn(*args, **opts)


def load_clipset(spec, restrict: bool = False, **opts) -> ClipSet | ImageSet:
    """The clip set (sound) or image set behind a spec. ``opts`` go to the loader (``classes``,
    ``seed``, ``n_per_class`` ...). With ``restrict`` the folder must lie inside the operator's
    allowed roots (``STCA_DATA_ROOTS``), as the app requires."""
    spec = parse_data_spec(spec)
    if spec.path is not None and restrict:
        from ..roots import confine

        confine(spec.path)
    opts = {k: v for k, v in opts.items() if v is not None}
    if spec.kind == "demo":
        from .demo import load_demo

        return _call(load_demo, spec, opts)
    if spec.kind == "rwcp":
        from .rwcp import load_rwcp

        return _confined(_call(load_rwcp, spec, opts, spec.path), restrict)
    if spec.kind == "medleydb":
        from .medleydb import load_medleydb

        return _confined(_call(load_medleydb, spec, opts, spec.path), restrict)
    if spec.kind == "folder":
        from .folder import load_folder

        return _confined(_call(load_folder, spec, opts, spec.path), restrict)
    classes = opts.pop("classes", None)
    if spec.kind == "digits":
        from .digits import load_digits

        images = _call(load_digits, spec, opts)
    else:
        from .mnist import load_mnist

        images = _call(load_mnist, spec, opts, spec.path)
    return select_image_classes(images, classes) if classes is not None else images


def _confined(cs: ClipSet, restrict: bool) -> ClipSet:
    """With ``restrict``: a file inside the dataset folder that links out of the allowed roots is
    skipped and listed, never read (its bytes could otherwise be played back as audio)."""
    if not restrict:
        return cs
    from ..roots import allowed_roots, is_inside

    roots = allowed_roots()
    inside: dict[str, bool] = {}
    for clip in cs.clips:
        if clip.path not in inside:
            inside[clip.path] = any(is_inside(Path(clip.path).resolve(), r) for r in roots)
    if all(inside.values()):
        return cs
    keep = [i for i, clip in enumerate(cs.clips) if inside[clip.path]]
    new_index = {old: new for new, old in enumerate(keep)}
    for path in (p for p, ok in inside.items() if not ok):
        cs.skipped.append((path, "outside the allowed data folders (it links elsewhere); not read"))
    cs.clips = [cs.clips[i] for i in keep]
    cs.train_idx = [new_index[i] for i in cs.train_idx if i in new_index]
    cs.test_idx = [new_index[i] for i in cs.test_idx if i in new_index]
    return cs


def select_image_classes(images: ImageSet, classes) -> ImageSet:
    """Keep only the named classes (e.g. ``["0", "1"]``); labels are renumbered in that order."""
    wanted = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else [str(c) for c in classes]
    missing = [c for c in wanted if c not in images.class_names]
    if missing:
        raise DatasetError(
            f"missing class(es) {', '.join(missing)}; found: {', '.join(images.class_names)}", images.source
        )
    old = [images.class_names.index(c) for c in wanted]
    remap = {o: i for i, o in enumerate(old)}
    keep = np.flatnonzero(np.isin(images.labels, old))
    pos = {int(k): j for j, k in enumerate(keep)}
    labels = np.array([remap[int(images.labels[k])] for k in keep], dtype=np.int64)
    return ImageSet(
        images.images[keep],
        labels,
        wanted,
        [pos[i] for i in images.train_idx if i in pos],
        [pos[i] for i in images.test_idx if i in pos],
        images.source,
        images.skipped,
        images.info,
    )


def default_encoder(
    kind: str = "sound", dt_ms: float | None = None, n_pixels: int | None = None, preset: str | None = None
):
    """The spikegram encoder for sound (``preset="medleydb"``: the paper's 384 afferents); rate
    coding (250 steps, up to 125 spikes) for images."""
    settings = {} if dt_ms is None else {"dt_ms": float(dt_ms)}
    if preset is not None and kind != "image":
        settings["preset"] = preset
    if kind == "image":
        from .mnist import RateImageEncoder

        return RateImageEncoder(int(n_pixels), **settings)
    from ..encoders import make_encoder

    return make_encoder("spikegram", **settings)


def encoder_by_name(name: str, data, dt_ms: float | None = None):
    """The encoder a bare name (``--encoder spikegram``) means for ``data``: ``spikegram`` keeps the
    source's preset (MedleyDB: the paper's 384 afferents) at ``dt_ms``; other names their defaults.
    Explicit settings are given as an encoder object instead and are never changed."""
    from ..encoders import make_encoder

    preset = None if isinstance(data, ImageSet) else (data.info or {}).get("encoder_preset")
    if name == "spikegram" and not isinstance(data, ImageSet):
        return default_encoder("sound", dt_ms, preset=preset)
    return make_encoder(name)


def _encode_images(images: ImageSet, encoder, idx: list[int], progress, done0: int) -> list[SpikeTrain]:
    out = []
    total = len(images.train_idx) + len(images.test_idx)
    for n, i in enumerate(idx):
        tr, _ = encoder.encode(images.images[i], name=f"{images.source} image {i}")
        out.append(tr)
        if progress is not None and (n % 200 == 0 or n == len(idx) - 1):
            progress(done0 + n + 1, total, "rate coding images")
    return out


def prepare_datasets(
    spec_or_clipset,
    task: str = "detect",
    encoder=None,
    n_train_streams: int | None = None,
    n_test_streams: int | None = None,
    events_per_stream=5,
    seed: int = 0,
    progress=None,
    dt_ms: float | None = None,
    gap_s=None,
    gaps: str = "random",
    cache=True,
    workers: int | None = None,
    restrict: bool = False,
    val_fraction: float = 0.0,
    n_val_streams: int | None = None,
    takes: int = 0,
    **load_opts,
) -> tuple[SpikeDataset, SpikeDataset, dict]:
    """``(train, test, info)`` ready for the Trainer.

    ``task="detect"``: unsegmented streams (targets: per-class counts), train streams spliced only
    from train clips and test streams only from test clips; ``task="classify"``: one sample per clip
    or image (target: class index). ``encoder`` defaults to the spikegram (sound) or rate coding
    (images) at ``dt_ms``; a bare name (``"spikegram"``) is built by ``encoder_by_name`` (keeping the
    source's preset); an encoder whose ``dt_ms`` differs from a given ``dt_ms`` is refused.
    ``info`` holds the encoder (``encoder``, ``encoder_settings``), the source, skipped files with
    reasons, per-class counts and cache hits/misses.

    ``gaps`` (detection): ``"random"`` silent gaps between events cut to their sound, or ``"paper"``, the
    authors' splicing (one fixed interval, each event keeping its leading silence; ``streams.gap_settings``);
    an explicit ``gap_s`` range overrides the mode's gaps.

    ``val_fraction > 0`` carves a validation set out of the *training* clips (per class, seeded; at
    least one clip of each class that has two or more): ``info["val"]`` is a ``SpikeDataset`` of
    single clips (classify) or of streams spliced only from those clips (``n_val_streams``, default as
    many as test streams). The test clips are never used to choose anything.

    ``takes > 0`` (sound): every training clip left after the validation split is also encoded as that
    many new takes (``takes.make_take``: a few per cent faster or slower, tilted, noisier), which join the
    training clips; validation and test clips stay the recordings themselves."""
    if isinstance(takes, bool) or not isinstance(takes, (int, np.integer)) or not 0 <= int(takes) <= 16:
        raise ConfigError(f"takes must be an integer in [0, 16], got {takes!r}", "takes")
    if not (isinstance(val_fraction, (int, float)) and 0.0 <= float(val_fraction) < 0.9):
        raise ConfigError(f"val_fraction must be in [0, 0.9), got {val_fraction!r}", "val_fraction")
    if task not in TASKS:
        raise ConfigError(f"task must be 'detect' or 'classify', got {task!r}", "task")
    gap_settings(gaps)  # a typo fails before any encoding
    if isinstance(spec_or_clipset, (ClipSet, ImageSet)):
        data = spec_or_clipset
        if load_opts:
            raise ConfigError(f"loader option(s) {', '.join(load_opts)} need a data spec, not a loaded set", "data")
    else:
        load_opts.setdefault("seed", seed)
        data = load_clipset(spec_or_clipset, restrict=restrict, **load_opts)
    is_image = isinstance(data, ImageSet)
    if is_image and takes:
        raise ConfigError("takes (new takes of a clip) are for sound; image sets have none", data.source)
    if is_image and task == "detect":
        raise ConfigError("image data sets support task 'classify' only (streams are for sound events)", data.source)
    if encoder is None:
        n_pixels = int(np.prod(data.images.shape[1:])) if is_image else None
        encoder = default_encoder(
            "image" if is_image else "sound", dt_ms, n_pixels, None if is_image else data.info.get("encoder_preset")
        )
    elif isinstance(encoder, str):
        encoder = encoder_by_name(encoder, data, dt_ms)
    enc_dt = float(encoder.dt_ms)
    if dt_ms is not None and abs(enc_dt - float(dt_ms)) > 1e-9:
        raise ConfigError(
            f"the encoder's time step ({enc_dt:g} ms) differs from the network's ({float(dt_ms):g} ms)", "dt_ms"
        )
    class_names = list(data.class_names)
    info = {
        "source": data.source,
        "task": task,
        "class_names": class_names,
        "encoder": encoder.name,
        "encoder_settings": dict(encoder.settings()),
        "encoder_obj": encoder,
        "dt_ms": enc_dt,
        "n_inputs": int(encoder.n_units),
        "skipped": list(data.skipped),
        "loader_info": dict(data.info),
    }

    if is_image:
        if encoder.name != "rate":
            raise ConfigError(f"image data sets need the rate encoder, not {encoder.name!r}", data.source)
        tr = _encode_images(data, encoder, data.train_idx, progress, 0)
        te = _encode_images(data, encoder, data.test_idx, progress, len(tr))
        train = [Sample(t, int(data.labels[i]), [], f"image{i}") for t, i in zip(tr, data.train_idx)]
        test = [Sample(t, int(data.labels[i]), [], f"image{i}") for t, i in zip(te, data.test_idx)]
        if val_fraction:
            keep, held = carve_validation([int(smp.target) for smp in train], float(val_fraction), seed)
            info["val"] = SpikeDataset([train[i] for i in held], int(encoder.n_units), class_names, task, enc_dt)
            train = [train[i] for i in keep]
        info.update(n_train_items=len(train), n_test_items=len(test))
        return (
            SpikeDataset(train, int(encoder.n_units), class_names, task, enc_dt),
            SpikeDataset(test, int(encoder.n_units), class_names, task, enc_dt),
            info,
        )

    encoded = _encode(data, encoder, cache, progress, workers)
    info["skipped"] += encoded.skipped
    info.update(cache_hits=encoded.hits, cache_misses=encoded.misses)
    labels = data.labels()
    sides = {}
    for side, idx in (("train", data.train_idx), ("test", data.test_idx)):
        sides[side] = [(encoded[i][0], labels[i], data.clips[i]) for i in idx if encoded[i] is not None]
    val_items = []
    if val_fraction:
        keep, held = carve_validation([c for _, c, _ in sides["train"]], float(val_fraction), seed)
        val_items = [sides["train"][i] for i in held]
        sides["train"] = [sides["train"][i] for i in keep]
        info["n_val_items"] = len(val_items)
    per_class = {c: [0, 0] for c in class_names}
    for j, side in enumerate(("train", "test")):
        for _, c, _ in sides[side]:
            per_class[class_names[c]][j] += 1
    info["per_class"] = {c: tuple(v) for c, v in per_class.items()}
    for side in ("train", "test"):
        if not sides[side]:
            raise DatasetError(
                f"no usable {side} clips left after encoding ({len(info['skipped'])} skipped)", data.source
            )
    info.update(n_train_items=len(sides["train"]), n_test_items=len(sides["test"]))
    if takes:
        sides["train"] += _encode_takes(sides["train"], int(takes), encoder, cache, progress, workers, info)

    if task == "classify":

        def clips_to_samples(items):
            return [Sample(t, int(c), [], f"{clip.class_name}/{clip.name}") for t, c, clip in items]

        train, test = clips_to_samples(sides["train"]), clips_to_samples(sides["test"])
        if val_items:
            info["val"] = SpikeDataset(clips_to_samples(val_items), int(encoder.n_units), class_names, task, enc_dt)
    else:
        n_tr = DEFAULT_TRAIN_STREAMS if n_train_streams is None else int(n_train_streams)
        n_te = DEFAULT_TEST_STREAMS if n_test_streams is None else int(n_test_streams)
        if n_tr < 1 or n_te < 1:
            raise ConfigError(f"need at least one train and one test stream, got {n_tr} and {n_te}", "streams")
        if progress is not None:
            progress(0, n_tr + n_te, "splicing streams")
        c = len(class_names)
        mode_gaps, trim = gap_settings(gaps)
        gap_s = mode_gaps if gap_s is None else gap_s
        train = build_streams(
            [(t, k) for t, k, _ in sides["train"]],
            n_tr,
            events_per_stream,
            gap_s,
            seed=[int(seed), 0],
            trim=trim,
            n_classes=c,
            name_prefix="train",
        )
        test = build_streams(
            [(t, k) for t, k, _ in sides["test"]],
            n_te,
            events_per_stream,
            gap_s,
            seed=[int(seed), 1],
            trim=trim,
            n_classes=c,
            name_prefix="test",
        )
        if val_items:
            n_va = n_te if n_val_streams is None else int(n_val_streams)
            val = build_streams(
                [(t, k) for t, k, _ in val_items],
                n_va,
                events_per_stream,
                gap_s,
                seed=[int(seed), 2],
                trim=trim,
                n_classes=c,
                name_prefix="val",
            )
            info["val"] = SpikeDataset(val, int(encoder.n_units), class_names, task, enc_dt)
            info["n_val_streams"] = n_va
        if progress is not None:
            progress(n_tr + n_te, n_tr + n_te, "splicing streams")
        info.update(
            events_per_stream=events_per_stream,
            gap_s=tuple(gap_s),
            gaps=gaps,
            n_train_streams=n_tr,
            n_test_streams=n_te,
        )
    n_in = int(encoder.n_units)
    return (
        SpikeDataset(train, n_in, class_names, task, enc_dt),
        SpikeDataset(test, n_in, class_names, task, enc_dt),
        info,
    )


def carve_validation(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split positions of training items into (kept for training, validation): per class a seeded
    ``fraction`` (at least one item of every class that has two or more)."""
    rng = np.random.default_rng([int(seed), 7])
    keep, held = [], []
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        by_class.setdefault(int(c), []).append(i)
    for c in sorted(by_class):
        idx = by_class[c]
        n_val = min(len(idx) - 1, max(1, int(round(fraction * len(idx))))) if len(idx) >= 2 else 0
        order = rng.permutation(len(idx))
        held += [idx[j] for j in order[:n_val]]
        keep += [idx[j] for j in order[n_val:]]
    return sorted(keep), sorted(held)


def _encode(data: ClipSet, encoder, cache, progress, workers):
    from .cache import encode_clips

    return encode_clips(data.clips, encoder, cache=cache, progress=progress, workers=workers)


def _encode_takes(items, n_takes: int, encoder, cache, progress, workers, info) -> list:
    """``(spikes, label, clip)`` for ``n_takes`` new takes of every item's clip (unusable takes skipped)."""
    from dataclasses import replace

    from .cache import encode_clips

    clips = [replace(clip, take=k) for _, _, clip in items for k in range(1, n_takes + 1)]
    labels = [c for _, c, _ in items for _ in range(n_takes)]
    encoded = encode_clips(clips, encoder, cache=cache, progress=progress, workers=workers)
    info["skipped"] += encoded.skipped
    out = [(e[0], c, clip) for e, c, clip in zip(encoded, labels, clips) if e is not None]
    info.update(n_takes=n_takes, n_train_takes=len(out))
    return out
