"""Model checkpoints: weights in safetensors, everything else in a JSON config; checked on load.

A model is a folder with two files:

* ``model.safetensors`` – one tensor per layer, ``weights.<i>`` of shape ``[sizes[i+1], sizes[i]]``;
* ``config.json`` – format name and version, layer sizes, dtype, neuron constants, whether the
  output layer spikes, class names, task, objective, encoder and training settings, free ``extra``
  data and the SHA-256 of the weights file (so a config paired with another save's weights is caught).

Nothing is ever unpickled. Loading checks the JSON against the schema below, the tensors against the
sizes, the dtype, finiteness and the checksum; each problem raises ``CheckpointError`` naming the file
and what does not match. The app moves models as one ``.zip`` holding both files
(``model_to_zip_bytes`` / ``model_from_zip_bytes``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .atomic import write_atomic
from .config import DTYPES, OBJECTIVES, TASKS, NeuronConfig, TrainConfig
from .errors import CheckpointError, ConfigError, StcaError
from .version import __version__

FORMAT = "stca-studio-model"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_WEIGHTS_BYTES = 4 * 1024**3
MAX_LAYER_SIZE = 1_000_000
MAX_PARAMETERS = 500_000_000
MAX_HEADER_BYTES = 1024 * 1024  # a safetensors header (JSON) of a few layers is a few hundred bytes
ST_DTYPES = {"float32": "F32", "float64": "F64"}  # safetensors' names of the DTYPES
ST_NAMES = {
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "I8": "int8",
    "U8": "uint8",
    "I16": "int16",
    "I32": "int32",
    "I64": "int64",
    "BOOL": "bool",
}


@dataclass
class ModelInfo:
    """Everything ``config.json`` said about a loaded model."""

    sizes: list[int]
    dtype: str
    output_spiking: bool
    neuron_cfg: NeuronConfig
    task: str | None = None
    objective: str | None = None
    class_names: list[str] | None = None
    encoder_settings: dict | None = None
    train_config: TrainConfig | None = None
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    engine_version: str = ""
    source: str = ""

    def describe(self) -> dict:
        """JSON-safe summary for display (no weights)."""
        return {
            "sizes": list(self.sizes),
            "dtype": self.dtype,
            "output_spiking": self.output_spiking,
            "neuron": self.neuron_cfg.to_dict(),
            "task": self.task,
            "objective": self.objective,
            "class_names": self.class_names,
            "encoder": self.encoder_settings,
            "train": self.train_config.to_dict() if self.train_config is not None else None,
            "extra": self.extra,
            "format_version": self.format_version,
            "engine_version": self.engine_version,
            "source": self.source,
        }


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
def _jsonable(x, where: str):
    """Plain JSON values (numpy scalars/arrays become Python; NaN/inf become null)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v, where) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v, where) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist(), where)
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, Path):
        return str(x)
    raise CheckpointError(f"cannot store a {type(x).__name__} in {where} (only JSON values)", CONFIG_NAME)


def _weight_tensors(net) -> dict[str, torch.Tensor]:
    return {f"weights.{i}": w.detach().cpu().contiguous() for i, w in enumerate(net.weights)}


def _serialize(
    net,
    neuron_cfg: NeuronConfig,
    train_cfg=None,
    class_names=None,
    encoder_settings=None,
    extra=None,
    task=None,
    objective=None,
) -> tuple[bytes, bytes]:
    """``(config_json_bytes, safetensors_bytes)`` for a network."""
    from safetensors.torch import save as st_save

    if not isinstance(neuron_cfg, NeuronConfig):
        raise CheckpointError(f"neuron_cfg must be a NeuronConfig, got {type(neuron_cfg).__name__}", CONFIG_NAME)
    sizes = [int(s) for s in net.sizes]
    dtype_name = {v: k for k, v in DTYPES.items()}.get(net.weights[0].dtype)
    if dtype_name is None:
        raise CheckpointError(f"weights of dtype {net.weights[0].dtype} cannot be saved", WEIGHTS_NAME)
    for i, w in enumerate(net.weights):
        if not bool(torch.isfinite(w.detach()).all()):
            raise CheckpointError(f"weights.{i} holds NaN or inf values; refusing to save a broken model", WEIGHTS_NAME)
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != sizes[-1]:
            raise CheckpointError(f"{len(class_names)} class names for {sizes[-1]} output neurons", CONFIG_NAME)
    train_dict = None
    if train_cfg is not None:
        train_dict = train_cfg.to_dict() if hasattr(train_cfg, "to_dict") else dict(train_cfg)
        task = task if task is not None else train_dict.get("task")
        objective = objective if objective is not None else train_dict.get("objective")
    # one metadata key: safetensors orders metadata from a hash map, two keys would make the bytes vary
    weights = st_save(_weight_tensors(net), metadata={"format": f"{FORMAT}/{FORMAT_VERSION}"})
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "engine_version": __version__,
        "sizes": sizes,
        "dtype": dtype_name,
        "output_spiking": bool(getattr(net, "output_spiking", True)),
        "neuron": neuron_cfg.to_dict(),
        "task": task,
        "objective": objective,
        "class_names": class_names,
        "encoder": _jsonable(encoder_settings, "encoder settings") if encoder_settings is not None else None,
        "train": _jsonable(train_dict, "training settings") if train_dict is not None else None,
        "extra": _jsonable(extra or {}, "extra"),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    problems = _check_config(config)
    if problems:
        raise CheckpointError(problems, CONFIG_NAME)
    text = json.dumps(config, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    return text.encode("utf-8"), weights


def save_model(
    directory,
    net,
    neuron_cfg: NeuronConfig,
    train_cfg=None,
    class_names=None,
    encoder_settings: dict | None = None,
    extra: dict | None = None,
    task: str | None = None,
    objective: str | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created); returns the folder.

    Each file is written atomically (temp file + rename), weights first; a crash between the two
    leaves a pair whose checksum does not match, which ``load_model`` reports.
    ``task``/``objective`` default to those of ``train_cfg``.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError("is a file, not a folder to save a model in", directory)
    config, weights = _serialize(net, neuron_cfg, train_cfg, class_names, encoder_settings, extra, task, objective)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / WEIGHTS_NAME, weights, fsync=True)
        write_atomic(directory / CONFIG_NAME, config, fsync=True)
    except OSError as e:
        raise CheckpointError(f"cannot write the model: {e.strerror or e}", directory) from None
    return directory


def model_to_zip_bytes(
    net,
    neuron_cfg: NeuronConfig,
    train_cfg=None,
    class_names=None,
    encoder_settings: dict | None = None,
    extra: dict | None = None,
    task: str | None = None,
    objective: str | None = None,
) -> bytes:
    """The model as one ``.zip`` (``config.json`` + ``model.safetensors``), for browser download."""
    config, weights = _serialize(net, neuron_cfg, train_cfg, class_names, encoder_settings, extra, task, objective)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in ((CONFIG_NAME, config), (WEIGHTS_NAME, weights)):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # same model -> same bytes
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
def _check_config(cfg) -> str | None:
    """The first schema problem of a parsed config.json, or None."""
    if not isinstance(cfg, dict):
        return f"must hold a JSON object, got {type(cfg).__name__}"
    if cfg.get("format") != FORMAT:
        return f"is not an STCA Studio model config ('format' is {cfg.get('format')!r}, expected {FORMAT!r})"
    ver = cfg.get("format_version")
    if isinstance(ver, bool) or not isinstance(ver, int):
        return f"'format_version' must be an integer, got {ver!r}"
    if ver > FORMAT_VERSION:
        return (
            f"format version {ver} was written by a newer STCA Studio; this build reads up to version {FORMAT_VERSION}"
        )
    if ver < 1:
        return f"unknown format version {ver}"
    required = ("sizes", "dtype", "output_spiking", "neuron", "weights_sha256")
    missing = [k for k in required if k not in cfg]
    if missing:
        return f"missing key(s) {missing}"
    sizes = cfg["sizes"]
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_LAYER_SIZE for s in sizes)
    ):
        return f"'sizes' must be a list of at least 2 integers in 1..{MAX_LAYER_SIZE}, got {sizes!r}"
    n_params = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if n_params > MAX_PARAMETERS:
        return f"'sizes' {sizes} make {n_params} weights, more than the limit of {MAX_PARAMETERS}"
    if cfg["dtype"] not in DTYPES:
        return f"'dtype' must be one of {list(DTYPES)}, got {cfg['dtype']!r}"
    if not isinstance(cfg["output_spiking"], bool):
        return f"'output_spiking' must be true or false, got {cfg['output_spiking']!r}"
    if not isinstance(cfg["neuron"], dict):
        return f"'neuron' must be an object of neuron settings, got {cfg['neuron']!r}"
    sha = cfg["weights_sha256"]
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        return f"'weights_sha256' must be 64 lowercase hex digits, got {sha!r}"
    if cfg.get("task") not in (None, *TASKS):
        return f"'task' must be one of {list(TASKS)} or null, got {cfg.get('task')!r}"
    if cfg.get("objective") not in (None, *OBJECTIVES):
        return f"'objective' must be one of {list(OBJECTIVES)} or null, got {cfg.get('objective')!r}"
    if cfg.get("objective") == "margin" and cfg["output_spiking"]:
        return "objective 'margin' needs a non-spiking output layer, but 'output_spiking' is true"
    names = cfg.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return f"'class_names' must be a list of strings or null, got {names!r}"
        if len(names) != sizes[-1]:
            return f"'class_names' has {len(names)} names but the output layer has {sizes[-1]} neurons"
    for key in ("encoder", "train", "extra"):
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            return f"'{key}' must be an object or null, got {type(cfg[key]).__name__}"
    return None


def _parse_config(data: bytes, where: str) -> tuple[dict, NeuronConfig, object | None]:
    if len(data) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"is {len(data)} bytes, larger than a model config can be ({MAX_CONFIG_BYTES})", where)
    try:
        cfg = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError("is not UTF-8 text (not a config.json)", where) from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", where) from None
    problem = _check_config(cfg)
    if problem:
        raise CheckpointError(problem, where)
    try:
        neuron = NeuronConfig.from_dict(cfg["neuron"])
    except ConfigError as e:
        raise CheckpointError(f"neuron settings out of range: {e.problem}", where) from None
    except TypeError as e:
        raise CheckpointError(f"neuron settings do not fit: {e}", where) from None
    train = None
    if cfg.get("train") is not None:
        try:
            train = TrainConfig.from_dict(dict(cfg["train"]), check_device=False)  # may come from a GPU box
        except ConfigError as e:
            raise CheckpointError(f"training settings out of range: {e.problem}", where) from None
        except TypeError as e:
            raise CheckpointError(f"training settings do not fit: {e}", where) from None
    return cfg, neuron, train


def _parse_weights(data: bytes, cfg: dict, where: str) -> list[torch.Tensor]:
    from safetensors.torch import load as st_load

    if len(data) == 0:
        raise CheckpointError("is empty", where)
    if len(data) > MAX_WEIGHTS_BYTES:
        raise CheckpointError(f"is {len(data)} bytes, over the limit of {MAX_WEIGHTS_BYTES}", where)
    try:
        tensors = st_load(data)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for every defect
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"is not a readable safetensors file (corrupt or truncated: {reason})", where) from None
    sizes = cfg["sizes"]
    expected = [f"weights.{i}" for i in range(len(sizes) - 1)]
    missing = [k for k in expected if k not in tensors]
    unknown = sorted(set(tensors) - set(expected))
    if missing or unknown:
        detail = []
        if missing:
            detail.append(f"missing {missing}")
        if unknown:
            detail.append(f"unexpected {unknown}")
        raise CheckpointError(
            f"tensors do not match the {len(sizes) - 1} layers of sizes {sizes} in {CONFIG_NAME}: {'; '.join(detail)}",
            where,
        )
    want_dtype = DTYPES[cfg["dtype"]]
    out = []
    for i, name in enumerate(expected):
        t = tensors[name]
        shape = [sizes[i + 1], sizes[i]]
        if list(t.shape) != shape:
            raise CheckpointError(
                f"{name} has shape {list(t.shape)}, but sizes {sizes} in {CONFIG_NAME} need {shape}", where
            )
        if t.dtype != want_dtype:
            raise CheckpointError(
                f"{name} is {str(t.dtype).replace('torch.', '')}, but {CONFIG_NAME} says {cfg['dtype']}", where
            )
        if not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{name} holds NaN or inf values", where)
        out.append(t)
    digest = hashlib.sha256(data).hexdigest()
    if digest != cfg["weights_sha256"]:
        raise CheckpointError(
            f"does not belong to this {CONFIG_NAME}: its SHA-256 differs from "
            f"'weights_sha256' (the files come from different saves, or one was changed)",
            where,
        )
    return out


def _build(
    config_bytes: bytes,
    weights_bytes: bytes,
    config_where: str,
    weights_where: str,
    device,
    source: str,
    backend: str = "auto",
):
    from .network import SNN

    cfg, neuron, train = _parse_config(config_bytes, config_where)
    weights = _parse_weights(weights_bytes, cfg, weights_where)
    if device is None:
        from .device import default_device

        device = default_device()
    try:
        net = SNN(
            cfg["sizes"],
            neuron,
            dtype=DTYPES[cfg["dtype"]],
            device=device,
            output_spiking=cfg["output_spiking"],
            seed=0,
            backend=backend,
        )
    except StcaError as e:
        raise CheckpointError(f"cannot build the network: {e}", config_where) from None
    except (RuntimeError, AssertionError, ValueError) as e:  # e.g. device "cuda" on a machine without one
        raise CheckpointError(f"cannot place the network on device {device!r}: {e}", config_where) from None
    with torch.no_grad():
        for w, t in zip(net.weights, weights):
            w.copy_(t.to(device=w.device))
    info = ModelInfo(
        sizes=list(cfg["sizes"]),
        dtype=cfg["dtype"],
        output_spiking=cfg["output_spiking"],
        neuron_cfg=neuron,
        task=cfg.get("task"),
        objective=cfg.get("objective"),
        class_names=cfg.get("class_names"),
        encoder_settings=cfg.get("encoder"),
        train_config=train,
        extra=dict(cfg.get("extra") or {}),
        format_version=cfg["format_version"],
        engine_version=str(cfg.get("engine_version", "")),
        source=source,
    )
    return net, info


def _read(path: Path, limit: int) -> bytes:
    if not path.exists():
        raise CheckpointError("is missing (a model needs both config.json and model.safetensors)", path)
    if not path.is_file():
        raise CheckpointError("is not a regular file", path)
    size = path.stat().st_size
    if size > limit:
        raise CheckpointError(f"is {size} bytes, over the limit of {limit}", path)
    try:
        return path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot be read: {e.strerror or e}", path) from None


def weights_budget(cfg: dict, config_where: str) -> int:
    """Bytes of tensor data the layer ``sizes`` and ``dtype`` of a checked config.json declare;
    ``CheckpointError`` when that is over the operator's cap (``STCA_MAX_MODEL_MB``)."""
    from .limits import ENV_MAX_MODEL_MB, max_model_bytes, max_model_mb

    sizes = cfg["sizes"]
    itemsize = torch.empty((), dtype=DTYPES[cfg["dtype"]]).element_size()
    n_bytes = sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) * itemsize
    if n_bytes > max_model_bytes():
        raise CheckpointError(
            f"'sizes' {sizes} ({cfg['dtype']}) make {n_bytes / 2**20:.1f} MB of weights, over "
            f"the limit of {max_model_mb():g} MB (set by {ENV_MAX_MODEL_MB})",
            config_where,
        )
    return n_bytes


def _check_declared_size(n_bytes: int, cfg: dict, budget: int, where: str, verb: str = "is") -> None:
    """Refuse a weights file whose (declared) size cannot belong to the config, before reading it."""
    if n_bytes == 0:
        raise CheckpointError("is empty", where)
    most = 8 + MAX_HEADER_BYTES + budget
    if n_bytes > most:
        raise CheckpointError(
            f"{verb} {n_bytes} bytes, but the layer sizes {cfg['sizes']} ({cfg['dtype']}) in "
            f"{CONFIG_NAME} need at most {most}; refused before reading it",
            where,
        )


def _check_header(header: bytes, cfg: dict, where: str) -> None:
    """Compare a parseable safetensors header's tensors (names, dtypes, shapes, byte ranges) with the
    config's layers before any tensor data is read. A header that does not even parse is left to
    safetensors, which names the defect (the data read is already bounded by the size check)."""
    try:
        head = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return
    if not isinstance(head, dict):
        return
    sizes = cfg["sizes"]
    expected = [f"weights.{i}" for i in range(len(sizes) - 1)]
    names = [k for k in head if k != "__metadata__"]
    missing = [k for k in expected if k not in names]
    unknown = sorted(set(names) - set(expected))
    if missing or unknown:
        detail = ([f"missing {missing}"] if missing else []) + ([f"unexpected {unknown}"] if unknown else [])
        raise CheckpointError(
            f"tensors do not match the {len(sizes) - 1} layers of sizes {sizes} in {CONFIG_NAME}: {'; '.join(detail)}",
            where,
        )
    itemsize = torch.empty((), dtype=DTYPES[cfg["dtype"]]).element_size()
    for i, name in enumerate(expected):
        entry = head[name]
        if not isinstance(entry, dict):
            return
        shape, want = entry.get("shape"), [sizes[i + 1], sizes[i]]
        if isinstance(shape, list) and shape != want:
            raise CheckpointError(f"{name} has shape {shape}, but sizes {sizes} in {CONFIG_NAME} need {want}", where)
        dtype = entry.get("dtype")
        if isinstance(dtype, str) and dtype != ST_DTYPES[cfg["dtype"]]:
            raise CheckpointError(
                f"{name} is {ST_NAMES.get(dtype, dtype)}, but {CONFIG_NAME} says {cfg['dtype']}", where
            )
        offsets = entry.get("data_offsets")
        if (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and offsets[1] - offsets[0] != want[0] * want[1] * itemsize
        ):
            raise CheckpointError(
                f"{name} declares {offsets[1] - offsets[0]} bytes of data, but shape {want} "
                f"({cfg['dtype']}) needs {want[0] * want[1] * itemsize}",
                where,
            )


def _read_weights(f, n_bytes: int, cfg: dict, where: str) -> bytes:
    """Read a weights file of (declared, already size-checked) ``n_bytes`` from the binary stream
    ``f``: the 8-byte header length, the header (checked against the config), then the rest; never
    more than ``n_bytes``."""
    first = f.read(8)
    parts = [first]
    if len(first) == 8:
        (n_header,) = struct.unpack("<Q", first)
        if n_header <= MAX_HEADER_BYTES and 8 + n_header <= n_bytes:
            header = f.read(n_header)
            _check_header(header, cfg, where)
            parts.append(header)
    done = sum(len(p) for p in parts)
    parts.append(f.read(max(0, n_bytes - done)))
    if f.read(1):
        raise CheckpointError(f"holds more than the {n_bytes} bytes it declares (corrupt archive)", where)
    return b"".join(parts)


def load_model(source, device=None, backend: str = "auto"):
    """Load a model saved by ``save_model``; returns ``(net, ModelInfo)``.

    ``source``: the model folder, either of its two files (the other is taken from the same
    folder), or a ``(config_path, weights_path)`` pair. ``device``: default CUDA when present.
    The config is read and checked first; the weights file's size and safetensors header are then
    checked against its layer sizes (and ``STCA_MAX_MODEL_MB``) before any tensor data is read.
    """
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise CheckpointError(f"expected (config.json, model.safetensors) paths, got {len(source)} paths")
        a, b = (Path(p) for p in source)
        config_path, weights_path = (b, a) if a.suffix == ".safetensors" else (a, b)
    else:
        p = Path(source)
        if p.is_dir():
            config_path, weights_path = p / CONFIG_NAME, p / WEIGHTS_NAME
        elif p.suffix == ".safetensors":
            config_path, weights_path = p.with_name(CONFIG_NAME), p
        elif p.suffix == ".json":
            config_path, weights_path = p, p.with_name(WEIGHTS_NAME)
        elif p.suffix == ".zip" and p.is_file():
            try:
                with open(p, "rb") as f:
                    return _model_from_zip(f, device=device, name=str(p), backend=backend)
            except OSError as e:
                raise CheckpointError(f"cannot be read: {e.strerror or e}", p) from None
        elif not p.exists():
            raise CheckpointError("no such model folder or file", p)
        else:
            raise CheckpointError("is not a model folder, config.json, model.safetensors or .zip", p)
    config = _read(config_path, MAX_CONFIG_BYTES)
    cfg, _, _ = _parse_config(config, str(config_path))
    budget = weights_budget(cfg, str(config_path))
    if not weights_path.exists():
        raise CheckpointError("is missing (a model needs both config.json and model.safetensors)", weights_path)
    if not weights_path.is_file():
        raise CheckpointError("is not a regular file", weights_path)
    try:
        with open(weights_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            _check_declared_size(size, cfg, budget, str(weights_path))
            weights = _read_weights(f, size, cfg, str(weights_path))
    except OSError as e:
        raise CheckpointError(f"cannot be read: {e.strerror or e}", weights_path) from None
    return _build(
        config, weights, str(config_path), str(weights_path), device, source=str(config_path.parent), backend=backend
    )


def model_from_zip_bytes(data: bytes, device=None, name: str = "model.zip", backend: str = "auto"):
    """Load a model from a ``.zip`` holding ``config.json`` and ``model.safetensors`` (at the top or in
    one folder); ``name`` is used in error messages. Returns ``(net, ModelInfo)``.

    Nothing is unpacked before its size is known to fit: the sizes the zip directory declares are
    checked (config.json against its cap, model.safetensors against what the config's layer sizes
    need and ``STCA_MAX_MODEL_MB``), then the safetensors header against the layers, then the data
    is read, never more than declared (a zip of zeros that would unpack to gigabytes is refused
    without unpacking it)."""
    return _model_from_zip(io.BytesIO(data), device=device, name=name, backend=backend)


def _unpack(z: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, reader):
    try:
        with z.open(info) as f:
            return reader(f)
    except StcaError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile, RuntimeError) as e:
        raise CheckpointError(f"{info.filename} cannot be unpacked (corrupt archive: {e})", name) from None
    except Exception as e:  # noqa: BLE001 - zlib errors for damaged deflate streams
        raise CheckpointError(f"{info.filename} cannot be unpacked (corrupt archive: {e})", name) from None


def _model_from_zip(fileobj, device, name: str, backend: str):
    try:
        z = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise CheckpointError(
            "is not a zip archive (expected a .zip with config.json and model.safetensors)", name
        ) from None
    with z:
        found: dict[str, zipfile.ZipInfo] = {}
        for info in z.infolist():
            if info.is_dir() or "__MACOSX" in info.filename:
                continue
            base = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
            if base in (CONFIG_NAME, WEIGHTS_NAME):
                if base in found:
                    raise CheckpointError(f"holds more than one {base}", name)
                found[base] = info
        missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if n not in found]
        if missing:
            raise CheckpointError(f"does not contain {' or '.join(missing)}", name)
        cinfo, winfo = found[CONFIG_NAME], found[WEIGHTS_NAME]
        if cinfo.file_size > MAX_CONFIG_BYTES:
            raise CheckpointError(
                f"{CONFIG_NAME} unpacks to {cinfo.file_size} bytes, over the limit of {MAX_CONFIG_BYTES}", name
            )
        config_where, weights_where = f"{name}:{CONFIG_NAME}", f"{name}:{WEIGHTS_NAME}"
        config = _unpack(z, cinfo, name, lambda f: f.read(MAX_CONFIG_BYTES + 1))
        if len(config) > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{CONFIG_NAME} unpacks to more than the limit of {MAX_CONFIG_BYTES} bytes", name)
        cfg, _, _ = _parse_config(config, config_where)
        budget = weights_budget(cfg, config_where)
        _check_declared_size(winfo.file_size, cfg, budget, weights_where, verb="unpacks to")
        weights = _unpack(z, winfo, name, lambda f: _read_weights(f, winfo.file_size, cfg, weights_where))
    return _build(config, weights, config_where, weights_where, device, source=name, backend=backend)
