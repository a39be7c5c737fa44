"""STCA engine: C-LIF spiking networks trained with spatio-temporal credit assignment (IJCAI-19).

Public names are imported lazily so that ``import stca_engine`` stays fast (numba kernels compile
on first use, not at import).
"""

from __future__ import annotations

import importlib
import os

from .version import __version__

# OpenMP pools (torch's and numba's) spin between parallel regions by default; on a shared 2-core
# machine that spinning made one training step 3-4x slower. Takes effect only if set before torch
# loads, which is why it is here; set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# public name -> module that defines it
_EXPORTS = {
    "NeuronConfig": "config",
    "SNN": "network",
    "Recording": "network",
    "count_clusters": "clusters",
    "stca_loss": "losses",
    "LossInfo": "losses",
    "predict": "losses",
    "cluster_spans": "clusters",
    "k_plus": "clusters",
    "k_minus": "clusters",
    "Trainer": "trainer",
    "TrainConfig": "config",
    "EpochReport": "reports",
    "evaluate": "evaluation",
    "save_model": "checkpoint",
    "load_model": "checkpoint",
    "ModelInfo": "checkpoint",
    "model_to_zip_bytes": "checkpoint",
    "model_from_zip_bytes": "checkpoint",
    "load_audio": "audio",
    "load_audio_bytes": "audio",
    "read_raw_pcm16": "audio",
    "SpikegramConfig": "spikegram",
    "encode_spikegram": "spikegram",
    "SpectralConfig": "spectral",
    "encode_spectral": "spectral",
    "rate_encode": "rate",
    "Encoder": "encoders",
    "make_encoder": "encoders",
    "default_device": "device",
    "describe_device": "device",
    "StcaError": "errors",
    "ConfigError": "errors",
    "AudioError": "errors",
    "DatasetError": "errors",
    "CheckpointError": "errors",
    "TrainingError": "errors",
    "PathNotAllowedError": "errors",
    "SpikeTrain": "data.types",
    "Sample": "data.types",
    "SpikeDataset": "data.types",
    "Event": "data.types",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stca_engine' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
