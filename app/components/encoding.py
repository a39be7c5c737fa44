"""Streamlit-free helpers the Data and Detect pages share: build an encoder from a model's stored
settings. (Whole recordings are encoded by ``stca_engine.detect.encode_recording``, as in ``stca detect``.)"""

from __future__ import annotations


def encoder_from_settings(settings: dict | None, default: str = "spectral"):
    """An encoder from stored settings: ``Encoder.settings()`` (``{"encoder", "version", ...}``, what checkpoints
    and the cache keep, version-checked by the engine) or a UI dict ``{"name": ..., **settings}``."""
    from stca_engine.encoders import encoder_from_settings as engine_from_settings
    from stca_engine.encoders import make_encoder

    settings = dict(settings or {})
    name = settings.pop("name", None)
    if "encoder" in settings:
        return engine_from_settings(settings)
    return make_encoder(name or default, **settings)


def split_result(result):
    """Encoders return ``(SpikeTrain, report)``; tolerate a bare ``SpikeTrain``."""
    if isinstance(result, tuple):
        return result[0], (result[1] if len(result) > 1 else None)
    return result, None
