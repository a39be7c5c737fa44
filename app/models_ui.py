"""Trained models in the app: keep, save, load, download and upload them.

A model travels as safetensors weights plus a JSON config (``stca_engine.checkpoint``), never a
pickle. Inside a browser session the current model lives in ``st.session_state["trained_model"]``
as a plain dict (``MODEL_KEYS``) so the Detect page can run it without knowing where it came from.

The functions above ``render_models_panel`` are Streamlit-free (tested directly); the panel is the
UI around them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from stca_engine.errors import CheckpointError, ConfigError, StcaError

REPO = Path(__file__).resolve().parents[1]
SESSION_KEY = "trained_model"
MODEL_KEYS = ("net", "neuron_cfg", "class_names", "encoder_settings", "task", "objective")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def runs_root() -> Path:
    """Where models are saved: ``$STCA_RUNS_DIR`` or the repo's ``runs/``."""
    env = os.environ.get("STCA_RUNS_DIR")
    return Path(env).expanduser() if env else REPO / "runs"


def check_run_name(name: str) -> str:
    """A run name usable as one folder name: letters, digits, ``. _ -``, at most 64 characters.

    Anything else (slashes, ``..``, spaces) is refused so a name can never point outside ``runs/``."""
    name = str(name).strip()
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise ConfigError(
            "use 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit)", f"model name {name!r}"
        )
    return name


def make_model(net, neuron_cfg, class_names, encoder_settings, task, objective, **extra) -> dict:
    """The session's model record (``MODEL_KEYS`` plus optional extras such as ``train_config``,
    ``epochs_trained``, ``source``)."""
    model = {
        "net": net,
        "neuron_cfg": neuron_cfg,
        "class_names": list(class_names or []),
        "encoder_settings": dict(encoder_settings or {}),
        "task": task,
        "objective": objective,
    }
    model.update(extra)
    return model


def _from_loaded(net, info, source: str) -> dict:
    extra = dict(info.extra or {})
    return make_model(
        net,
        info.neuron_cfg,
        info.class_names or [f"class {i}" for i in range(net.n_outputs)],
        info.encoder_settings or {},
        info.task or "detect",
        info.objective or "stca",
        train_config=info.train_config,
        epochs_trained=extra.get("epochs_trained"),
        source=source,
    )


def _save_args(model: dict) -> dict:
    extra = {"epochs_trained": model.get("epochs_trained")} if model.get("epochs_trained") is not None else {}
    return dict(
        train_cfg=model.get("train_config"),
        class_names=model["class_names"],
        encoder_settings=model.get("encoder_settings") or {},
        extra=extra,
        task=model["task"],
        objective=model["objective"],
    )


def save_to_disk(model: dict, name: str, root: Path | None = None, overwrite: bool = False) -> Path:
    """Write the model to ``<root>/<name>/`` (``config.json`` + ``model.safetensors``)."""
    from stca_engine.checkpoint import save_model

    root = runs_root() if root is None else Path(root)
    folder = root / check_run_name(name)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise CheckpointError("a saved model with this name exists; choose another name or allow overwriting", folder)
    return save_model(folder, model["net"], model["neuron_cfg"], **_save_args(model))


def list_saved(root: Path | None = None) -> list[str]:
    """Names of the saved models under ``root`` (folders holding a ``config.json``), newest first."""
    root = runs_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file()]
    found.sort(key=lambda p: (p / "config.json").stat().st_mtime, reverse=True)
    return [p.name for p in found]


def load_from_disk(name: str, root: Path | None = None) -> dict:
    from stca_engine.checkpoint import load_model

    root = runs_root() if root is None else Path(root)
    folder = root / check_run_name(name)
    if not folder.is_dir():
        raise CheckpointError("no saved model with this name", folder)
    net, info = load_model(folder, device="cpu")
    return _from_loaded(net, info, source=f"runs/{name}")


READY_MODEL_DIR = REPO / "assets" / "models" / "demo-detect"


def ready_model_dir() -> Path | None:
    """The ready-made detection model for the demo set shipped with the repo (``scripts/make_demo_model.py``
    made it); ``$STCA_READY_MODEL`` points elsewhere, or (empty) to none."""
    env = os.environ.get("STCA_READY_MODEL")
    if env is None:
        return READY_MODEL_DIR
    return Path(env).expanduser() if env.strip() else None


def has_ready_model() -> bool:
    d = ready_model_dir()
    return d is not None and (d / "config.json").is_file() and (d / "model.safetensors").is_file()


def load_ready() -> dict:
    """The shipped demo detection model as a session model dict."""
    from stca_engine.checkpoint import load_model

    net, info = load_model(ready_model_dir(), device="cpu")
    return _from_loaded(net, info, source="built-in demo model")


def to_zip_bytes(model: dict) -> bytes:
    from stca_engine.checkpoint import model_to_zip_bytes

    return model_to_zip_bytes(model["net"], model["neuron_cfg"], **_save_args(model))


def from_zip_bytes(data: bytes, filename: str = "model.zip") -> dict:
    """A model from an uploaded zip, size-checked before it is opened."""
    from stca_engine.checkpoint import model_from_zip_bytes
    from stca_engine.limits import check_upload_size

    try:
        check_upload_size(len(data), filename)
    except StcaError as exc:
        raise CheckpointError(exc.problem, filename) from None
    net, info = model_from_zip_bytes(data, device="cpu", name=filename)
    return _from_loaded(net, info, source=f"upload {filename}")


def describe(model: dict) -> str:
    """One line for the UI: architecture, task, objective, classes."""
    sizes = "-".join(str(n) for n in model["net"].sizes)
    ep = model.get("epochs_trained")
    trained = f", {ep} epochs" if ep is not None else ""
    return (
        f"{sizes} network · {model['task']} · {model['objective'].upper()}{trained} · "
        f"{len(model['class_names'])} classes ({', '.join(model['class_names'][:6])}"
        f"{', …' if len(model['class_names']) > 6 else ''})"
    )


# ---- UI ------------------------------------------------------------------------------------------


def render_model_status(box: Any, model) -> None:
    """The one line that says which model the Detect page uses (a live run redraws it after each epoch)."""
    from components import plain

    if model is not None:
        box.success(f"Current model: {plain(describe(model))}. The **Detect** page uses it.")
    else:
        box.info("No trained model yet: train one above, load a saved one or upload a .zip.")


def render_models_panel(st: Any, default_name: str = "my-run", status_line: bool = True) -> None:
    """Save / load / download / upload, around ``st.session_state["trained_model"]``. With
    ``status_line=False`` the caller draws ``render_model_status`` itself (the Train page's live fragment,
    which redraws it after every epoch)."""
    from components import plain, show_error

    model = st.session_state.get(SESSION_KEY)
    if status_line:
        render_model_status(st, model)
    c_save, c_load, c_zip = st.columns(3)
    with c_save:
        st.markdown("**Save to disk** (`runs/<name>/`)")
        name = st.text_input("Model name", value=default_name, key="models.save_name")
        overwrite = st.checkbox("Overwrite if it exists", key="models.overwrite")
        if st.button("Save", icon=":material/save:", key="models.save", disabled=model is None):
            try:
                folder = save_to_disk(model, name, overwrite=overwrite)
                st.success(f"Saved to {plain(folder)}")
            except Exception as exc:  # noqa: BLE001 - shown, never a traceback
                show_error(exc)
    with c_load:
        st.markdown("**Load from disk**")
        names = list_saved()
        pick = st.selectbox(
            "Saved models", names, key="models.pick", index=0 if names else None, placeholder="nothing saved yet"
        )
        if st.button("Load", icon=":material/folder_open:", key="models.load", disabled=not names):
            try:
                st.session_state[SESSION_KEY] = load_from_disk(pick)
                st.success(f"Loaded {plain(pick)}: {plain(describe(st.session_state[SESSION_KEY]))}")
            except Exception as exc:  # noqa: BLE001 - shown, never a traceback
                show_error(exc)
    with c_zip:
        st.markdown("**Download / upload** (.zip: safetensors + JSON)")
        if model is not None:
            st.download_button(
                "Download model.zip",
                icon=":material/download:",
                data=lambda: to_zip_bytes(model),
                file_name=f"{default_name}.zip",
                mime="application/zip",
                key="models.download",
            )
        up = st.file_uploader("Upload a model .zip", type=["zip"], key="models.upload")
        if up is not None:
            token = (up.name, up.size)
            if st.session_state.get("models.last_upload") != token:
                try:
                    st.session_state[SESSION_KEY] = from_zip_bytes(up.getvalue(), up.name)
                    st.session_state["models.last_upload"] = token
                    st.success(f"Loaded {plain(up.name)}: {plain(describe(st.session_state[SESSION_KEY]))}")
                except Exception as exc:  # noqa: BLE001
                    show_error(exc)
