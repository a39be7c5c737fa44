"""One interface over the sound encoders, so loaders, the cache, the CLI and the app need not care
which one is in use.

``settings()`` is a JSON-able dict that fully determines the output for a given waveform (it
includes the encoder's name and algorithm version), so it can key the on-disk cache.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .data.types import SpikeTrain
from .errors import ConfigError
from .spectral import SpectralConfig, encode_spectral
from .spikegram import SpikegramConfig, encode_spikegram

__all__ = ["Encoder", "SpikegramEncoder", "SpectralEncoder", "make_encoder", "ENCODER_NAMES", "encoder_from_settings"]

ENCODER_NAMES = ("spikegram", "spectral")
# bump when an encoder's output changes for the same settings (invalidates cached encodings)
_VERSIONS = {"spikegram": 1, "spectral": 1}


@runtime_checkable
class Encoder(Protocol):
    name: str
    n_units: int
    dt_ms: float

    def settings(self) -> dict[str, Any]: ...

    def encode(self, wave: np.ndarray) -> tuple[SpikeTrain, Any]: ...


def _settings(name: str, cfg: dict) -> dict[str, Any]:
    plain = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in cfg.items()}
    return {"encoder": name, "version": _VERSIONS[name], **plain}


class _ConfiguredEncoder:
    """What both encoders share: everything follows from ``name`` and a validated ``config``."""

    name: str
    config: Any

    @property
    def n_units(self) -> int:
        return self.config.n_units

    @property
    def dt_ms(self) -> float:
        return float(self.config.dt_ms)

    def settings(self) -> dict[str, Any]:
        return _settings(self.name, self.config.to_dict())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


class SpikegramEncoder(_ConfiguredEncoder):
    """Matching pursuit over gammatones (see :mod:`stca_engine.spikegram`)."""

    name = "spikegram"

    def __init__(self, config: SpikegramConfig | None = None, **settings):
        preset = settings.pop("preset", None)
        if preset == "medleydb":
            base = SpikegramConfig.medleydb().to_dict()
        elif preset in (None, "default"):
            base = {}
        else:
            raise ConfigError(f"unknown preset {preset!r} (known: default, medleydb)", "spikegram.preset")
        if config is not None:
            base = config.to_dict()
        self.config = SpikegramConfig.from_dict({**base, **settings})

    def encode(self, wave: np.ndarray):
        return encode_spikegram(wave, self.config)


class SpectralEncoder(_ConfiguredEncoder):
    """Threshold crossings on a mel/gammatone spectrogram (see :mod:`stca_engine.spectral`)."""

    name = "spectral"

    def __init__(self, config: SpectralConfig | None = None, **settings):
        base = config.to_dict() if config is not None else {}
        self.config = SpectralConfig.from_dict({**base, **settings})

    def encode(self, wave: np.ndarray):
        return encode_spectral(wave, self.config)

    def piece_count(self, n_samples: int, piece_samples: int) -> int:
        """Progress calls ``encode_pieces`` makes for a wave of ``n_samples`` (two passes when cut)."""
        from .spectral import piece_cores

        n = len(piece_cores(n_samples, self.config, piece_samples))
        return 1 if n == 1 else 2 * n

    def encode_pieces(self, wave: np.ndarray, piece_samples: int, progress=None):
        """The spike train of ``encode(wave)``, computed in pieces of ``piece_samples`` (bounded memory,
        identical spikes; see ``spectral.encode_spectral_pieces``)."""
        from .spectral import encode_spectral_pieces

        return encode_spectral_pieces(wave, self.config, piece_samples, progress)


def make_encoder(name: str = "spikegram", **settings) -> Encoder:
    """``make_encoder("spikegram", spikes_per_second=2000)``, ``make_encoder("spikegram", preset="medleydb")``,
    ``make_encoder("spectral", kind="gammatone")``. Unknown names or settings raise ConfigError."""
    if name == "spikegram":
        return SpikegramEncoder(**settings)
    if name == "spectral":
        return SpectralEncoder(**settings)
    raise ConfigError(f"unknown encoder {name!r} (known: {', '.join(ENCODER_NAMES)})", "encoder")


def encoder_from_settings(settings: dict[str, Any]) -> Encoder:
    """Inverse of ``Encoder.settings()`` (e.g. from a checkpoint's or cache's JSON)."""
    s = dict(settings)
    name = s.pop("encoder", None)
    version = s.pop("version", None)
    if name not in ENCODER_NAMES:
        raise ConfigError(f"unknown encoder {name!r} (known: {', '.join(ENCODER_NAMES)})", "encoder")
    if version is not None and version != _VERSIONS[name]:
        raise ConfigError(f"settings are for {name} version {version}, this engine has {_VERSIONS[name]}", "encoder")
    return make_encoder(name, **s)


def _hz(f: float) -> str:
    return f"{f / 1000:.1f} kHz" if f >= 1000 else f"{f:.0f} Hz"


def _band_labels(centre_hz, n_levels: int) -> list[str]:
    """``"<band centre> · level l/n"`` for afferent ``band · n_levels + level`` (level 1 the loudest)."""
    return [f"{_hz(f)} · level {b + 1}/{n_levels}" for f in centre_hz for b in range(n_levels)]


def afferent_labels(settings: dict[str, Any] | None, n_inputs: int) -> list[str]:
    """A name for each input afferent, so learnt weights read as receptive fields.

    Sound encoders: ``"<centre frequency> · level <l>/<n>"`` (level 1 = loudest; spikegram afferent
    ``kernel · n_bins + bin``, spectral ``band · n_levels + level``); rate-coded square images:
    ``"pixel (row, col)"``; anything else (or settings that do not match ``n_inputs``): ``"afferent i"``.
    """
    s = dict(settings or {})
    name = s.get("encoder")
    try:
        if name == "spikegram":
            from .spikegram import SpikegramConfig, erb_space

            cfg = SpikegramConfig.from_dict({k: v for k, v in s.items() if k not in ("encoder", "version")})
            if cfg.n_units == n_inputs:
                return _band_labels(erb_space(cfg.f_min, cfg.f_max, cfg.n_kernels), cfg.n_bins)
        elif name == "spectral":
            from .spectral import SpectralConfig

            cfg = SpectralConfig(**{k: v for k, v in s.items() if k not in ("encoder", "version")})
            if cfg.n_units == n_inputs:
                if cfg.kind == "mel":
                    import librosa

                    hz = librosa.mel_frequencies(cfg.n_bands + 2, fmin=cfg.f_min, fmax=cfg.f_max)[1:-1]
                else:
                    from .spikegram import erb_space

                    hz = erb_space(cfg.f_min, cfg.f_max, cfg.n_bands)
                return _band_labels(hz, cfg.n_levels)
        elif name == "rate":
            side = int(round(n_inputs**0.5))
            if side * side == n_inputs:
                return [f"pixel ({r}, {c})" for r in range(side) for c in range(side)]
    except (ConfigError, TypeError, ValueError):
        pass
    return [f"afferent {i}" for i in range(int(n_inputs))]
