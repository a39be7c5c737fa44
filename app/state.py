"""Per-session state of the Train page: its settings, the presets and the URL that encodes them.

Everything a run depends on (preset, task, objective, sizes, neuron constants, optimiser, seed, data)
is one flat ``TrainSettings`` record, so it can live in the URL (``st.query_params``): a teacher copies
the address and every student opens the same run. Values read from a URL are validated field by
field; a bad value is reported and falls back to the preset's value instead of breaking the page.

This module holds no per-session data in globals: the only module-level objects are the immutable
field table and the presets read once from ``assets/presets/*.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from stca_engine.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PRESET_DIR = REPO / "assets" / "presets"

# labels for the engine's names (stca_engine.names.TASKS / OBJECTIVES: the keys are exactly those, tested)
TASKS = {"detect": "Detection (unsegmented streams)", "classify": "Classification (one clip each)"}
OBJECTIVES = {
    "stca": "STCA – spike clusters (this paper)",
    "tdp1": "TDP1 – single spike count (Yu et al. 2018)",
    "margin": "Margin – non-spiking readout (authors' code)",
}

OBJECTIVE_HELP = (
    "What the output neurons are trained to do (SPEC §3). STCA: fire one spike cluster per event "
    "(paper Eq. 9/10). TDP1: a spike-count rule like the authors' baseline code — fire exactly N_d single "
    "spikes, pushed up at the highest sub-threshold peak of V anywhere and down at the last spike; it is "
    "not the threshold-surface rule of TDP1's original paper (Yu et al. 2018). Margin: the authors' "
    "code's non-spiking readout (classification only)."
)
ENCODERS = {
    "spectral": "Fast spectral threshold crossings",
    "spikegram": "Spikegram (matching pursuit, Smith & Lewicki)",
}
SGD_MOMENTUM = 0.9  # what the "SGD (momentum 0.9)" choice gives the optimiser
OPTIMIZERS = {"adam": "Adam", "sgd": f"SGD (momentum {SGD_MOMENTUM:g})"}


@dataclass(frozen=True)
class TrainSettings:
    """Everything that defines one training run (and nothing about how it is displayed)."""

    preset: str = "classroom-fast"
    task: str = "detect"
    objective: str = "stca"
    compare: bool = False  # train a second network with ``compare_objective`` side by side
    compare_objective: str = "tdp1"
    # data
    data: str = "demo"  # data spec understood by stca_engine.data.sources.parse_data_spec
    classes: str = ""  # comma-separated class names to use ("" = all of the source's)
    encoder: str = "spectral"
    n_channels: int = 32  # encoder frequency channels (spikegram kernels)
    spike_rate: float = 400.0  # spikegram budget, atoms per second of audio
    n_train: int = 40  # training streams / clips
    n_test: int = 20
    events_per_stream: int = 3
    # against memorising the training clips: the suite-chosen recipe of stca_engine.defaults.REGULARISATION
    # (new takes of every training clip, spike jitter / dropped spikes / time stretch, hidden dropout,
    # best epoch on a validation split)
    regularise: bool = True
    # network
    hidden: str = "64"  # hidden layer sizes, comma separated ("" = no hidden layer)
    init_std: float = 0.01  # initial weights ~ N(0, init_std²) (paper: 0.01)
    revive: bool = True  # push silent hidden neurons when an output needs a k⁺ and has none (revive.py)
    # neuron (SPEC §2)
    dt_ms: float = 3.0
    tau_m_ms: float = 30.0
    tau_s_ms: float = 7.5
    theta: float = 1.0
    alpha: float = 2.0
    t_in_ms: float = 141.0
    # optimisation
    optimizer: str = "adam"
    lr: float = 0.005
    batch_size: int = 8
    epochs: int = 20
    seed: int = 0

    # ---- derived --------------------------------------------------------------------------------
    def hidden_sizes(self) -> list[int]:
        """``"64, 32"`` → ``[64, 32]``; raises ``ConfigError`` naming the setting."""
        return parse_hidden(self.hidden)

    def neuron_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in ("dt_ms", "tau_m_ms", "tau_s_ms", "theta", "alpha", "t_in_ms")}

    def class_list(self) -> list[str] | None:
        """The chosen class names, or None for all of them."""
        names = [n.strip() for n in self.classes.split(",") if n.strip()]
        return names or None

    def objectives(self) -> list[str]:
        """The objectives this run trains: the main one, plus the comparison when it differs."""
        out = [self.objective]
        if self.compare and self.compare_objective != self.objective:
            out.append(self.compare_objective)
        return out


# name -> (kind, choices | (min, max)); the single source of truth for widgets and URL parsing.
FIELD_SPEC: dict[str, tuple[str, Any]] = {
    "preset": ("str", None),
    "task": ("choice", tuple(TASKS)),
    "objective": ("choice", tuple(OBJECTIVES)),
    "compare": ("bool", None),
    "regularise": ("bool", None),
    "compare_objective": ("choice", tuple(OBJECTIVES)),
    "data": ("str", None),
    "classes": ("names", None),
    "encoder": ("choice", tuple(ENCODERS)),
    "n_channels": ("int", (4, 256)),
    "spike_rate": ("float", (10.0, 20000.0)),
    "n_train": ("int", (2, 5000)),
    "n_test": ("int", (1, 5000)),
    "events_per_stream": ("int", (1, 20)),
    "hidden": ("hidden", None),
    "init_std": ("float", (0.0, 10.0)),
    "revive": ("bool", None),
    "dt_ms": ("float", (0.1, 50.0)),
    "tau_m_ms": ("float", (0.5, 1000.0)),
    "tau_s_ms": ("float", (0.1, 1000.0)),
    "theta": ("float", (0.01, 100.0)),
    "alpha": ("float", (0.01, 100.0)),
    "t_in_ms": ("float", (0.1, 10000.0)),
    "optimizer": ("choice", tuple(OPTIMIZERS)),
    "lr": ("float", (1e-6, 10.0)),
    "batch_size": ("int", (1, 1024)),
    "epochs": ("int", (1, 2000)),
    "seed": ("int", (0, 2**31 - 1)),
}
assert set(FIELD_SPEC) == {f.name for f in fields(TrainSettings)}


# How each setting is shown on the Train page: label, widget details and help. The bounds come from
# FIELD_SPEC, so a widget never allows what the URL parser refuses (and the page repeats no range).
@dataclass(frozen=True)
class FieldUI:
    label: str
    step: float | None = None
    format: str | None = None
    help: str | None = None
    labels: Mapping[str, str] | None = None  # display names of a choice's values
    radio: bool = False


FIELD_UI: dict[str, FieldUI] = {
    "task": FieldUI(
        "Task",
        labels=TASKS,
        radio=True,
        help="Detection: long streams of several events, labelled only by how often each class occurs. "
        "Classification: one clip, one class.",
    ),
    "objective": FieldUI("Objective", labels=OBJECTIVES),
    "compare": FieldUI(
        "Train a second objective side by side",
        help="Same data, same seed, same initial weights: only the objective differs.",
    ),
    "compare_objective": FieldUI("Second objective", labels=OBJECTIVES),
    "epochs": FieldUI("Epochs", step=1),
    "regularise": FieldUI(
        "Guard against memorising",
        help="Sound: every training clip is also heard as 4 new takes (a few per cent faster or slower, "
        "brighter or darker, noisier). Each training batch is changed a little (spikes jittered by 2 steps, 15 % dropped, time stretched "
        "by up to 10 %), 30 % dropout on the hidden spikes, and the epoch that scores best on a validation split "
        "of the training clips is kept. Chosen on real recordings (docs/RESULTS.md); the test clips are never "
        "used to choose.",
    ),
    "seed": FieldUI("Seed", step=1, help="Same seed, same settings → the same run, on every machine."),
    "data": FieldUI(
        "Data source",
        help="demo (built-in synthetic sounds), digits, rwcp:PATH, medleydb:PATH, folder:PATH or mnist:PATH; "
        "folders must lie inside the operator's allowed roots. uploads: the sounds uploaded or recorded on the "
        "Data page in this session.",
    ),
    "classes": FieldUI("Classes (comma separated; empty = all)"),
    "encoder": FieldUI("Sound → spikes encoder", labels=ENCODERS),
    "n_channels": FieldUI("Frequency channels", step=4),
    "spike_rate": FieldUI("Spikegram budget (spikes / s)", step=50.0),
    "n_train": FieldUI("Training streams (detection)", step=10),
    "n_test": FieldUI("Test streams (detection)", step=10),
    "events_per_stream": FieldUI("Events per stream", step=1),
    "hidden": FieldUI("Hidden layer sizes", help="Comma separated, e.g. '300' or '128,64'; empty = no hidden layer."),
    "init_std": FieldUI(
        "Initial weight std",
        step=0.01,
        format="%.3f",
        help="Weights start as N(0, std²); the paper uses 0.01. Larger values make hidden neurons fire from the "
        "start, so small demos learn sooner.",
    ),
    "revive": FieldUI(
        "Revive a silenced network",
        help="When an output neuron needs one more cluster but no time step of its voltage depends on any weight "
        "(the layer below fell silent), push the silent hidden neurons that would excite it. Off: the paper's "
        "rule alone, under which a silent network never learns again. It changes nothing while every needed k⁺ "
        "can be placed.",
    ),
    "dt_ms": FieldUI("dt (ms)", step=0.5),
    "tau_m_ms": FieldUI(
        "τm (ms)", step=1.0, help="Changing τm sets τs = τm/4 (SPEC §2); set τs after it to use another ratio."
    ),
    "tau_s_ms": FieldUI("τs (ms)", step=0.5),
    "theta": FieldUI("ϑ threshold", step=0.1),
    "alpha": FieldUI("α surrogate width", step=0.1),
    "t_in_ms": FieldUI("T_in cluster interval (ms)", step=3.0),
    "optimizer": FieldUI("Optimiser", labels=OPTIMIZERS),
    "lr": FieldUI("Learning rate", step=1e-4, format="%.5f"),
    "batch_size": FieldUI("Batch size", step=1),
}
# the advanced settings, in the expanders of the Train sidebar (hidden in classroom mode)
SIDEBAR_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Data and encoding",
        ("data", "classes", "encoder", "n_channels", "spike_rate", "n_train", "n_test", "events_per_stream"),
    ),
    ("Network", ("hidden", "init_std", "revive")),
    ("Neuron constants (C-LIF)", ("dt_ms", "tau_m_ms", "tau_s_ms", "theta", "alpha", "t_in_ms")),
    ("Optimiser", ("optimizer", "lr", "batch_size")),
)


def widget_args(name: str, options: list | None = None) -> tuple[str, dict]:
    """``(widget kind, keyword arguments)`` for the setting ``name``: ``number_input`` with FIELD_SPEC's
    bounds, ``selectbox`` / ``radio`` with the choice's labels, ``toggle``, or ``text_input``. ``options``
    narrows a choice (e.g. no margin readout for detection)."""
    kind, spec = FIELD_SPEC[name]
    ui = FIELD_UI[name]
    kw: dict[str, Any] = {"label": ui.label}
    if ui.help:
        kw["help"] = ui.help
    if kind in ("int", "float"):
        lo, hi = spec
        cast = int if kind == "int" else float
        kw.update(min_value=cast(lo), max_value=cast(hi))
        if ui.step is not None:
            kw["step"] = cast(ui.step)
        if ui.format:
            kw["format"] = ui.format
        return "number_input", kw
    if kind == "choice":
        kw["options"] = list(options if options is not None else spec)
        if ui.labels is not None:
            kw["format_func"] = ui.labels.get
        return ("radio" if ui.radio else "selectbox"), kw
    if kind == "bool":
        return "toggle", kw
    return "text_input", kw


MAX_HIDDEN_LAYERS = 4
MAX_HIDDEN_UNITS = 4096


def parse_hidden(text: str) -> list[int]:
    """Hidden layer sizes from ``"300"``, ``"300,300"`` or ``""`` (no hidden layer)."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    sizes = []
    for p in parts:
        try:
            n = int(p)
        except ValueError:
            raise ConfigError(f"hidden layer size {p!r} is not a whole number", "hidden") from None
        if not 1 <= n <= MAX_HIDDEN_UNITS:
            raise ConfigError(f"hidden layer size {n} outside 1..{MAX_HIDDEN_UNITS}", "hidden")
        sizes.append(n)
    if len(sizes) > MAX_HIDDEN_LAYERS:
        raise ConfigError(f"at most {MAX_HIDDEN_LAYERS} hidden layers, got {len(sizes)}", "hidden")
    return sizes


def coerce_field(name: str, raw: Any) -> Any:
    """One setting from a URL string (or a JSON value), checked against ``FIELD_SPEC``.

    Raises ``ConfigError`` whose message names the setting and the problem."""
    if name not in FIELD_SPEC:
        raise ConfigError(f"unknown setting; known: {', '.join(FIELD_SPEC)}", name)
    kind, rule = FIELD_SPEC[name]
    if kind == "str":
        value = str(raw).strip()
        if not value or len(value) > 500:
            raise ConfigError("must be a non-empty text of at most 500 characters", name)
        return value
    if kind == "choice":
        value = str(raw).strip().lower()
        if value not in rule:
            raise ConfigError(f"{raw!r} is not one of {', '.join(rule)}", name)
        return value
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        value = str(raw).strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{raw!r} is not true/false", name)
    if kind == "names":
        names = [n.strip() for n in str(raw).split(",") if n.strip()]
        if len(",".join(names)) > 2000:
            raise ConfigError("class list longer than 2000 characters", name)
        return ",".join(names)
    if kind == "hidden":
        return ",".join(str(n) for n in parse_hidden(raw))
    if kind in ("int", "float"):
        if isinstance(raw, bool):
            raise ConfigError(f"{raw!r} is not a number", name)
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{raw!r} is not a number", name) from None
        if not math.isfinite(number):
            raise ConfigError(f"{raw!r} is not a finite number", name)
        if kind == "int":
            if number != int(number):
                raise ConfigError(f"{raw!r} is not a whole number", name)
            number = int(number)
        lo, hi = rule
        if not lo <= number <= hi:
            raise ConfigError(f"{number} outside {lo}..{hi}", name)
        return number
    raise AssertionError(kind)


# ---- presets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    description: str
    settings: TrainSettings


def _preset_from_json(path: Path) -> Preset:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read preset ({exc})", path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("settings"), dict):
        raise ConfigError("a preset is a JSON object with a 'settings' object", path)
    values = {}
    for k, v in doc["settings"].items():
        try:
            values[k] = coerce_field(k, v)
        except ConfigError as exc:
            raise ConfigError(f"setting {k}: {exc.problem}", path) from None
    name = path.stem
    values["preset"] = name
    return Preset(
        name, str(doc.get("label", name)), str(doc.get("description", "")), replace(TrainSettings(), **values)
    )


@lru_cache(maxsize=1)
def load_presets(directory: str = str(PRESET_DIR)) -> dict[str, Preset]:
    """All presets in ``assets/presets`` (read once; immutable, so safe to share across sessions).

    Ordered with ``classroom-fast`` first, then by name."""
    found = {p.stem: _preset_from_json(p) for p in sorted(Path(directory).glob("*.json"))}
    order = sorted(found, key=lambda n: (n != "classroom-fast", n))
    return {n: found[n] for n in order}


def default_settings() -> TrainSettings:
    """The first preset (classroom-fast), or the built-in defaults when no preset file exists."""
    presets = load_presets()
    return next(iter(presets.values())).settings if presets else TrainSettings()


def preset_settings(name: str) -> TrainSettings:
    presets = load_presets()
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(presets)}", "preset")
    return presets[name].settings


# ---- URL (query params) ---------------------------------------------------------------------------

URL_KEYS = tuple(f.name for f in fields(TrainSettings))
CLASSROOM_KEY = "classroom"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e15 else str(int(value))
    return str(value)


def settings_to_query(settings: TrainSettings) -> dict[str, str]:
    """The URL form: the preset name plus every setting that differs from that preset.

    Short links for the common case, and still exact: ``settings_from_query`` rebuilds the same
    record."""
    base = load_presets().get(settings.preset)
    base_settings = base.settings if base else TrainSettings(preset=settings.preset)
    out = {"preset": settings.preset}
    for f in fields(TrainSettings):
        v = getattr(settings, f.name)
        if f.name != "preset" and v != getattr(base_settings, f.name):
            out[f.name] = _fmt(v)
    return out


def settings_from_query(params: Mapping[str, Any]) -> tuple[TrainSettings, list[str]]:
    """Settings from URL parameters: start from the named preset (or the default one), apply every
    known parameter that validates. Returns ``(settings, problems)``; each problem names the
    parameter, and a bad parameter keeps the preset's value."""
    problems: list[str] = []
    raw = {k: (v[-1] if isinstance(v, (list, tuple)) and v else v) for k, v in dict(params).items()}
    base = default_settings()
    if "preset" in raw:
        name = str(raw["preset"])
        if name in load_presets():
            base = preset_settings(name)
        else:
            problems.append(f"preset: unknown preset {name!r}; using {base.preset!r}")
    values = {}
    for k, v in raw.items():
        if k == "preset" or k not in FIELD_SPEC:
            continue
        try:
            values[k] = coerce_field(k, v)
        except ConfigError as exc:
            problems.append(str(exc))
    return replace(base, **values), problems


def classroom_from_query(params: Mapping[str, Any]) -> bool:
    v = params.get(CLASSROOM_KEY)
    if isinstance(v, (list, tuple)):
        v = v[-1] if v else None
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def settings_to_dict(settings: TrainSettings) -> dict:
    return asdict(settings)


def settings_from_dict(d: Mapping[str, Any]) -> TrainSettings:
    """Strict inverse of ``settings_to_dict`` (unknown keys and bad values raise ``ConfigError``)."""
    return replace(TrainSettings(), **{k: coerce_field(k, v) for k, v in d.items()})


# ---- per-session keys ---------------------------------------------------------------------------
# Widget keys are the setting names prefixed, so they never collide with other pages' keys.

WIDGET_PREFIX = "train."


def widget_key(name: str) -> str:
    return WIDGET_PREFIX + name


def settings_from_session(session: Mapping[str, Any], fallback: TrainSettings) -> tuple[TrainSettings, list[str]]:
    """The settings currently in the widgets (``session[widget_key(name)]``); a value a widget holds
    that does not validate (e.g. a typo in the hidden sizes) is reported and replaced by ``fallback``'s."""
    values, problems = {}, []
    for f in fields(TrainSettings):
        key = widget_key(f.name)
        if key not in session:
            continue
        try:
            values[f.name] = coerce_field(f.name, session[key])
        except ConfigError as exc:
            problems.append(str(exc))
    return replace(fallback, **values), problems


def write_settings_to_session(session, settings: TrainSettings) -> None:
    """Fill the widgets with ``settings`` (call before the widgets are created, or from a callback)."""
    for f in fields(TrainSettings):
        session[widget_key(f.name)] = getattr(settings, f.name)
