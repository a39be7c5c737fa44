"""The ``stca`` command: train, evaluate, detect and encode without the app.

    stca train --data demo --task detect [--objective stca|tdp1|margin] [--epochs N] [--hidden 300 ...]
               [--seed S] [--batch B] [--lr X] [--optimizer sgd|adam] [--out DIR]
    stca eval MODEL_DIR --data DATA
    stca detect MODEL_DIR AUDIO... [--json] [--labels-out PATH [--labels-format audacity|csv]]
               [--truth LABELS [--tolerance-s S]]
    stca export MODEL_DIR --format nir --out model.nir
    stca encode AUDIO... --out FILE.npz            (or --data DATA / --source KIND --root PATH)

DATA is ``demo``, ``rwcp:PATH``, ``medleydb:PATH``, ``folder:PATH``, ``digits`` or ``mnist:PATH``.
Scale-out: ``torchrun --nproc_per_node N -m stca_engine train ...`` (see ``distributed``).

Every ``StcaError`` becomes one line ``stca: error: <message>`` on stderr and exit code 2 (the
same code argparse uses for bad arguments); no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from . import limits
from .defaults import PRESET_NAMES, TRAIN_DEFAULTS, preset_settings, train_defaults  # per task, from the suite
from .errors import ConfigError, StcaError, TrainingError
from .names import DTYPE_NAMES, GAP_MODES, OBJECTIVES, OPTIMIZERS, SELECTIONS, SPLITS, TASKS

EXIT_USAGE = 2
DEFAULT_INIT_STD = 0.05
DATA_HELP = "demo | rwcp:PATH | medleydb:PATH | folder:PATH | digits | mnist:PATH"


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def make_progress(desc: str, enabled: bool = True):
    """A ``progress(done, total, message)`` callback drawing a tqdm bar on stderr (None when off)."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = {"b": None}

    def progress(done: int, total: int, message: str = "") -> None:
        b = bar["b"]
        if b is None or b.total != total:
            if b is not None:
                b.close()
            b = bar["b"] = tqdm(
                total=total, desc=desc, unit="it", leave=False, file=sys.stderr, dynamic_ncols=True, mininterval=0.5
            )
        b.n = done
        if message:
            b.set_postfix_str(message[-60:], refresh=False)
        b.refresh()

    def close() -> None:
        if bar["b"] is not None:
            bar["b"].close()
            bar["b"] = None

    return progress, close


def jsonable(x):
    """Plain JSON values: numpy scalars/arrays to Python, NaN/inf to null."""
    import numpy as np

    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def write_json(path: Path, obj) -> None:
    """Atomic JSON write (``atomic.write_atomic``: regular files only, temp file removed on failure)."""
    from .atomic import write_atomic

    write_atomic(path, (json.dumps(jsonable(obj), indent=2) + "\n").encode("utf-8"))


DETECT_KEYS = (
    "count_accuracy",
    "count_accuracy_floor",
    "stream_accuracy",
    "event_f1",
    "event_precision",
    "event_recall",
    "event_f1_strict",
    "event_precision_strict",
    "event_tp",
    "event_fp",
    "event_fn",
    "loss",
    "mean_clusters",
    "n_no_kplus",
    "n_samples",
)
CLASSIFY_KEYS = (
    "accuracy",
    "accuracy_floor",
    "precision",
    "recall",
    "f1",
    "loss",
    "mean_clusters",
    "n_no_kplus",
    "n_samples",
    "confusion_matrix",
)


def test_block(metrics: dict, task: str) -> dict:
    """The ``test`` block of metrics.json: the task's headline metrics first, then the rest."""
    keys = DETECT_KEYS if task == "detect" else CLASSIFY_KEYS
    out = {k: metrics[k] for k in keys if k in metrics}
    for k, v in metrics.items():
        if k not in out and k != "accuracy":
            out[k] = v
    return jsonable(out)


def format_block(block: dict) -> str:
    parts = []
    for k, v in block.items():
        if k == "confusion_matrix":
            continue
        if isinstance(v, float):
            parts.append(f"{k}={v:.4f}")
        else:
            parts.append(f"{k}={v}")
    return "  ".join(parts)


def _confine_if_configured(path: str) -> None:
    """Dataset paths obey STCA_DATA_ROOTS when the operator set it (SPEC §10)."""
    if os.environ.get("STCA_DATA_ROOTS", "").strip():
        from .roots import confine

        confine(path)


# ------------------------------------------------------------------------------------------------
# argument parsing
# ------------------------------------------------------------------------------------------------
def _number_type(cast, ok, expected: str):
    """An argparse ``type=`` that casts and checks, naming what was expected."""

    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return v

    return parse


_positive_int = _number_type(int, lambda v: v >= 1, "a positive integer")
_takes_count = _number_type(int, lambda v: 0 <= v <= 16, "an integer from 0 to 16")
_nonneg_int = _number_type(int, lambda v: v >= 0, "an integer >= 0")


def _image_count(text: str):
    """``all`` or a positive number of images."""
    return "all" if text.strip().lower() == "all" else _positive_int(text)


_positive_float = _number_type(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
_fraction = _number_type(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
_nonneg_float = _number_type(float, lambda v: math.isfinite(v) and v >= 0.0, "a finite number >= 0")


def _lr_step(text: str | None):
    if text is None:
        return None, 0.1
    epoch, _, factor = text.partition(":")
    try:
        e, f = int(epoch), float(factor) if factor else 0.1
    except ValueError:
        raise ConfigError(f"--lr-step takes EPOCH[:FACTOR], e.g. 50:0.1, got {text!r}", "lr_step") from None
    return e, f


def train_settings(task: str, args=None) -> dict:
    """The run's settings: the task's defaults (``TRAIN_DEFAULTS``), a ``--preset``'s recipe over them, and
    every flag the user set on top."""
    d = train_defaults(task)
    if args is None:
        return d
    if getattr(args, "preset", None):
        p = preset_settings(args.preset)
        p.pop("task")
        p.pop("tau_m_ms", None)
        d.update(p)
    for key in ("objective", "val_fraction", "select", "dropout", "weight_decay", "takes"):  # flag name = setting
        if getattr(args, key, None) is not None:
            d[key] = getattr(args, key)
    aug = dict(d.get("augment", {}))
    for key, attr in (
        ("jitter_steps", "jitter_steps"),
        ("drop", "drop_spikes"),
        ("stretch", "stretch"),
        ("noise_hz", "noise_hz"),
    ):
        if getattr(args, attr, None) is not None:
            aug[key] = getattr(args, attr)
    d["augment"] = aug
    if getattr(args, "lr_step", None) is not None:
        d["lr_step_epoch"], d["lr_step_factor"] = _lr_step(args.lr_step)
    if d.get("select") == "best-val" and not d.get("val_fraction"):
        raise ConfigError("--select best-val needs a validation split (--val-fraction > 0)", "select")
    return d


def _add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--encoder",
        default=None,
        help="sound encoder: spikegram (paper) or spectral (fast); default: the data source's",
    )
    g.add_argument("--classes", default=None, help="comma-separated class names (default: all / the preset)")
    g.add_argument(
        "--streams",
        type=_positive_int,
        default=None,
        help=f"detection: number of training streams (default {TRAIN_DEFAULTS['detect']['streams']})",
    )
    g.add_argument("--test-streams", type=_positive_int, default=None, help="detection: number of test streams")
    g.add_argument("--events", type=_positive_int, default=None, help="detection: events per stream (default 5)")
    g.add_argument(
        "--train-images",
        type=_image_count,
        default=None,
        help="MNIST: how many of the 60 000 training images, drawn with the seed, or 'all' (Table 1's protocol; "
        "about 7 GB of encoded spikes for all 70 000 digits, so raise STCA_MAX_RUN_MB); default 10000",
    )
    g.add_argument(
        "--test-images",
        type=_image_count,
        default=None,
        help="MNIST: how many of the 10 000 test images, or 'all' (Table 1); default 2000",
    )
    g.add_argument(
        "--split",
        choices=SPLITS,
        default=None,
        help="MedleyDB: 'track' (default) keeps every recording on one side; 'random' draws 160 train / 80 test "
        "pieces per instrument at random, the paper's protocol (pieces of one track then sit on both sides)",
    )
    g.add_argument(
        "--gaps",
        choices=GAP_MODES,
        default=None,
        help="detection: how events are spliced into streams: random silent gaps of 0.15-0.5 s between events cut "
        "to their sound (default), or 'paper': one fixed 0.15 s interval, each event keeping its leading silence "
        "(the authors' splicing)",
    )
    g.add_argument(
        "--workers", type=_positive_int, default=None, help="processes for encoding the dataset (default: all cores)"
    )
    g.add_argument("--no-cache", action="store_true", help="do not read or write the encoded-clip cache")


class _Parser(argparse.ArgumentParser):
    """argparse with the same one-line error format as every other error (exit code 2 kept)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"stca: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="stca", description="Train, evaluate and run spiking networks with STCA.")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or status lines")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a network and save it with its metrics")
    t.add_argument("--data", required=True, help=DATA_HELP)
    t.add_argument("--task", default=None, choices=TASKS, help="required unless --preset names it")
    t.add_argument(
        "--preset",
        default=None,
        choices=PRESET_NAMES,
        help="the paper's recipes: mnist (Table 1: 784-800-10, tau_m 25 ms, dropout 0.5, lr/10 at epoch 50, "
        "100 epochs), medleydb (Table 2: 384-700-C, the authors' margin readout) or medleydb-eq10 (the same "
        "with Eq. 10); flags given as well win",
    )
    t.add_argument(
        "--objective",
        default=None,
        choices=OBJECTIVES,
        help="default: detect stca, classify margin (measured on real sound, docs/RESULTS.md); "
        "stca: spike clusters (paper Eq. 9/10); tdp1: a spike-count rule like the authors' "
        "baseline code (N_d single spikes, k+ at the highest sub-threshold peak anywhere, "
        "k- at the last spike), not the threshold-surface rule of TDP1's original paper "
        "(Yu et al. 2018); margin: the authors' code's non-spiking readout (classify)",
    )
    t.add_argument(
        "--tdp1-spikes",
        type=_positive_int,
        default=1,
        help="objective tdp1: spikes asked for per event (the paper's Fig. 4e tries 3, 5, 7, 9, 11; default 1); "
        "counts are the spikes divided by it",
    )
    t.add_argument("--epochs", type=_nonneg_int, default=None)
    t.add_argument(
        "--hidden",
        type=_nonneg_int,
        nargs="+",
        default=None,
        help="hidden layer sizes (default 300); 0 alone: no hidden layer (a single-layer network)",
    )
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument("--batch", type=_positive_int, default=None)
    t.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: the optimiser's preset)")
    t.add_argument("--lr-hidden", type=_positive_float, default=None)
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=None)
    t.add_argument("--out", default=None, help="model folder (default runs/<task>-<objective>-<time>)")
    t.add_argument(
        "--init-std",
        type=_positive_float,
        default=None,
        help=f"initial weight std (default {DEFAULT_INIT_STD:g}; the paper's 0.01 leaves the hidden layer silent "
        "on sparse spikegrams, and a silent network gets no gradient)",
    )
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--dtype", choices=DTYPE_NAMES, default="float32")
    r = t.add_argument_group("generalisation (against memorising the training clips; docs/RESULTS.md)")
    r.add_argument(
        "--val-fraction",
        type=_fraction,
        default=None,
        help="share of the training clips held out for validation (never the test clips)",
    )
    r.add_argument(
        "--takes",
        type=_takes_count,
        default=None,
        help="sound: also train on this many new takes of every training clip (a few per cent faster or "
        "slower, tilted in spectrum, noisier; re-encoded and cached); 0 trains on the recordings alone",
    )
    r.add_argument(
        "--select",
        choices=SELECTIONS,
        default=None,
        help="keep the last epoch's weights or those of the best validation epoch",
    )
    r.add_argument(
        "--no-revive",
        dest="revive",
        action="store_false",
        help="the paper's rule only: do not push silent hidden neurons when an output needs a k⁺ and no step "
        "can take it (a silenced network then stays silent; see stca_engine/revive.py)",
    )
    r.add_argument("--jitter-steps", type=_nonneg_int, default=None, help="training: move each spike by up to N steps")
    r.add_argument(
        "--drop-spikes", type=_fraction, default=None, help="training: drop each spike with this probability"
    )
    r.add_argument("--stretch", type=_fraction, default=None, help="training: time-stretch each sample by up to ±this")
    r.add_argument(
        "--noise-hz", type=_nonneg_float, default=None, help="training: random extra spikes per afferent per s"
    )
    r.add_argument("--dropout", type=_fraction, default=None, help="dropout on the hidden layers' spikes (training)")
    r.add_argument("--weight-decay", type=_nonneg_float, default=None, help="L2 weight decay in the optimiser")
    r.add_argument(
        "--lr-step",
        default=None,
        metavar="EPOCH[:FACTOR]",
        help="multiply the learning rates by FACTOR (default 0.1) after epoch EPOCH",
    )
    n = t.add_argument_group("neuron constants (SPEC §2 defaults)")
    n.add_argument("--dt-ms", type=_positive_float, default=3.0)
    n.add_argument("--tau-m-ms", type=_positive_float, default=None, help="default 30 (a --preset may set it)")
    n.add_argument("--tau-s-ms", type=_positive_float, default=None, help="default tau_m / 4")
    n.add_argument("--theta", type=_positive_float, default=1.0)
    n.add_argument("--alpha", type=_positive_float, default=2.0)
    n.add_argument("--t-in-ms", type=_positive_float, default=141.0)
    _add_data_options(t)

    e = sub.add_parser("eval", help="evaluate a saved model on a data set's test part")
    e.add_argument("model", help="model folder (from stca train)")
    e.add_argument("--data", required=True, help=DATA_HELP)
    e.add_argument("--batch", type=_positive_int, default=32)
    e.add_argument("--seed", type=_nonneg_int, default=None, help="data seed (default: the training run's)")
    e.add_argument("--out", default=None, help="where to write the metrics (default MODEL/eval.json)")
    e.add_argument("--device", default="auto")
    e.add_argument(
        "--per-event",
        action="store_true",
        help="detection models: also classify each single test event (one clip) by the output with the highest "
        "peak voltage, the authors' metric of the paper's Fig. 4e",
    )
    _add_data_options(e)

    d = sub.add_parser("detect", help="detect events in whole recordings with a trained detection model")
    d.add_argument("model", help="model folder (from stca train --task detect)")
    d.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, mp3, ...), any length")
    d.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    d.add_argument(
        "--chunk-seconds",
        type=_positive_float,
        default=60.0,
        help="run the network in pieces this long (state carried across; results do not change)",
    )
    d.add_argument("--min-spikes", type=_positive_int, default=1, help="drop clusters with fewer spikes")
    d.add_argument(
        "--labels-out",
        default=None,
        metavar="PATH",
        help="write the detections as labels: with one recording PATH is the file (unless it is an "
        "existing folder); with several PATH is a folder holding one <recording stem>.txt "
        "(or .csv) per recording",
    )
    d.add_argument(
        "--labels-format",
        choices=["audacity", "csv"],
        default=None,
        help="audacity: start<TAB>end<TAB>label (Audacity's label track); csv: with a header row "
        "(default: csv when PATH ends in .csv, else audacity)",
    )
    d.add_argument(
        "--truth",
        default=None,
        metavar="LABELS",
        help="ground truth as an Audacity label file (one recording) or a folder of "
        "<recording stem>.txt files (several): prints event precision / recall / F1",
    )
    d.add_argument(
        "--tolerance-s",
        type=_nonneg_float,
        default=None,
        help="scoring: a detection hits an event of its class when it overlaps the event widened by "
        "this many seconds on each side (default 0.1)",
    )
    d.add_argument(
        "--no-segment",
        action="store_true",
        help="encode each recording as one piece instead of sound region by sound region",
    )

    x = sub.add_parser("export", help="write a saved model in another format (NIR, docs/NIR.md)")
    x.add_argument("model", help="model folder (from stca train)")
    x.add_argument(
        "--format",
        required=True,
        choices=["nir"],
        help="nir: the Neuromorphic Intermediate Representation (HDF5 .nir file)",
    )
    x.add_argument("--out", required=True, help="output file, e.g. model.nir")

    c = sub.add_parser("encode", help="encode audio (or a whole data set) into spikegrams (.npz)")
    c.add_argument("audio", nargs="*", help="audio files")
    c.add_argument("--out", required=True, help="output .npz")
    c.add_argument("--data", default=None, help="encode a whole data set instead: " + DATA_HELP)
    c.add_argument(
        "--source",
        default=None,
        choices=["demo", "rwcp", "medleydb", "folder"],
        help="with --root: the data set kind (same as --data KIND:ROOT)",
    )
    c.add_argument("--root", default=None, help="data set folder for --source")
    c.add_argument("--encoder", default="spikegram", help="spikegram | spectral (default spikegram)")
    c.add_argument("--workers", type=_positive_int, default=None)
    c.add_argument("--no-cache", action="store_true")
    return p


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def _data_kwargs(args) -> dict:
    """Options for ``prepare_datasets`` that the user set (unset ones keep the source's defaults)."""
    kw = {}
    if getattr(args, "classes", None):
        kw["classes"] = [c.strip() for c in args.classes.split(",") if c.strip()]
    if getattr(args, "streams", None) is not None:
        kw["n_train_streams"] = args.streams
    if getattr(args, "test_streams", None) is not None:
        kw["n_test_streams"] = args.test_streams
    if getattr(args, "events", None) is not None:
        kw["events_per_stream"] = args.events
    if getattr(args, "train_images", None) is not None:
        kw["n_train"] = args.train_images
    if getattr(args, "test_images", None) is not None:
        kw["n_test"] = args.test_images
    if getattr(args, "gaps", None) is not None:
        kw["gaps"] = args.gaps
    if getattr(args, "split", None) is not None:
        kw["split"] = args.split
    if getattr(args, "workers", None) is not None:
        kw["workers"] = args.workers
    if getattr(args, "no_cache", False):
        kw["cache"] = False
    return kw


def _is_image_spec(spec: str) -> bool:
    from .data import sources

    try:
        return sources.parse_data_spec(spec).is_image
    except Exception:  # a bad spec is reported by the loader, with its own message
        return False


def _check_data_spec(spec: str):
    from .data import sources

    parsed = sources.parse_data_spec(spec)
    path = getattr(parsed, "path", None)
    if path:
        _confine_if_configured(path)
    return parsed


def prepare(spec: str, task: str, encoder=None, seed: int = 0, quiet: bool = False, dt_ms: float = 3.0, **kw):
    """``(train, test, info)`` for a data spec, with a progress bar while encoding."""
    from .data import sources

    _check_data_spec(spec)
    progress, close = make_progress("encoding", not quiet)
    try:
        return sources.prepare_datasets(spec, task, encoder=encoder, seed=seed, progress=progress, dt_ms=dt_ms, **kw)
    finally:
        close()


# ------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------
def _check_run_memory(sizes, tc, train, test, val):
    """The run's memory estimate (``stca_engine.memory``); ConfigError above ``STCA_MAX_RUN_MB``."""
    from .memory import check_run, dataset_spike_bytes, estimate_run, longest_steps

    est = estimate_run(
        sizes,
        longest_steps(train, test, val),
        tc.batch_size,
        tc.dtype,
        tc.optimizer,
        tc.momentum,
        data_bytes=dataset_spike_bytes(train, test, val),
    )
    return check_run(est, "stca train")


def cmd_train(args) -> int:
    import torch

    from . import distributed as D
    from .checkpoint import save_model
    from .config import NeuronConfig, TrainConfig
    from .network import build_network
    from .trainer import Trainer

    preset = preset_settings(args.preset) if args.preset else {}
    if args.task is None and not preset:
        raise ConfigError("--task is required (detect or classify), or a --preset that names it", "stca train")
    if args.task is not None and preset and args.task != preset["task"]:
        raise ConfigError(f"--preset {args.preset} is for --task {preset['task']}, not {args.task}", "stca train")
    args.task = args.task or preset["task"]
    defaults = train_settings(args.task, args)
    tau_m = args.tau_m_ms if args.tau_m_ms is not None else preset.get("tau_m_ms", 30.0)
    tau_s = args.tau_s_ms if args.tau_s_ms is not None else tau_m / 4.0
    neuron_cfg = NeuronConfig(
        dt_ms=args.dt_ms,
        tau_m_ms=tau_m,
        tau_s_ms=tau_s,
        theta=args.theta,
        alpha=args.alpha,
        t_in_ms=args.t_in_ms,
    )
    tc = TrainConfig(
        task=args.task,
        objective=defaults["objective"],
        hidden=_hidden_layers(args.hidden) if args.hidden else list(defaults["hidden"]),
        epochs=args.epochs if args.epochs is not None else defaults["epochs"],
        batch_size=args.batch if args.batch is not None else defaults["batch"],
        optimizer=args.optimizer or defaults["optimizer"],
        lr=args.lr if args.lr is not None else defaults["lr"],
        lr_hidden=args.lr_hidden,
        seed=args.seed,
        init_std=args.init_std if args.init_std is not None else DEFAULT_INIT_STD,
        device=args.device,
        dtype=args.dtype,
        augment=defaults.get("augment", {}),
        dropout=defaults.get("dropout", 0.0),
        weight_decay=defaults.get("weight_decay", 0.0),
        lr_step_epoch=defaults.get("lr_step_epoch"),
        lr_step_factor=defaults.get("lr_step_factor", 0.1),
        select=defaults.get("select", "last"),
        revive=args.revive,
        tdp1_spikes=args.tdp1_spikes,
    ).validate()

    ctx = D.setup(None if args.device == "auto" else args.device)
    try:
        quiet = args.quiet or not ctx.is_main
        out = (
            Path(args.out)
            if args.out
            else Path("runs") / f"{args.task}-{tc.objective}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        if out.exists() and not out.is_dir():
            raise ConfigError("is a file, not a folder for the model", out)
        if ctx.enabled:
            torch.manual_seed(args.seed)
            if not ctx.is_main:
                D.barrier(ctx)  # rank 0 encodes first; the others then read the on-disk cache
        data_kw = _data_kwargs(args)
        if args.task == "detect" and "n_train_streams" not in data_kw and defaults["streams"]:
            data_kw["n_train_streams"] = defaults["streams"]
        if defaults.get("val_fraction"):
            data_kw["val_fraction"] = defaults["val_fraction"]
        if defaults.get("takes") and (getattr(args, "takes", None) is not None or not _is_image_spec(args.data)):
            data_kw["takes"] = defaults["takes"]
        encoder = _encoder_name(args.encoder) if args.encoder else None  # built for the source (its preset)
        train, test, info = prepare(
            args.data, args.task, encoder=encoder, seed=args.seed, quiet=quiet, dt_ms=neuron_cfg.dt_ms, **data_kw
        )
        if ctx.enabled and ctx.is_main:
            D.barrier(ctx)
        _say(f"data: {_describe(train, test, info)}", quiet)
        device = tc.resolved_device() if not ctx.enabled else ctx.device
        sizes = [train.n_inputs, *tc.hidden, len(train.class_names)]
        val = info.get("val") if isinstance(info, dict) else None
        if tc.select == "best-val" and (val is None or len(val) == 0):
            tc.select = "last"
            _say("too few training clips to hold some out for validation: keeping the last epoch", quiet)
        est = _check_run_memory(sizes, tc, train, test, val)
        _say(f"memory: {est.describe()} (the limit is {limits.max_run_mb():g} MB, {limits.ENV_MAX_RUN_MB})", quiet)
        net = build_network(tc, neuron_cfg, train.n_inputs, len(train.class_names), device=device)
        D.check_batches(len(train), tc.batch_size, ctx)
        t_net, t_train = D.prepare_trainer_inputs(net, train, ctx)
        trainer = Trainer(t_net, t_train, test, neuron_cfg, tc, val=val)
        _say(
            f"network: {'-'.join(map(str, sizes))}, objective {tc.objective}, optimizer {tc.optimizer} "
            f"(lr {', '.join(f'{x:.3g}' for x in trainer.lrs)}), {tc.epochs} epochs, batch {tc.batch_size}, "
            f"device {device}" + (f", {ctx.world_size} processes" if ctx.enabled else ""),
            quiet,
        )

        epochs: list[dict] = []
        encoder_settings = _encoder_settings(info, encoder)
        extra = {
            "data": args.data,
            "init_std": net.init_std,
            "data_options": jsonable(data_kw),
            "seed": args.seed,
            "n_train": len(train),
            "n_test": len(test),
        }
        metrics_path = out / "metrics.json"
        t_start = time.perf_counter()

        for epoch in range(1, tc.epochs + 1):
            progress, close = make_progress(f"epoch {epoch}/{tc.epochs}", not quiet)
            try:
                report = trainer.step_epoch(progress=progress)
            except TrainingError as exc:
                # the Trainer put back the last good weights: keep them and the epochs so far
                if ctx.is_main:
                    save_model(
                        out,
                        net,
                        neuron_cfg,
                        tc,
                        class_names=list(train.class_names),
                        encoder_settings=encoder_settings,
                        extra={**extra, "stopped": str(exc)},
                    )
                    write_json(metrics_path, {"epochs": epochs, "test": None, "stopped": str(exc)})
                raise
            finally:
                close()
            D.merge_report(report, len(train), tc.batch_size, len(train.class_names), tc.task, ctx)
            row = {
                "epoch": report.epoch,
                "train_loss": report.train_loss,
                "test_loss": report.test_loss,
                "test_accuracy": report.test_accuracy,
                "train_accuracy": report.train_accuracy,
                "mean_clusters": report.mean_clusters,
                "n_no_kplus": report.n_no_kplus,
                "n_revived": report.n_revived,
                "seconds": report.seconds,
                "silent_layers": report.silent_layers,
            }
            for k in ("count_accuracy", "stream_accuracy", "event_f1", "f1"):
                if k in report.test_metrics:
                    row[f"test_{k}"] = report.test_metrics[k]
            if report.val_metrics:
                row["val_accuracy"] = report.val_metrics["accuracy"]
                row["val_loss"] = report.val_metrics["loss"]
            epochs.append(jsonable(row))
            _say(
                f"epoch {report.epoch:3d}: train loss {report.train_loss:.4f}  test loss {report.test_loss:.4f}  "
                f"test accuracy {report.test_accuracy:.4f}"
                + (f"  val accuracy {report.val_metrics['accuracy']:.4f}" if report.val_metrics else "")
                + (
                    f"  event F1 {report.test_metrics['event_f1']:.4f}"
                    if isinstance(report.test_metrics.get("event_f1"), float)
                    and math.isfinite(report.test_metrics["event_f1"])
                    else ""
                )
                + f"  ({report.seconds:.1f} s)"
                + _silent_warning(report),
                quiet,
            )
            if quiet and report.silent_layers:  # a warning, not a status line: shown even with --quiet
                print(f"stca: epoch {report.epoch}:{_silent_warning(report)}", file=sys.stderr, flush=True)
            if ctx.is_main:  # keep a readable record while the run goes on
                write_json(metrics_path, {"epochs": epochs, "test": None, "running": True})

        selected = None
        if tc.select == "best-val" and trainer.history:
            selected = trainer.restore_best()
            _say(
                f"kept the weights of epoch {selected} (best validation accuracy "
                f"{trainer.best[1]:.4f}); the test set was not used to choose it",
                quiet,
            )
            metrics = trainer.evaluate()
        else:
            metrics = trainer.evaluate() if tc.epochs == 0 or not trainer.history else trainer.history[-1].test_metrics
        block = test_block(metrics, tc.task)
        if ctx.is_main:
            save_model(
                out,
                net,
                neuron_cfg,
                tc,
                class_names=list(train.class_names),
                encoder_settings=encoder_settings,
                extra=extra,
            )
            write_json(
                metrics_path,
                {
                    "epochs": epochs,
                    "test": block,
                    "task": tc.task,
                    "objective": tc.objective,
                    "data": args.data,
                    "seconds": time.perf_counter() - t_start,
                    "processes": ctx.world_size,
                    "select": tc.select,
                    "selected_epoch": selected if selected is not None else len(epochs),
                },
            )
            print(f"test: {format_block(block)}")
            print(f"saved {out}/model.safetensors, config.json, metrics.json")
        return 0
    finally:
        D.teardown(ctx)


def _hidden_layers(sizes: list[int]) -> list[int]:
    """``--hidden 300 100`` → [300, 100]; ``--hidden 0`` → [] (inputs straight to the outputs)."""
    if list(sizes) == [0]:
        return []
    if 0 in sizes:
        raise ConfigError(
            f"--hidden: a layer of 0 neurons is only allowed alone (no hidden layer), got {sizes}", "stca train"
        )
    return list(sizes)


def _silent_warning(report) -> str:
    """Tail of the epoch line when layers went silent (no spikes; output: no k⁺ could be placed)."""
    silent = report.silent_layers
    if not silent:
        return ""
    return (
        f"  WARNING: silent {', '.join(silent)} (no spikes this epoch"
        + ("; the output's needed k⁺ found no step that depends on the weights" if "output" in silent else "")
        + (
            f"; {report.n_revived} silent hidden (sample, neuron) pairs pushed up to revive it"
            if report.n_revived
            else ""
        )
        + "; try a larger --init-std or a smaller --lr)"
    )


def _describe(train, test, info) -> str:
    task = train.task
    unit = "streams" if task == "detect" else "samples"
    s = f"{len(train)} train / {len(test)} test {unit}, {len(train.class_names)} classes, {train.n_inputs} inputs"
    if isinstance(info, dict) and info.get("encoder"):
        s += f", encoder {info['encoder']}"
    if isinstance(info, dict) and info.get("n_takes"):
        s += f"\ntakes: {info['n_train_takes']} new takes ({info['n_takes']} per training clip) join the training clips"
    of = ((info.get("loader_info") or {}).get("images_of") or {}) if isinstance(info, dict) else {}
    if of:
        n_tr, n_te = info.get("n_train_items", 0) + len(info.get("val") or ()), info.get("n_test_items", 0)
        if n_tr < of["train"] or n_te < of["test"]:
            s += (
                f"\nimages: {n_tr} of the {of['train']} training and {n_te} of the {of['test']} test images "
                "(--train-images all --test-images all for the whole sets, as Table 1)"
            )
    skipped = list(info.get("skipped") or []) if isinstance(info, dict) else []
    if skipped:
        shown = SKIPPED_SHOWN
        s += f"\nskipped {len(skipped)} file(s):" + "".join(f"\n  {p}: {r}" for p, r in skipped[:shown])
        if len(skipped) > shown:
            s += f"\n  ... and {len(skipped) - shown} more"
    return s


SKIPPED_SHOWN = 20  # skipped files listed one per line in `stca train`'s data summary


def _encoder_name(name: str):
    """A checked ``--encoder`` name; the data sources build it for the data set, so a bare
    ``spikegram`` keeps the source's preset (MedleyDB: 384 afferents). ``NAME:key=value,...`` gives
    an encoder with exactly those settings."""
    from .encoders import ENCODER_NAMES

    if ":" in name:
        return _make_encoder(name)
    if name not in ENCODER_NAMES:
        raise ConfigError(f"unknown encoder {name!r} (known: {', '.join(ENCODER_NAMES)})", "encoder")
    return name


def _make_encoder(spec):
    """An encoder from a name (``--encoder``) or from settings stored with a model / a data set."""
    from .encoders import encoder_from_settings, make_encoder

    if isinstance(spec, dict):
        settings = {k: v for k, v in spec.items() if k != "name"}
        if "encoder" not in settings and spec.get("name"):
            settings["encoder"] = spec["name"]
        if settings.get("encoder") == "rate":  # image rate coding lives with the image loaders
            from .data.mnist import RateImageEncoder

            settings.pop("encoder")
            try:
                return RateImageEncoder(**settings)
            except TypeError as exc:
                raise ConfigError(f"bad rate-coding settings {settings}: {exc}", "encoder") from None
        return encoder_from_settings(settings)
    name, _, rest = str(spec).partition(":")
    settings = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"encoder settings are key=value pairs, got {item!r}", "encoder")
        settings[key.strip()] = _setting_value(value.strip())
    return make_encoder(name.strip(), **settings)


def _setting_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _encoder_settings(info, encoder) -> dict | None:
    """JSON-able description of the encoder the data went through (stored with the model)."""
    enc = encoder
    if isinstance(info, dict):
        if info.get("encoder_settings") is not None:
            return jsonable(info["encoder_settings"])
        enc = info.get("encoder_obj", enc) or enc
    if enc is None:
        return None
    settings = enc.settings() if hasattr(enc, "settings") else {}
    return jsonable({"name": getattr(enc, "name", None), **settings})


def _load(model_dir: str, device: str = "auto"):
    from .checkpoint import load_model

    dev = None if device == "auto" else device
    return load_model(model_dir, device=dev)


def cmd_eval(args) -> int:
    from .trainer import evaluate

    net, info = _load(args.model, args.device)
    task = info.task or "detect"
    objective = info.objective or "stca"
    extra = info.extra or {}
    # the training run's data options (stream counts, classes) rebuild the same test set
    data_kw = {**(extra.get("data_options") or {}), **_data_kwargs(args)}
    seed = args.seed if args.seed is not None else int(extra.get("seed", 0))
    encoder = (
        _encoder_name(args.encoder)
        if args.encoder
        else (_make_encoder(info.encoder_settings) if info.encoder_settings else None)
    )
    _, test, _ = prepare(
        args.data, task, encoder=encoder, seed=seed, quiet=args.quiet, dt_ms=info.neuron_cfg.dt_ms, **data_kw
    )
    if info.class_names and list(test.class_names) != list(info.class_names):
        raise ConfigError(
            f"the data's classes {list(test.class_names)} differ from the model's {list(info.class_names)}", args.data
        )
    tdp1_spikes = info.train_config.tdp1_spikes if info.train_config is not None else 1
    progress, close = make_progress("evaluating", not args.quiet)
    try:
        metrics = evaluate(
            net,
            test,
            info.neuron_cfg,
            task,
            objective,
            batch_size=args.batch,
            progress=progress,
            tdp1_spikes=tdp1_spikes,
        )
    finally:
        close()
    block = test_block(metrics, task)
    if args.per_event:
        if task != "detect":
            raise ConfigError(
                "--per-event is for detection models (a classifier is judged per clip already)", args.model
            )
        block.update(_per_event_block(net, info, args, encoder, seed, data_kw))
    out = Path(args.out) if args.out else Path(args.model) / "eval.json"
    write_json(out, {"test": block, "data": args.data, "model": str(args.model), "task": task, "objective": objective})
    print(json.dumps(block))
    _say(f"wrote {out}", args.quiet)
    return 0


def _per_event_block(net, info, args, encoder, seed: int, data_kw: dict) -> dict:
    """The test clips of the same split, one event each, classified by the output neuron whose voltage
    peaks highest (the authors' per-event metric of the paper's Fig. 4e)."""
    from .trainer import evaluate

    kw = {k: v for k, v in data_kw.items() if k in ("classes", "split", "workers", "cache")}  # the clip split only
    _, clips, _ = prepare(
        args.data, "classify", encoder=encoder, seed=seed, quiet=args.quiet, dt_ms=info.neuron_cfg.dt_ms, **kw
    )
    m = evaluate(net, clips, info.neuron_cfg, "classify", "margin", batch_size=args.batch)
    return {"per_event_accuracy": m["accuracy"], "per_event_f1": m["f1"], "per_event_n": m["n_samples"]}


def encode_audio_file(path: str, encoder, dt_ms: float | None = None, segment: bool = True):
    """One recording (any length) as a ``SpikeTrain`` (see ``detect.encode_recording``: each sound
    region encoded on its own, as training encoded each event; long ones in pieces)."""
    from .audio import load_audio
    from .detect import encode_recording

    sr = int(encoder.settings().get("sr", 16000)) if hasattr(encoder, "settings") else 16000
    wave = load_audio(path, sr=sr, warn=lambda msg: print(f"stca: warning: {msg}", file=sys.stderr, flush=True))
    return encode_recording(wave, sr, encoder, segment=segment)


def _as_train(result, path):
    """Encoders return a SpikeTrain or (SpikeTrain, report)."""
    if isinstance(result, tuple):
        result = result[0]
    return result


def _label_targets(paths: list[str], out: str, fmt: str | None) -> tuple[list[Path], str]:
    """Where ``--labels-out`` writes each recording's labels, and the format.

    One recording: ``out`` is the file, unless it is an existing folder. Several: ``out`` is a folder
    (made when missing) with one ``<stem>.txt`` / ``<stem>.csv`` per recording (``<stem>-2`` ... when
    two recordings share a stem).
    """
    target = Path(out)
    single = len(paths) == 1 and not target.is_dir()
    if fmt is None:
        fmt = "csv" if single and target.suffix.lower() == ".csv" else "audacity"
    if single:
        return [target], fmt
    if target.exists() and not target.is_dir():
        raise ConfigError(
            f"is a file, but with {len(paths)} recordings --labels-out must be a folder (one label file per recording)",
            out,
        )
    ext = ".csv" if fmt == "csv" else ".txt"
    seen: dict[str, int] = {}
    files = []
    for path in paths:
        stem = Path(path).stem or "recording"
        seen[stem] = seen.get(stem, 0) + 1
        files.append(target / (stem + (f"-{seen[stem]}" if seen[stem] > 1 else "") + ext))
    return files, fmt


def _truth_files(paths: list[str], truth: str) -> list[Path]:
    """The ground-truth label file of each recording: ``truth`` itself for one recording (or
    ``truth/<stem>.txt`` when it is a folder), ``truth/<stem>.txt`` for several."""
    t = Path(truth)
    if len(paths) == 1 and not t.is_dir():
        return [t]
    if not t.is_dir():
        raise ConfigError(
            f"with {len(paths)} recordings --truth must be a folder of <recording stem>.txt label files", truth
        )
    return [t / (Path(p).stem + ".txt") for p in paths]


def format_table(rows: list[dict]) -> str:
    """The detection table with every column as wide as its longest entry (header included)."""
    header = ["file", "class", "start_s", "end_s", "spikes"]
    cells = [
        [str(r["file"]), str(r["class"]), f"{r['start_s']:.3f}", f"{r['end_s']:.3f}", str(r["n_spikes"])] for r in rows
    ]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    left = (True, True, False, False, False)

    def line(vals):
        return " ".join(v.ljust(w) if lft else v.rjust(w) for v, w, lft in zip(vals, widths, left)).rstrip()

    return "\n".join([line(header)] + [line(c) for c in cells])


def cmd_detect(args) -> int:
    from .atomic import write_atomic
    from .detect import detect_events
    from .labels import DEFAULT_TOLERANCE_S, format_labels, format_score, merge_scores, read_labels, score_events

    net, info = _load(args.model)
    if (info.task or "detect") != "detect":
        raise ConfigError(
            f"was trained for task {info.task!r}; stca detect needs a detection model (stca train --task detect)",
            args.model,
        )
    if not info.encoder_settings:
        raise ConfigError("holds no encoder settings, so recordings cannot be encoded as in training", args.model)
    encoder = _make_encoder(info.encoder_settings)
    class_names = info.class_names or [f"class{i}" for i in range(net.sizes[-1])]
    cfg = info.neuron_cfg
    chunk_steps = max(1, int(round(args.chunk_seconds * 1000.0 / cfg.dt_ms)))
    tolerance = DEFAULT_TOLERANCE_S if args.tolerance_s is None else float(args.tolerance_s)
    label_files, label_fmt = (
        _label_targets(args.audio, args.labels_out, args.labels_format)
        if args.labels_out
        else ([None] * len(args.audio), None)
    )
    # every ground-truth file is read (and its errors reported) before any recording is run
    truths = [read_labels(f) for f in _truth_files(args.audio, args.truth)] if args.truth else [None] * len(args.audio)
    rows, scores = [], []
    for path, label_file, truth in zip(args.audio, label_files, truths):
        if os.environ.get("STCA_DATA_ROOTS", "").strip():
            _confine_if_configured(path)
        spikes = encode_audio_file(path, encoder, cfg.dt_ms, segment=not args.no_segment)
        result = detect_events(
            net, cfg, spikes, class_names, chunk_steps=chunk_steps, keep_voltages=False, min_spikes=args.min_spikes
        )
        for ev in result.events:
            row = {
                "file": path,
                "class": ev["class"],
                "start_s": ev["start_s"],
                "end_s": ev["end_s"],
                "n_spikes": ev["n_spikes"],
            }
            if args.json:
                print(json.dumps(row), flush=True)
            rows.append(row)
        if label_file is not None:
            write_atomic(label_file, format_labels(result.events, label_fmt, file=path).encode())
            _say(f"wrote {label_file}", args.quiet)
        if truth is not None:
            scores.append((path, score_events(result.events, truth, tolerance, class_names)))
        _say(f"{path}: {len(result.events)} event(s) in {spikes.duration_s:.2f} s", args.quiet)
    if not args.json:
        print(format_table(rows))
    keys = ("tp", "fp", "fn", "precision", "recall", "f1")
    for path, sc in scores:
        if args.json:
            print(
                json.dumps(
                    {
                        "file": path,
                        "score": {
                            **{k: sc[k] for k in keys},
                            "tolerance_s": sc["tolerance_s"],
                            "per_class": sc["per_class"],
                        },
                    }
                )
            )
        else:
            print(f"score {path}: {format_score(sc)}")
            width = max(len(c) for c in sc["per_class"])
            for c, pc in sc["per_class"].items():
                if pc["tp"] + pc["fp"] + pc["fn"]:
                    print(f"  {c:<{width}}  {format_score(pc)}")
    if len(scores) > 1:
        total = merge_scores([sc for _, sc in scores])
        print(
            json.dumps({"total": total})
            if args.json
            else f"score (all {len(scores)} recordings): {format_score(total)}"
        )
    return 0


def save_spikegrams(path, trains, names, labels=None, class_names=None, encoder_settings=None) -> None:
    """Spike trains in one ``.npz``: ``times``/``units`` concatenated, ``offsets`` [n+1] into them,
    ``n_steps``, ``names``, ``labels`` (−1 = none), ``class_names``, ``n_units``, ``dt_ms`` and the
    encoder settings as JSON. Read back with ``load_spikegrams``."""
    import numpy as np

    path = Path(path)
    if not trains:
        raise ConfigError("nothing to write: no spike trains", path)
    from .atomic import check_target, write_atomic_with

    check_target(path)  # before any work: a device, folder or FIFO is refused, naming --out
    offsets = np.concatenate([[0], np.cumsum([t.n_spikes for t in trains])]).astype(np.int64)
    write_atomic_with(
        path,
        lambda f: np.savez_compressed(
            f,
            times=np.concatenate([t.times for t in trains]).astype(np.int64),
            units=np.concatenate([t.units for t in trains]).astype(np.int32),
            offsets=offsets,
            n_steps=np.array([t.n_steps for t in trains], dtype=np.int64),
            names=np.array([str(n) for n in names]),
            labels=np.array([-1 if v is None else int(v) for v in (labels or [None] * len(trains))], dtype=np.int64),
            class_names=np.array(list(class_names or []), dtype=str),
            n_units=np.int64(trains[0].n_units),
            dt_ms=np.float64(trains[0].dt_ms),
            encoder=np.array(json.dumps(jsonable(encoder_settings or {}))),
        ),
    )


def load_spikegrams(path):
    """Inverse of ``save_spikegrams``: ``(trains, names, labels, class_names, encoder_settings)``."""
    import numpy as np

    from .data.types import SpikeTrain

    with np.load(path, allow_pickle=False) as z:
        off, n_steps = z["offsets"], z["n_steps"]
        trains = [
            SpikeTrain(
                z["times"][off[i] : off[i + 1]],
                z["units"][off[i] : off[i + 1]],
                int(z["n_units"]),
                int(n_steps[i]),
                float(z["dt_ms"]),
            )
            for i in range(len(n_steps))
        ]
        return (
            trains,
            [str(s) for s in z["names"]],
            [int(v) for v in z["labels"]],
            [str(s) for s in z["class_names"]],
            json.loads(str(z["encoder"])),
        )


def cmd_encode(args) -> int:
    spec = args.data
    if args.source:
        if args.source == "demo":
            spec = "demo"
        else:
            if not args.root:
                raise ConfigError(f"--source {args.source} needs --root PATH", "stca encode")
            spec = f"{args.source}:{args.root}"
    elif args.root:
        raise ConfigError("--root needs --source KIND", "stca encode")
    if spec and args.audio:
        raise ConfigError("give either audio files or a data set (--data / --source), not both", "stca encode")
    if not spec and not args.audio:
        raise ConfigError(
            "nothing to encode: give audio files, --data DATA or --source KIND --root PATH", "stca encode"
        )
    from .atomic import check_target

    check_target(args.out)  # refuse a device, folder or FIFO as --out before encoding anything
    encoder = _make_encoder(args.encoder)
    if spec:
        from .data import sources
        from .data.cache import encode_clips

        _check_data_spec(spec)
        clipset = sources.load_clipset(spec)
        if not hasattr(clipset, "clips"):
            raise ConfigError("is an image set; stca encode writes spikegrams of sound data sets", spec)
        encoder = sources.encoder_by_name(args.encoder, clipset)  # a bare spikegram keeps the source's preset
    settings = {
        "name": getattr(encoder, "name", args.encoder),
        **(encoder.settings() if hasattr(encoder, "settings") else {}),
    }
    dt_ms = float(getattr(encoder, "dt_ms", 3.0))
    if spec:
        progress, close = make_progress("encoding", not args.quiet)
        try:
            enc = encode_clips(clipset.clips, encoder, cache=not args.no_cache, progress=progress, workers=args.workers)
        finally:
            close()
        trains, names, labels = [], [], []
        for clip, item in zip(clipset.clips, enc):
            if item is None:
                continue
            trains.append(_as_train(item, clip.path))
            names.append(clip.name)
            labels.append(clipset.class_names.index(clip.class_name))
        save_spikegrams(args.out, trains, names, labels, clipset.class_names, settings)
        _say(f"wrote {len(trains)} spikegrams to {args.out}", args.quiet)
        return 0
    trains = []
    for path in args.audio:
        _confine_if_configured(path)
        trains.append(encode_audio_file(path, encoder, dt_ms))
        tr = trains[-1]
        _say(f"{path}: {tr.n_spikes} spikes, {tr.n_units} afferents, {tr.duration_s:.2f} s", args.quiet)
    save_spikegrams(args.out, trains, args.audio, None, None, settings)
    _say(f"wrote {len(trains)} spikegrams to {args.out}", args.quiet)
    return 0


def cmd_export(args) -> int:
    from .nir_export import export_nir

    out = export_nir(args.model, args.out)
    _say(f"wrote {out} (NIR; mapping and its limits: docs/NIR.md)", args.quiet)
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "detect": cmd_detect, "encode": cmd_encode, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stca`` / ``python -m stca_engine``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad arguments
    try:
        return COMMANDS[args.command](args)
    except StcaError as exc:
        msg = " ".join(str(exc).split("\n"))
        print(f"stca: error: {msg}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stca: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `stca detect ... | head`
        return 0
    except OSError as exc:  # disk full, permission denied on --out, ...
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"stca: error: {where}{exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
