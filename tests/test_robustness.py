"""Every bad input of SPEC §10 / the robustness issue, one table row each, asserting the message.

Each row builds its bad input inside ``tmp_path`` in the real on-disk layout, calls the entry point
a user reaches (engine function, dataset loader, the ``stca`` CLI in a subprocess, or an app page
through ``streamlit.testing.v1.AppTest``) and checks that the error is a ``StcaError`` subclass whose
one-line message names the file (or setting) and the problem. The list of cases with their exact
messages is docs/ROBUSTNESS.md.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stca_engine import audio, limits
from stca_engine.config import NeuronConfig
from stca_engine.errors import AudioError, CheckpointError, ConfigError, DatasetError, StcaError, TrainingError

REPO = Path(__file__).resolve().parents[1]
SR = 16000


# ---- builders of (bad) files ----------------------------------------------------------------------


def tone(seconds=0.3, sr=SR, freq=440.0, amp=0.5, channels=1):
    t = np.arange(int(round(seconds * sr))) / sr
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def write_wav(path: Path, x, sr=SR, subtype="FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, format="WAV", subtype=subtype)
    return path


def wav_bytes(x, sr=SR, subtype="FLOAT") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def raw_pcm(path: Path, seconds=0.2, freq=700.0, order="<", sr=48000, amp=0.4) -> Path:
    """An RWCP-style headerless 16-bit mono 48 kHz file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    pcm = (amp * np.sin(2 * np.pi * freq * t) * 32767).astype(order + "i2")
    path.write_bytes(pcm.tobytes())
    return path


def rwcp_tree(root: Path, classes=("bells5", "horn"), n=4, group="a1") -> Path:
    for k, c in enumerate(classes):
        for i in range(n):
            raw_pcm(root / "nospeech" / "drysrc" / group / c / "48khz" / f"{i:03d}.raw", freq=400 + 300 * k + 20 * i)
    return root


# ---- the table ------------------------------------------------------------------------------------


@dataclass
class Case:
    """``run(tmp)`` builds the bad input and calls the entry point; it must raise ``error`` whose
    message contains every fragment (``{tmp}`` is replaced by the case's folder)."""

    id: str
    run: Callable[[Path], object]
    error: type
    fragments: tuple[str, ...]


def _patched_wav(offset: int, field: bytes) -> bytes:
    """A valid 16-bit WAV whose header field at ``offset`` is overwritten (a damaged or forged header)."""
    b = bytearray(wav_bytes(tone(0.5), subtype="PCM_16"))
    b[offset : offset + len(field)] = field
    return bytes(b)


def _audio_cases() -> list[Case]:
    def unreadable(tmp):
        p = tmp / "locked.wav"
        (tmp / "locked.wav").mkdir()  # a folder where a file is expected: cannot be read as audio
        return audio.load_audio(p)

    def dangling(tmp):
        p = tmp / "moved.wav"
        p.symlink_to(tmp / "was-here.wav")  # a link whose target is gone
        return audio.load_audio(p)

    def truncated_header(tmp):
        p = tmp / "cut.wav"
        p.write_bytes(wav_bytes(tone())[:30])
        return audio.load_audio(p)

    def nan_samples(tmp):
        x = tone()
        x[100, 0] = np.nan
        return audio.load_audio(write_wav(tmp / "nan.wav", x))

    def inf_samples(tmp):
        x = tone(channels=2)
        x[5, 1] = np.inf
        x[6, 0] = -np.inf
        return audio.load_audio(write_wav(tmp / "inf.wav", x))

    def renamed_text(tmp):
        p = tmp / "notes.wav"
        p.write_text("these are my lecture notes, not a recording\n" * 40)
        return audio.load_audio(p)

    def renamed_png(tmp):
        p = tmp / "picture.wav"
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
        return audio.load_audio(p)

    def over_long_app_limit(tmp, monkeypatch=None):
        os.environ["STCA_MAX_AUDIO_SECONDS"] = "1.5"
        try:
            return audio.load_audio(write_wav(tmp / "long.wav", tone(2.0)), max_seconds=limits.max_audio_seconds())
        finally:
            del os.environ["STCA_MAX_AUDIO_SECONDS"]

    return [
        Case("audio-missing", lambda t: audio.load_audio(t / "gone.wav"), AudioError, ("gone.wav: file not found",)),
        Case("audio-unreadable-folder", unreadable, AudioError, ("locked.wav: not a file",)),
        Case("audio-dangling-symlink", dangling, AudioError, ("moved.wav: file not found",)),
        Case(
            "audio-fifo-never-blocks",
            lambda t: (os.mkfifo(t / "pipe.wav"), audio.load_audio(t / "pipe.wav")),
            AudioError,
            ("pipe.wav: not a file",),
        ),
        Case(
            "audio-empty-file",
            lambda t: audio.load_audio((t / "empty.wav", (t / "empty.wav").write_bytes(b""))[0]),
            AudioError,
            ("empty.wav: empty file (0 bytes)",),
        ),
        Case(
            "audio-empty-wav-no-frames",
            lambda t: audio.load_audio(
                write_wav(t / "noframes.wav", np.zeros((0, 1))),
            ),
            AudioError,
            ("noframes.wav: ", "empty"),
        ),
        Case(
            "audio-silent",
            lambda t: audio.load_audio(write_wav(t / "quiet.wav", np.zeros((SR // 2, 1)))),
            AudioError,
            ("quiet.wav: silent",),
        ),
        Case(
            "audio-silent-int16-dither",
            lambda t: audio.load_audio(
                write_wav(
                    t / "dither.wav",
                    (np.random.default_rng(0).integers(-1, 2, (SR, 1)) / 32768.0).astype(np.float32),
                    subtype="PCM_16",
                )
            ),
            AudioError,
            ("dither.wav: silent",),
        ),
        Case(
            "audio-too-short",
            lambda t: audio.load_audio(write_wav(t / "blip.wav", tone(0.01))),
            AudioError,
            ("blip.wav: too short: 10.0 ms",),
        ),
        Case(
            "audio-too-long",
            lambda t: audio.load_audio(write_wav(t / "long.wav", tone(2.0)), max_seconds=1.0),
            AudioError,
            ("long.wav: too long: 2.00 s (the limit is 1 s)",),
        ),
        Case(
            "audio-too-long-app-limit",
            over_long_app_limit,
            AudioError,
            ("long.wav: too long: 2.00 s (the limit is 1.5 s)",),
        ),
        Case("audio-truncated-header", truncated_header, AudioError, ("cut.wav: ",)),
        Case("audio-nan", nan_samples, AudioError, ("nan.wav: contains 1 NaN/inf samples",)),
        Case("audio-inf", inf_samples, AudioError, ("inf.wav: contains 2 NaN/inf samples",)),
        Case("audio-renamed-text", renamed_text, AudioError, ("notes.wav: not a readable audio file",)),
        Case("audio-renamed-png", renamed_png, AudioError, ("picture.wav: not a readable audio file",)),
        # uploads: the bytes of a browser upload
        Case(
            "upload-empty",
            lambda t: audio.load_audio_bytes(b"", "up.wav"),
            AudioError,
            ("up.wav: empty upload (0 bytes)",),
        ),
        Case(
            "upload-renamed-text",
            lambda t: audio.load_audio_bytes(b"hello, not audio " * 100, "song.wav"),
            AudioError,
            ("song.wav: not a readable audio file",),
        ),
        Case(
            "upload-nan",
            lambda t: audio.load_audio_bytes(wav_bytes(np.full((SR, 1), np.nan, np.float32)), "nan.wav"),
            AudioError,
            ("nan.wav: contains 16000 NaN/inf samples",),
        ),
        Case(
            "upload-silent",
            lambda t: audio.load_audio_bytes(wav_bytes(np.zeros((SR, 2))), "zeros.wav"),
            AudioError,
            ("zeros.wav: silent",),
        ),
        Case(
            "upload-too-short",
            lambda t: audio.load_audio_bytes(wav_bytes(tone(0.02)), "short.wav"),
            AudioError,
            ("short.wav: too short: 20.0 ms",),
        ),
        Case(
            "upload-too-long",
            lambda t: audio.load_audio_bytes(wav_bytes(tone(3.0)), "long.wav", max_seconds=2),
            AudioError,
            ("long.wav: too long: 3.00 s (the limit is 2 s)",),
        ),
        Case(
            "upload-header-sample-rate-zero",
            lambda t: audio.load_audio_bytes(_patched_wav(24, struct.pack("<I", 0)), "rate0.wav"),
            AudioError,
            ("rate0.wav: invalid sample rate 0",),
        ),
        Case(
            "upload-header-zero-channels",
            lambda t: audio.load_audio_bytes(_patched_wav(22, struct.pack("<H", 0)), "chan0.wav"),
            AudioError,
            ("chan0.wav: not a readable audio file",),
        ),
        Case(
            "upload-over-size-cap",
            lambda t: limits.check_upload_size(3 * 2**20 + 1, "big.wav", limit_mb=3),
            AudioError,
            ("big.wav: upload too large: 3.0 MB (the limit is 3 MB",),
        ),
    ]


def _raw_cases() -> list[Case]:
    def odd(tmp):
        p = tmp / "001.raw"
        p.write_bytes(b"\x00\x01\x02")
        return audio.read_raw_pcm16(p)

    def silent(tmp):
        p = tmp / "002.raw"
        p.write_bytes(b"\x00\x00" * 4800)
        return audio.read_raw_pcm16(p)

    return [
        Case("raw-odd-size", odd, AudioError, ("001.raw: odd number of bytes (3); not 16-bit PCM",)),
        Case(
            "raw-empty",
            lambda t: audio.read_raw_pcm16((t / "e.raw", (t / "e.raw").write_bytes(b""))[0]),
            AudioError,
            ("e.raw: empty file (0 bytes)",),
        ),
        Case("raw-silent", silent, AudioError, ("002.raw: silent",)),
    ]


def _rwcp_cases() -> list[Case]:
    from stca_engine.data.rwcp import load_rwcp

    def missing_class(tmp):
        return load_rwcp(rwcp_tree(tmp / "rwcp"), classes=["bells5", "horn", "whistle1", "cup1"])

    def unknown_class(tmp):
        return load_rwcp(rwcp_tree(tmp / "rwcp"), classes="bells5,nosuchsound")

    def paper_set_incomplete(tmp):
        return load_rwcp(rwcp_tree(tmp / "rwcp"), classes="paper")

    def no_rate_folder(tmp):
        root = rwcp_tree(tmp / "rwcp")
        (root / "nospeech" / "drysrc" / "a1" / "ring" / "16khz").mkdir(parents=True)
        return load_rwcp(root, classes=["bells5", "ring"])

    def no_classes(tmp):
        (tmp / "empty_rwcp" / "nospeech").mkdir(parents=True)
        return load_rwcp(tmp / "empty_rwcp")

    def class_without_files(tmp):
        root = rwcp_tree(tmp / "rwcp")
        (root / "nospeech" / "drysrc" / "a1" / "ring" / "48khz").mkdir(parents=True)
        return load_rwcp(root, classes=["bells5", "ring"])

    def all_odd(tmp):
        root = tmp / "rwcp"
        for c in ("bells5", "horn"):
            for i in range(3):
                p = root / c / "48khz" / f"{i:03d}.raw"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"\x01" * 101)
        return load_rwcp(root)

    return [
        Case(
            "rwcp-missing-root",
            lambda t: load_rwcp(t / "nowhere"),
            DatasetError,
            ("nowhere: RWCP folder does not exist",),
        ),
        Case(
            "rwcp-missing-classes",
            missing_class,
            DatasetError,
            ("rwcp: missing class(es) whistle1, cup1; found: bells5, horn",),
        ),
        Case("rwcp-unknown-class", unknown_class, DatasetError, ("rwcp: missing class(es) nosuchsound",)),
        Case("rwcp-paper-set-incomplete", paper_set_incomplete, DatasetError, ("rwcp: missing class(es) bank",)),
        Case("rwcp-no-48khz-folder", no_rate_folder, DatasetError, ("ring: class folder has no 48khz folder",)),
        Case("rwcp-no-class-folders", no_classes, DatasetError, ("empty_rwcp: no RWCP class folders found",)),
        Case(
            "rwcp-class-without-files",
            class_without_files,
            DatasetError,
            ("48khz: class 'ring': no .raw files (need at least 2)",),
        ),
        Case("rwcp-only-odd-sized-files", all_odd, DatasetError, ("rwcp: no class has at least 2 usable .raw files",)),
    ]


def _config_cases() -> list[Case]:
    from stca_engine.config import TrainConfig
    from stca_engine.network import SNN

    return [
        Case(
            "config-negative-tau-m",
            lambda t: NeuronConfig(tau_m_ms=-30.0),
            ConfigError,
            ("neuron config: tau_m_ms must be > 0, got -30.0",),
        ),
        Case(
            "config-negative-tau-s",
            lambda t: NeuronConfig(tau_s_ms=-1.0),
            ConfigError,
            ("neuron config: tau_s_ms must be > 0, got -1.0",),
        ),
        Case(
            "config-tau-s-equal-tau-m",
            lambda t: NeuronConfig(tau_s_ms=30.0),
            ConfigError,
            ("neuron config: tau_s_ms (30.0) must be smaller than tau_m_ms (30.0)",),
        ),
        Case(
            "config-tau-s-above-tau-m",
            lambda t: NeuronConfig(tau_m_ms=10.0, tau_s_ms=20.0),
            ConfigError,
            ("neuron config: tau_s_ms (20.0) must be smaller than tau_m_ms (10.0)",),
        ),
        Case(
            "config-alpha-zero",
            lambda t: NeuronConfig(alpha=0.0),
            ConfigError,
            ("neuron config: alpha (surrogate width) must be > 0, got 0.0",),
        ),
        Case(
            "config-alpha-negative",
            lambda t: NeuronConfig(alpha=-2.0),
            ConfigError,
            ("neuron config: alpha (surrogate width) must be > 0",),
        ),
        Case(
            "config-t-in-below-one-step",
            lambda t: NeuronConfig(t_in_ms=1.0),
            ConfigError,
            ("neuron config: t_in_ms (1.0) must be at least one time step (dt_ms = 3.0)",),
        ),
        Case("config-dt-zero", lambda t: NeuronConfig(dt_ms=0.0), ConfigError, ("neuron config: dt_ms must be > 0",)),
        Case(
            "config-dt-degenerate-tiny",
            lambda t: NeuronConfig(dt_ms=1e-300),
            ConfigError,
            (
                "neuron config: dt_ms (1e-300), tau_m_ms (30.0) and tau_s_ms (7.5) give decays",
                "0 <= beta_s < beta_m < 1",
            ),
        ),
        Case(
            "config-t-in-overflows-steps",
            lambda t: NeuronConfig(dt_ms=1e-300, t_in_ms=1e300),
            ConfigError,
            ("neuron config: t_in_ms (1e+300) is too many time steps of dt_ms (1e-300)",),
        ),
        Case(
            "config-tau-s-a-few-ulps-below-tau-m",
            lambda t: NeuronConfig(tau_m_ms=1.0, tau_s_ms=0.9999999999999999, dt_ms=0.1, t_in_ms=1.0),
            ConfigError,
            ("neuron config: dt_ms (0.1), tau_m_ms (1.0) and tau_s_ms (0.9999999999999999) give decays",),
        ),
        Case(
            "config-time-constants-too-far-apart",
            lambda t: NeuronConfig(tau_m_ms=1e300, tau_s_ms=1e-300, dt_ms=1.0, t_in_ms=10.0),
            ConfigError,
            ("neuron config: dt_ms (1.0), tau_m_ms (1e+300) and tau_s_ms (1e-300) give decays beta_m = 1, beta_s = 0",),
        ),
        Case(
            "config-nan",
            lambda t: NeuronConfig(theta=float("nan")),
            ConfigError,
            ("neuron config: theta must be finite",),
        ),
        Case(
            "config-string",
            lambda t: NeuronConfig(tau_m_ms="30"),
            ConfigError,
            ("neuron config: tau_m_ms must be a number, got '30'",),
        ),
        Case(
            "config-unknown-key",
            lambda t: NeuronConfig.from_dict({"tau_m": 30.0}),
            ConfigError,
            ("neuron config: unknown setting(s) ['tau_m']",),
        ),
        Case(
            "config-empty-layer-list",
            lambda t: SNN([], NeuronConfig()),
            ConfigError,
            ("SNN sizes: need at least 2 layer sizes",),
        ),
        Case(
            "config-zero-width-layer",
            lambda t: SNN([8, 0, 2], NeuronConfig()),
            ConfigError,
            ("SNN sizes: layer sizes must be positive integers, got 0",),
        ),
        Case(
            "train-config-negative-lr",
            lambda t: TrainConfig(lr=-1.0).validate(),
            ConfigError,
            ("train config: lr: must be > 0, got -1.0",),
        ),
        Case(
            "train-config-zero-batch",
            lambda t: TrainConfig(batch_size=0).validate(),
            ConfigError,
            ("train config: batch_size: must be >= 1, got 0",),
        ),
        Case(
            "train-config-bad-hidden",
            lambda t: TrainConfig(hidden=[0]).validate(),
            ConfigError,
            ("train config: hidden: layer sizes must be integers in 1..100000",),
        ),
        Case(
            "encoder-unknown",
            lambda t: _enc("nosuch"),
            ConfigError,
            ("encoder: unknown encoder 'nosuch' (known: spikegram, spectral)",),
        ),
        Case(
            "encoder-spikegram-kernels-out-of-range",
            lambda t: _enc("spikegram", n_kernels=-1),
            ConfigError,
            ("spikegram.n_kernels: must be between 1 and 512 (got -1)",),
        ),
        Case(
            "encoder-spikegram-above-nyquist",
            lambda t: _enc("spikegram", f_max=1e6),
            ConfigError,
            ("spikegram.f_max: must not exceed the Nyquist frequency 8000 Hz",),
        ),
        Case(
            "encoder-spectral-zero-bands",
            lambda t: _enc("spectral", n_bands=0),
            ConfigError,
            ("spectral.n_bands: must be between 1 and 512 (got 0)",),
        ),
        Case(
            "encoder-unknown-setting",
            lambda t: _enc("spikegram", bogus=1),
            ConfigError,
            ("spikegram: unknown setting(s) bogus",),
        ),
        Case(
            "encoder-nan-waveform",
            lambda t: _enc("spectral").encode(np.full(1600, np.nan, np.float32)),
            AudioError,
            ("waveform: waveform contains NaN/inf samples",),
        ),
        Case(
            "encoder-empty-waveform",
            lambda t: _enc("spectral").encode(np.zeros(0, np.float32)),
            AudioError,
            ("waveform: expected a non-empty mono 1-D waveform",),
        ),
        Case(
            "limits-bad-env",
            lambda t: _with_env({"STCA_MAX_UPLOAD_MB": "lots"}, limits.max_upload_mb),
            ConfigError,
            ("STCA_MAX_UPLOAD_MB: must be a number, got 'lots'",),
        ),
        Case(
            "limits-negative-env",
            lambda t: _with_env({"STCA_MAX_AUDIO_SECONDS": "-5"}, limits.max_audio_seconds),
            ConfigError,
            ("STCA_MAX_AUDIO_SECONDS: must be a finite number > 0, got '-5'",),
        ),
    ]


def _enc(name, **settings):
    from stca_engine.encoders import make_encoder

    return make_encoder(name, **settings)


def _with_env(env: dict, fn):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return fn()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


ENGINE_CASES = [*_audio_cases(), *_raw_cases(), *_rwcp_cases(), *_config_cases()]


def _assert_message(exc: BaseException, case: Case, tmp: Path):
    msg = str(exc)
    assert isinstance(exc, StcaError)
    assert "\n" not in msg, f"message must be one line: {msg!r}"
    for frag in case.fragments:
        assert frag.replace("{tmp}", str(tmp)) in msg, f"{case.id}: {frag!r} not in {msg!r}"


@pytest.mark.parametrize("case", ENGINE_CASES, ids=[c.id for c in ENGINE_CASES])
def test_engine_bad_input(case: Case, tmp_path):
    with pytest.raises(case.error) as ei:
        case.run(tmp_path)
    _assert_message(ei.value, case, tmp_path)


# ---- MedleyDB ---------------------------------------------------------------------------------------


def medley_track(root: Path, t: str, stems: dict, yaml_text: str | None = None, write=True, seconds=4.0):
    """``Audio/<t>/<t>_METADATA.yaml`` with ``stems`` {sid: instrument}; the stem wavs when ``write``."""
    tdir = root / "Audio" / t
    (tdir / f"{t}_STEMS").mkdir(parents=True, exist_ok=True)
    if yaml_text is None:
        lines = ["stems:"]
        for sid, inst in stems.items():
            lines += [f"  {sid}:", f"    instrument: {inst}", f"    filename: {t}_STEM_{sid[1:]}.wav"]
        yaml_text = "\n".join(lines) + "\n"
    (tdir / f"{t}_METADATA.yaml").write_text(yaml_text)
    if write:
        for k, sid in enumerate(stems):
            write_wav(
                tdir / f"{t}_STEMS" / f"{t}_STEM_{sid[1:]}.wav", tone(seconds, freq=300 + 50 * k), subtype="PCM_16"
            )
    return tdir


def medley_good(root: Path, n_tracks=3):
    for i in range(n_tracks):
        medley_track(root, f"Good{i}", {"S01": "violin", "S02": "flute"})
    return root


def _medley_cases() -> list[Case]:
    from stca_engine.data.medleydb import load_medleydb

    def only_bad(tmp):
        root = tmp / "medley"
        medley_track(root, "Broken", {}, yaml_text="stems: [unclosed\n  - : :\n")
        medley_track(root, "NoStems", {"S01": "violin"}, write=False)
        return load_medleydb(root, min_pieces=1)

    def missing_instrument(tmp):
        return load_medleydb(medley_good(tmp / "medley"), classes=["violin", "erhu"], min_pieces=1)

    return [
        Case(
            "medleydb-missing-root",
            lambda t: load_medleydb(t / "nope"),
            DatasetError,
            ("nope: MedleyDB folder does not exist",),
        ),
        Case(
            "medleydb-no-audio-folder",
            lambda t: load_medleydb((t / "m", (t / "m").mkdir())[0]),
            DatasetError,
            ("m: no Audio/ folder",),
        ),
        Case("medleydb-only-bad-tracks", only_bad, DatasetError, ("medley: no instrument with at least 1 active",)),
        Case(
            "medleydb-missing-instrument",
            missing_instrument,
            DatasetError,
            ("medley: no active pieces for instrument(s) erhu; instrument labels found: flute, violin",),
        ),
    ]


MEDLEY_CASES = _medley_cases()


@pytest.mark.parametrize("case", MEDLEY_CASES, ids=[c.id for c in MEDLEY_CASES])
def test_medleydb_bad_input(case: Case, tmp_path):
    with pytest.raises(case.error) as ei:
        case.run(tmp_path)
    _assert_message(ei.value, case, tmp_path)


# ---- a bad file in a dataset is skipped and listed, the rest loads -----------------------------------


@dataclass
class SkipCase:
    """``run(tmp)`` builds a dataset with good items and one or more bad ones and loads it; returns
    ``(result, skipped, n_good_expected, n_good_got)``; each ``(name fragment, reason fragment)`` of
    ``expect`` must match one entry of ``skipped``."""

    id: str
    run: Callable[[Path], tuple]
    expect: tuple[tuple[str, str], ...]


def _skip_cases() -> list[SkipCase]:
    from stca_engine.data.folder import load_folder
    from stca_engine.data.medleydb import load_medleydb
    from stca_engine.data.rwcp import load_rwcp
    from stca_engine.data.uploads import load_uploads, uploads_clipset

    def rwcp_odd_and_empty(tmp):
        root = rwcp_tree(tmp / "rwcp", n=4)
        d = root / "nospeech" / "drysrc" / "a1" / "horn" / "48khz"
        (d / "900.raw").write_bytes(b"\x00" * 1001)
        (d / "901.raw").write_bytes(b"")
        cs = load_rwcp(root)
        return cs, cs.skipped, 8, len(cs.clips)

    def medley_bad_yaml_and_missing_stem(tmp):
        root = medley_good(tmp / "medley")
        medley_track(root, "Broken", {}, yaml_text="stems:\n  S01: {instrument: violin\n")
        medley_track(root, "Lost", {"S01": "violin"}, write=False)
        garbage = medley_track(root, "Garbage", {"S01": "violin"}, write=False)
        (garbage / "Garbage_STEMS" / "Garbage_STEM_01.wav").write_bytes(b"not a wav file at all" * 50)
        cs = load_medleydb(root, classes=["violin", "flute"], min_pieces=1)
        good = len({(c.path) for c in cs.clips})
        return cs, cs.skipped, 6, good

    def folder_bad_files(tmp):
        root = tmp / "mine"
        for c in ("dog", "cat"):
            for i in range(2):
                write_wav(root / c / f"{c}{i}.wav", tone(0.3, freq=300 + 100 * i))
        (root / "dog" / "readme.txt").write_text("hello")
        (root / "cat" / "empty.wav").write_bytes(b"")
        (root / "bird").mkdir()
        write_wav(root / "bird" / "only.wav", tone())
        cs = load_folder(root)
        return cs, cs.skipped, 4, len(cs.clips)

    def uploads_mixed(tmp):
        good = [(wav_bytes(tone(0.3, freq=300 + 50 * i)), f"dog_{i}.wav") for i in range(2)]
        bad = [
            (b"just text" * 100, "fake.wav"),
            (wav_bytes(np.zeros((SR, 1))), "zeros.wav"),
            (wav_bytes(np.full((SR, 1), np.inf, np.float32)), "inf.wav"),
            (b"", "empty.wav"),
            (wav_bytes(tone(0.01)), "blip.wav"),
            (b"\x00" * (2 * 2**20), "huge.wav"),
        ]
        waves, skipped = load_uploads(good + bad, max_mb=1.0, max_seconds=60)
        return waves, skipped, 2, len(waves)

    def uploads_clipset_mixed(tmp):
        files = [(wav_bytes(tone(0.3, freq=300 + 50 * i)), f"dog_{i}.wav") for i in range(2)]
        files += [(wav_bytes(tone(0.3, freq=900 + 50 * i)), f"cat_{i}.wav") for i in range(2)]
        files += [
            (b"<html>not audio</html>" * 20, "bird_1.wav"),
            (wav_bytes(tone()), "notes.txt"),
            (wav_bytes(tone(3.0)), "long_1.wav"),
        ]
        cs = uploads_clipset(files, dest=tmp / "up", max_seconds=2.0)
        return cs, cs.skipped, 4, len(cs.clips)

    def folder_encode_time_failures(tmp):
        """Files that only fail when decoded (NaN, silent, truncated) are skipped by the encoding step
        the CLI and the app use (``sources.prepare_datasets``); training data is built from the rest."""
        from stca_engine.data.sources import prepare_datasets
        from stca_engine.encoders import make_encoder

        root = tmp / "mine"
        for c, f0 in (("dog", 300), ("cat", 900)):
            for i in range(3):
                write_wav(root / c / f"{c}{i}.wav", tone(0.3, freq=f0 + 40 * i))
        x = tone(0.3)
        x[50] = np.nan
        write_wav(root / "dog" / "dog_nan.wav", x)
        write_wav(root / "cat" / "cat_silent.wav", np.zeros((SR // 2, 1)))
        (root / "cat" / "cat_cut.wav").write_bytes(wav_bytes(tone(0.3))[:40])
        cs = load_folder(root)
        train, test, info = prepare_datasets(cs, "classify", encoder=make_encoder("spectral"), cache=False, workers=1)
        return (train, test), info["skipped"], 6, len(train) + len(test)

    def rwcp_encode_time_silent(tmp):
        from stca_engine.data.sources import prepare_datasets
        from stca_engine.encoders import make_encoder

        root = rwcp_tree(tmp / "rwcp", n=4)
        (root / "nospeech" / "drysrc" / "a1" / "horn" / "48khz" / "004.raw").write_bytes(b"\x00\x00" * 9600)
        cs = load_rwcp(root)
        train, test, info = prepare_datasets(cs, "classify", encoder=make_encoder("spectral"), cache=False, workers=1)
        return (train, test), info["skipped"], 8, len(train) + len(test)

    return [
        SkipCase(
            "folder-encode-time-nan-silent-truncated",
            folder_encode_time_failures,
            (
                ("dog_nan.wav", "contains 1 NaN/inf samples"),
                ("cat_silent.wav", "silent"),
                ("cat_cut.wav", "not a readable audio file"),
            ),
        ),
        SkipCase("rwcp-encode-time-silent-raw", rwcp_encode_time_silent, (("004.raw", "silent"),)),
        SkipCase(
            "rwcp-odd-and-empty-raw-files",
            rwcp_odd_and_empty,
            (("900.raw", "odd size (1001 bytes) - not 16-bit PCM"), ("901.raw", "empty file")),
        ),
        SkipCase(
            "medleydb-bad-yaml-missing-and-unreadable-stems",
            medley_bad_yaml_and_missing_stem,
            (
                ("Broken_METADATA.yaml", "bad YAML"),
                ("Lost_STEM_01.wav", "stem S01 (violin) listed in the metadata but missing"),
                ("Garbage_STEM_01.wav", "unreadable audio"),
            ),
        ),
        SkipCase(
            "folder-non-audio-empty-and-lonely-class",
            folder_bad_files,
            (
                ("readme.txt", "not an audio file"),
                ("empty.wav", "empty file (0 bytes)"),
                ("bird", "class 'bird' has 1 usable audio file(s); need at least 2"),
            ),
        ),
        SkipCase(
            "uploads-each-bad-one-listed",
            uploads_mixed,
            (
                ("fake.wav", "not a readable audio file"),
                ("zeros.wav", "silent"),
                ("inf.wav", "NaN/inf samples"),
                ("empty.wav", "empty upload (0 bytes)"),
                ("blip.wav", "too short"),
                ("huge.wav", "upload too large: 2.0 MB (the limit is 1 MB"),
            ),
        ),
        SkipCase(
            "uploads-clipset-each-bad-one-listed",
            uploads_clipset_mixed,
            (
                ("bird_1.wav", "not a readable audio file"),
                ("notes.txt", "not an audio file name"),
                ("long_1.wav", "too long: 3.00 s (the limit is 2 s"),
            ),
        ),
    ]


SKIP_CASES = _skip_cases()


@pytest.mark.parametrize("case", SKIP_CASES, ids=[c.id for c in SKIP_CASES])
def test_bad_file_in_dataset_is_skipped_and_listed(case: SkipCase, tmp_path):
    _, skipped, n_expected, n_got = case.run(tmp_path)
    assert n_got == n_expected, f"the good items must all load: {n_got} != {n_expected}; skipped={skipped}"
    for name, reason in case.expect:
        hits = [(p, r) for p, r in skipped if name in str(p) and reason in r]
        assert hits, f"{case.id}: no skipped entry ({name!r}, {reason!r}) in {skipped}"
    for _p, r in skipped:
        assert r and "\n" not in r and "Traceback" not in r


def test_rwcp_mixed_byte_orders_load_identically(tmp_path):
    """A tree whose files mix little- and big-endian PCM loads, and both decode to the same sound."""
    from stca_engine.data.rwcp import load_rwcp

    root = tmp_path / "rwcp"
    d = root / "nospeech" / "drysrc" / "a1" / "bells5" / "48khz"
    raw_pcm(d / "000.raw", order="<", freq=700)
    raw_pcm(d / "001.raw", order=">", freq=700)
    raw_pcm(d / "002.raw", order=">", freq=900)
    raw_pcm(d / "003.raw", order="<", freq=900)
    cs = load_rwcp(root)
    assert len(cs.clips) == 4 and not cs.skipped
    waves = {Path(c.path).name: c.load() for c in cs.clips}
    np.testing.assert_allclose(waves["000.raw"], waves["001.raw"], atol=1e-6)
    np.testing.assert_allclose(waves["002.raw"], waves["003.raw"], atol=1e-6)
    assert np.max(np.abs(np.diff(waves["001.raw"]))) < 0.5  # smooth: not byte-swapped noise


# ---- checkpoints: corrupt, truncated, mismatched, pickles never unpickled -------------------------


def _tiny_net(sizes=(6, 5, 3), seed=0):
    from stca_engine.network import SNN

    return SNN(list(sizes), NeuronConfig(), dtype=torch.float32, device="cpu", seed=seed, init_std=0.3)


def _saved(tmp: Path, name="model", sizes=(6, 5, 3), seed=0) -> Path:
    from stca_engine.checkpoint import save_model

    return save_model(
        tmp / name,
        _tiny_net(sizes, seed),
        NeuronConfig(),
        class_names=["a", "b", "c"][: sizes[-1]],
        task="classify",
        objective="stca",
    )


class _Evil:
    """Unpickling this creates ``marker``: proof that a loader ran pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _checkpoint_cases() -> list[Case]:
    from stca_engine.checkpoint import load_model, model_from_zip_bytes, model_to_zip_bytes

    def corrupt_weights(tmp):
        d = _saved(tmp)
        (d / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(4000))
        return load_model(d)

    def truncated_weights(tmp):
        d = _saved(tmp)
        data = (d / "model.safetensors").read_bytes()
        (d / "model.safetensors").write_bytes(data[: len(data) // 2])
        return load_model(d)

    def truncated_config(tmp):
        d = _saved(tmp)
        text = (d / "config.json").read_text()
        (d / "config.json").write_text(text[: len(text) // 2])
        return load_model(d)

    def empty_weights(tmp):
        d = _saved(tmp)
        (d / "model.safetensors").write_bytes(b"")
        return load_model(d)

    def missing_weights(tmp):
        d = _saved(tmp)
        (d / "model.safetensors").unlink()
        return load_model(d)

    def mismatched_sizes(tmp):
        a, b = _saved(tmp, "a", (6, 5, 3)), _saved(tmp, "b", (6, 7, 3))
        (a / "model.safetensors").write_bytes((b / "model.safetensors").read_bytes())
        return load_model(a)

    def mismatched_same_sizes(tmp):
        a, b = _saved(tmp, "a", seed=1), _saved(tmp, "b", seed=2)
        (a / "model.safetensors").write_bytes((b / "model.safetensors").read_bytes())
        return load_model(a)

    def config_out_of_range(tmp):
        import json

        d = _saved(tmp)
        cfg = json.loads((d / "config.json").read_text())
        cfg["neuron"]["tau_s_ms"] = 60.0
        (d / "config.json").write_text(json.dumps(cfg))
        return load_model(d)

    def nan_weights(tmp):
        import hashlib
        import json

        from safetensors.torch import save as st_save

        d = _saved(tmp)
        w = _tiny_net().weights
        tensors = {f"weights.{i}": p.detach().clone() for i, p in enumerate(w)}
        tensors["weights.1"][0, 0] = float("nan")
        data = st_save(tensors)
        (d / "model.safetensors").write_bytes(data)
        cfg = json.loads((d / "config.json").read_text())
        cfg["weights_sha256"] = hashlib.sha256(data).hexdigest()
        (d / "config.json").write_text(json.dumps(cfg))
        return load_model(d)

    def pickle_as_safetensors(tmp):
        d = _saved(tmp)
        marker = tmp / "PWNED"
        (d / "model.safetensors").write_bytes(pickle.dumps({"weights.0": _Evil(marker)}))
        try:
            return load_model(d)
        finally:
            assert not marker.exists(), "a checkpoint was unpickled"

    def torch_save_zip(tmp):
        marker = tmp / "PWNED"
        buf = io.BytesIO()
        torch.save({"state_dict": _tiny_net().state_dict(), "evil": _Evil(marker)}, buf)
        try:
            return model_from_zip_bytes(buf.getvalue(), name="model.pt.zip")
        finally:
            assert not marker.exists(), "a checkpoint was unpickled"

    def pickled_pt_file(tmp):
        marker = tmp / "PWNED"
        p = tmp / "model.pt"
        with open(p, "wb") as f:
            pickle.dump(_Evil(marker), f)
        try:
            return load_model(p)
        finally:
            assert not marker.exists(), "a checkpoint was unpickled"

    def zip_not_zip(tmp):
        return model_from_zip_bytes(b"PK\x03\x04 this is not really a zip", name="upload.zip")

    def zip_truncated(tmp):
        blob = model_to_zip_bytes(_tiny_net(), NeuronConfig(), class_names=["a", "b", "c"], task="classify")
        return model_from_zip_bytes(blob[: len(blob) - 200], name="cut.zip")

    return [
        Case(
            "checkpoint-missing-folder",
            lambda t: load_model(t / "nomodel"),
            CheckpointError,
            ("nomodel: no such model folder or file",),
        ),
        Case(
            "checkpoint-corrupt-weights",
            corrupt_weights,
            CheckpointError,
            ("model.safetensors: is not a readable safetensors file (corrupt or truncated",),
        ),
        Case(
            "checkpoint-truncated-weights",
            truncated_weights,
            CheckpointError,
            ("model.safetensors: is not a readable safetensors file (corrupt or truncated",),
        ),
        Case("checkpoint-empty-weights", empty_weights, CheckpointError, ("model.safetensors: is empty",)),
        Case(
            "checkpoint-missing-weights",
            missing_weights,
            CheckpointError,
            ("model.safetensors: is missing (a model needs both config.json and model.safetensors)",),
        ),
        Case("checkpoint-truncated-config", truncated_config, CheckpointError, ("config.json: is not valid JSON",)),
        Case(
            "checkpoint-mismatched-sizes",
            mismatched_sizes,
            CheckpointError,
            ("model.safetensors: weights.0 has shape [7, 6], but sizes [6, 5, 3] in config.json need [5, 6]",),
        ),
        Case(
            "checkpoint-mismatched-weights-checksum",
            mismatched_same_sizes,
            CheckpointError,
            ("model.safetensors: does not belong to this config.json",),
        ),
        Case(
            "checkpoint-config-out-of-range",
            config_out_of_range,
            CheckpointError,
            ("config.json: neuron settings out of range: tau_s_ms (60.0) must be smaller than tau_m_ms (30.0)",),
        ),
        Case(
            "checkpoint-nan-weights", nan_weights, CheckpointError, ("model.safetensors: weights.1 holds NaN or inf",)
        ),
        Case(
            "checkpoint-pickle-never-unpickled",
            pickle_as_safetensors,
            CheckpointError,
            ("model.safetensors: is not a readable safetensors file",),
        ),
        Case(
            "checkpoint-torch-save-upload-refused",
            torch_save_zip,
            CheckpointError,
            ("model.pt.zip: does not contain config.json or model.safetensors",),
        ),
        Case(
            "checkpoint-pickled-pt-file-refused",
            pickled_pt_file,
            CheckpointError,
            ("model.pt: is not a model folder, config.json, model.safetensors or .zip",),
        ),
        Case("checkpoint-zip-not-a-zip", zip_not_zip, CheckpointError, ("upload.zip: is not a zip archive",)),
        Case("checkpoint-zip-truncated", zip_truncated, CheckpointError, ("cut.zip: ",)),
    ]


CHECKPOINT_CASES = _checkpoint_cases()


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=[c.id for c in CHECKPOINT_CASES])
def test_checkpoint_bad_input(case: Case, tmp_path):
    with pytest.raises(case.error) as ei:
        case.run(tmp_path)
    _assert_message(ei.value, case, tmp_path)


def test_checkpoint_roundtrip_still_loads(tmp_path):
    """Guard for the table above: a good save loads with identical weights."""
    from stca_engine.checkpoint import load_model

    d = _saved(tmp_path)
    net, info = load_model(d, device="cpu")
    ref = _tiny_net()
    for a, b in zip(net.weights, ref.weights):
        assert torch.equal(a.detach(), b.detach())
    assert info.sizes == [6, 5, 3] and info.class_names == ["a", "b", "c"]


# ---- a NaN loss in training: the run stops, keeps the last good weights, reports the epoch -------


def _tiny_dataset(n=6, n_in=8, T=40, n_classes=2, seed=0):
    from stca_engine.data.types import Sample, SpikeDataset, SpikeTrain

    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        t, u = np.nonzero(rng.random((T, n_in)) < 0.15)
        samples.append(Sample(SpikeTrain(t, u, n_in, T, 3.0), i % n_classes, name=f"s{i}"))
    return SpikeDataset(samples, n_in, [f"c{k}" for k in range(n_classes)], "classify", 3.0)


def test_nan_loss_stops_training_keeps_last_good_weights(monkeypatch):
    import stca_engine.trainer as tr

    ds = _tiny_dataset()
    cfg = tr.TrainConfig(
        task="classify", hidden=[5], epochs=3, batch_size=3, optimizer="sgd", lr=0.5, device="cpu", seed=1
    )
    trainer = tr.Trainer(None, ds, None, NeuronConfig(), cfg)
    first = trainer.fit(epochs=1)
    assert len(first) == 1
    good = [w.detach().clone() for w in trainer.net.weights]

    real_loss, real_predict = tr._loss_fns()

    def poisoned_loss(*args, **kwargs):
        loss, info = real_loss(*args, **kwargs)
        return loss * float("nan"), info

    monkeypatch.setattr(tr, "_loss_fns", lambda: (poisoned_loss, real_predict))
    with pytest.raises(TrainingError) as ei:
        trainer.fit(epochs=2)
    msg = str(ei.value)
    assert msg.startswith("training: epoch 2, batch 1: the loss became nan") and "\n" not in msg
    assert "weights of the last good step were restored" in msg
    for w, g in zip(trainer.net.weights, good):
        assert torch.equal(w.detach(), g), "the weights of the last good step must be kept"
    assert trainer.epoch == 1 and len(trainer.history) == 1


def test_absurd_learning_rate_is_a_config_error_not_a_crash():
    """lr = 1e300 cannot even be applied to float32 weights (torch raises RuntimeError): it must be
    refused as a setting out of range before training, never escape as another exception."""
    import stca_engine.trainer as tr

    with pytest.raises(ConfigError, match=r"^train config: lr: "):
        trainer = tr.Trainer(
            None,
            _tiny_dataset(),
            None,
            NeuronConfig(),
            tr.TrainConfig(
                task="classify",
                hidden=[5],
                epochs=1,
                batch_size=2,
                optimizer="sgd",
                lr=1e300,
                lr_hidden=1e300,
                device="cpu",
                seed=3,
            ),
        )
        trainer.fit()


def test_config_validated_before_any_work(monkeypatch):
    """A bad training setting fails in the constructor, before a network is built or a batch is run."""
    import stca_engine.network as network
    import stca_engine.trainer as tr

    built = []
    monkeypatch.setattr(
        network.SNN,
        "__init__",
        lambda self, *a, **k: (
            built.append(1) or (_ for _ in ()).throw(AssertionError("network built before validation"))
        ),
    )
    with pytest.raises(ConfigError, match=r"^train config: lr: must be > 0, got -0.1"):
        tr.Trainer(None, _tiny_dataset(), None, NeuronConfig(), tr.TrainConfig(task="classify", lr=-0.1, device="cpu"))
    assert built == []


# ---- the CLI: exit code 2 and exactly one line `stca: error: <file>: <problem>` on stderr ---------


@dataclass
class CliCase:
    """``args(tmp)`` builds the bad input and returns the ``stca`` arguments."""

    id: str
    args: Callable[[Path], list[str]]
    fragments: tuple[str, ...]
    no_output: str | None = None  # a path (relative to tmp) that must not exist afterwards


def _cli_cases() -> list[CliCase]:
    def train(*extra):
        return lambda t: [
            "train",
            "--data",
            "demo",
            "--task",
            "classify",
            "--epochs",
            "1",
            "--out",
            str(t / "run"),
            *extra,
        ]

    def rwcp_missing(t):
        rwcp_tree(t / "rwcp")
        return [
            "train",
            "--data",
            f"rwcp:{t / 'rwcp'}",
            "--task",
            "classify",
            "--classes",
            "bells5,cup1",
            "--out",
            str(t / "run"),
        ]

    def rwcp_no_rate(t):
        root = rwcp_tree(t / "rwcp")
        (root / "nospeech" / "drysrc" / "a1" / "ring").mkdir(parents=True)
        return [
            "train",
            "--data",
            f"rwcp:{root}",
            "--task",
            "classify",
            "--classes",
            "bells5,ring",
            "--out",
            str(t / "run"),
        ]

    def medley_broken(t):
        medley_track(t / "medley", "Broken", {}, yaml_text="stems: [unclosed\n")
        return ["train", "--data", f"medleydb:{t / 'medley'}", "--task", "classify", "--out", str(t / "run")]

    def corrupt_model(t):
        d = _saved(t)
        (d / "model.safetensors").write_bytes(b"\x00" * 100)
        return ["eval", str(d), "--data", "demo"]

    def mismatched_model(t):
        a, b = _saved(t, "a", (6, 5, 3)), _saved(t, "b", (6, 7, 3))
        (a / "model.safetensors").write_bytes((b / "model.safetensors").read_bytes())
        return ["eval", str(a), "--data", "demo"]

    def pickled_model(t):
        p = t / "model.pt"
        p.write_bytes(pickle.dumps(_Evil(t / "PWNED")))
        return ["detect", str(p), str(write_wav(t / "x.wav", tone()))]

    def encode(name, build):
        def f(t):
            return ["encode", str(build(t / name)), "--out", str(t / "out.npz"), "--encoder", "spectral", "--no-cache"]

        return f

    def text(p):
        p.write_text("not audio\n" * 100)
        return p

    def nan(p):
        x = tone()
        x[10] = np.nan
        return write_wav(p, x)

    return [
        CliCase(
            "cli-tau-s-not-below-tau-m",
            train("--tau-m-ms", "30", "--tau-s-ms", "40"),
            ("neuron config: tau_s_ms (40.0) must be smaller than tau_m_ms (30.0)",),
            "run",
        ),
        CliCase(
            "cli-t-in-below-one-step",
            train("--t-in-ms", "1"),
            ("neuron config: t_in_ms (1.0) must be at least one time step",),
            "run",
        ),
        CliCase(
            "cli-negative-tau",
            train("--tau-m-ms", "-30"),
            ("--tau-m-ms", "expected a positive number, got '-30'"),
            "run",
        ),
        CliCase("cli-alpha-zero", train("--alpha", "0"), ("--alpha", "expected a positive number, got '0'"), "run"),
        CliCase("cli-empty-layer-list", train("--hidden"), ("--hidden", "expected at least one argument"), "run"),
        CliCase("cli-zero-layer-size", train("--hidden", "0", "16"), ("--hidden", "only allowed alone"), "run"),
        CliCase(
            "cli-rwcp-missing-root",
            lambda t: ["train", "--data", f"rwcp:{t / 'nowhere'}", "--task", "classify", "--out", str(t / "run")],
            ("nowhere: RWCP folder does not exist",),
            "run",
        ),
        CliCase(
            "cli-unknown-home-in-data-spec",
            lambda t: ["train", "--data", "rwcp:~no_such_user_stca/x", "--task", "classify", "--out", str(t / "run")],
            ("rwcp:~no_such_user_stca/x: cannot expand the folder",),
            "run",
        ),
        CliCase(
            "cli-rwcp-missing-classes", rwcp_missing, ("rwcp: missing class(es) cup1; found: bells5, horn",), "run"
        ),
        CliCase("cli-rwcp-no-48khz", rwcp_no_rate, ("ring: class folder has no 48khz folder",), "run"),
        CliCase("cli-medleydb-bad-yaml-only", medley_broken, ("medley: ",), "run"),
        CliCase("cli-corrupt-checkpoint", corrupt_model, ("model.safetensors: is not a readable safetensors file",)),
        CliCase("cli-mismatched-checkpoint", mismatched_model, ("weights.0 has shape [7, 6]",)),
        CliCase("cli-pickled-checkpoint", pickled_model, ("model.pt: is not a model folder",)),
        CliCase(
            "cli-encode-renamed-text", encode("fake.wav", text), ("fake.wav: not a readable audio file",), "out.npz"
        ),
        CliCase("cli-encode-nan", encode("nan.wav", nan), ("nan.wav: contains 1 NaN/inf samples",), "out.npz"),
        CliCase(
            "cli-encode-silent",
            encode("zero.wav", lambda p: write_wav(p, np.zeros((SR, 1)))),
            ("zero.wav: silent",),
            "out.npz",
        ),
        CliCase(
            "cli-encode-empty",
            encode("empty.wav", lambda p: (p.write_bytes(b""), p)[1]),
            ("empty.wav: empty file (0 bytes)",),
            "out.npz",
        ),
        CliCase(
            "cli-encode-too-short",
            encode("blip.wav", lambda p: write_wav(p, tone(0.01))),
            ("blip.wav: too short",),
            "out.npz",
        ),
        CliCase("cli-encode-missing", encode("gone.wav", lambda p: p), ("gone.wav: file not found",), "out.npz"),
    ]


CLI_CASES = _cli_cases()


def run_cli(args: list[str], tmp: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "STCA_CACHE_DIR": str(tmp / "cache"), **(env or {})}
    full_env.pop("STCA_DATA_ROOTS", None) if not env or "STCA_DATA_ROOTS" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "stca_engine", "--quiet", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp,
        timeout=180,
    )


def _check_cli_result(case: CliCase, code: int, stderr: str, tmp: Path):
    lines = stderr.strip().splitlines()
    assert code == 2, f"exit {code}; stderr: {stderr}"
    assert "Traceback" not in stderr
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith("stca: error: "), lines[0]
    for frag in case.fragments:
        assert frag in lines[0], f"{frag!r} not in {lines[0]!r}"
    if case.no_output:
        assert not (tmp / case.no_output).exists(), "nothing may be written for a bad input"
    assert not (tmp / "PWNED").exists()


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_input(case: CliCase, tmp_path, monkeypatch, capsys):
    """In-process ``stca_engine.cli.main`` (what ``python -m stca_engine`` runs), for speed."""
    from stca_engine import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STCA_DATA_ROOTS", raising=False)
    argv = ["--quiet", *case.args(tmp_path)]
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse exits for malformed arguments
        code = exc.code
    _check_cli_result(case, code, capsys.readouterr().err, tmp_path)


SUBPROCESS_IDS = ["cli-negative-tau", "cli-corrupt-checkpoint"]


@pytest.mark.parametrize("case", [c for c in CLI_CASES if c.id in SUBPROCESS_IDS], ids=SUBPROCESS_IDS)
def test_cli_bad_input_real_process(case: CliCase, tmp_path):
    """The same through ``python -m stca_engine`` in a subprocess: the process exit status is 2."""
    r = run_cli(case.args(tmp_path), tmp_path)
    _check_cli_result(case, r.returncode, r.stderr, tmp_path)


# ---- the app: st.error with the message, never a traceback -----------------------------------------

APP_PAGES = REPO / "app" / "pages"


@dataclass
class AppCase:
    """``act(at, tmp)`` drives the page (after a first run) into the bad input; the page must show
    an ``st.error`` (or ``kind``) holding every fragment, and no exception / 'Something went wrong'."""

    id: str
    page: str
    act: Callable
    fragments: tuple[str, ...]
    env: dict | None = None
    kind: str = "error"
    check: Callable | None = None  # extra assertions on the AppTest afterwards


def _data_folder(source: str, path_of: Callable[[Path], Path]):
    def act(at, tmp):
        path = path_of(tmp)
        at.radio(key="data.source").set_value(source).run()
        at.text_input(key="data.path").input(str(path)).run()

    return act


def _data_uploads(files_of: Callable[[Path], list]):
    def act(at, tmp):
        at.radio(key="data.source").set_value("Upload files").run()
        at.file_uploader(key="data.uploads").set_value(files_of(tmp)).run()

    return act


def _detect_upload(name: str, data_of: Callable[[Path], bytes]):
    def act(at, tmp):
        at.radio(key="detect.audio_src").set_value("Upload a recording").run()
        at.file_uploader(key="detect.upload").set_value((name, data_of(tmp), "audio/wav")).run()

    return act


def _detect_model_zip(name: str, data_of: Callable[[Path], bytes]):
    def act(at, tmp):
        at.radio(key="detect.model_src").set_value("Upload a model .zip").run()
        at.file_uploader(key="detect.model_zip").set_value((name, data_of(tmp), "application/zip")).run()

    return act


def _torch_save_bytes(tmp):
    buf = io.BytesIO()
    torch.save({"state_dict": _tiny_net().state_dict(), "evil": _Evil(tmp / "PWNED")}, buf)
    return buf.getvalue()


def _outside(tmp):
    (tmp / "secret" / "bells5" / "48khz").mkdir(parents=True, exist_ok=True)
    (tmp / "allowed").mkdir(exist_ok=True)
    return tmp / "allowed" / ".." / "secret"


def _symlink_out(tmp):
    _outside(tmp)
    link = tmp / "allowed" / "escape"
    if not link.exists():
        link.symlink_to(tmp / "secret", target_is_directory=True)
    return link


def _all_odd_rwcp(tmp):
    root = tmp / "allowed" / "rwcp"
    for c in ("bells5", "horn"):
        for i in range(3):
            p = root / c / "48khz" / f"{i:03d}.raw"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"\x01" * 101)
    return root


def _broken_medley(tmp):
    root = tmp / "allowed" / "medley"
    medley_track(root, "Broken", {}, yaml_text="stems: [unclosed\n")
    return root


def _app_cases() -> list[AppCase]:
    data, detect, train = "1_Data.py", "3_Detect.py", "2_Train.py"
    nan_wav = lambda t: wav_bytes(np.where(np.arange(SR)[:, None] == 5, np.nan, tone(1.0)).astype(np.float32))  # noqa: E731
    return [
        AppCase(
            "app-data-folder-dotdot-outside-roots",
            data,
            _data_folder("RWCP folder", _outside),
            ("outside the allowed data folders",),
            env={"STCA_DATA_ROOTS": "{tmp}/allowed"},
        ),
        AppCase(
            "app-data-folder-symlink-outside-roots",
            data,
            _data_folder("MedleyDB folder", _symlink_out),
            ("escape: outside the allowed data folders",),
            env={"STCA_DATA_ROOTS": "{tmp}/allowed"},
        ),
        AppCase(
            "app-data-folder-absolute-outside-roots",
            data,
            _data_folder("Folder of class sub-folders", lambda t: Path("/etc")),
            ("/etc: outside the allowed data folders",),
            env={"STCA_DATA_ROOTS": "{tmp}/allowed"},
        ),
        AppCase(
            "app-data-rwcp-no-class-folders",
            data,
            _data_folder(
                "RWCP folder", lambda t: (t / "allowed" / "empty").mkdir(parents=True) or t / "allowed" / "empty"
            ),
            ("empty: no RWCP class folders found",),
            env={"STCA_DATA_ROOTS": "{tmp}/allowed"},
        ),
        AppCase(
            "app-data-rwcp-only-odd-sized-files",
            data,
            _data_folder("RWCP folder", _all_odd_rwcp),
            ("rwcp: no class has at least 2 usable .raw files",),
            env={"STCA_DATA_ROOTS": "{tmp}/allowed"},
        ),
        AppCase(
            "app-data-medleydb-bad-yaml",
            data,
            _data_folder("MedleyDB folder", _broken_medley),
            ("medley: no instrument with at least",),
            env={"STCA_DATA_ROOTS": "{tmp}/allowed"},
        ),
        AppCase(
            "app-data-uploads-all-bad",
            data,
            _data_uploads(
                lambda t: [
                    ("fake_1.wav", b"plain text, not audio" * 50, "audio/wav"),
                    ("fake_2.wav", nan_wav(t), "audio/wav"),
                ]
            ),
            (
                "uploads: no class with at least two usable uploads",
                "fake_1.wav: not a readable audio file",
                "fake_2.wav: contains 1 NaN/inf samples",
            ),
        ),
        AppCase(
            "app-detect-upload-renamed-text",
            detect,
            _detect_upload("fake.wav", lambda t: b"not audio\n" * 300),
            ("fake.wav: not a readable audio file",),
        ),
        AppCase(
            "app-detect-upload-nan",
            detect,
            _detect_upload("nan.wav", nan_wav),
            ("nan.wav: contains 1 NaN/inf samples",),
        ),
        AppCase(
            "app-detect-upload-silent",
            detect,
            _detect_upload("zero.wav", lambda t: wav_bytes(np.zeros((SR, 1)))),
            ("zero.wav: silent",),
        ),
        AppCase(
            "app-detect-upload-too-short",
            detect,
            _detect_upload("blip.wav", lambda t: wav_bytes(tone(0.01))),
            ("blip.wav: too short: 10.0 ms",),
        ),
        AppCase(
            "app-detect-upload-too-long",
            detect,
            _detect_upload("long.wav", lambda t: wav_bytes(tone(2.0))),
            ("long.wav: too long: 2.00 s (the limit is 1 s",),
            env={"STCA_MAX_AUDIO_SECONDS": "1"},
        ),
        AppCase(
            "app-detect-upload-over-size-cap",
            detect,
            _detect_upload("big.wav", lambda t: wav_bytes(tone(2.0))),
            ("big.wav: upload too large: 0.1 MB (the limit is 0.05 MB",),
            env={"STCA_MAX_UPLOAD_MB": "0.05"},
        ),
        AppCase(
            "app-detect-model-zip-not-a-zip",
            detect,
            _detect_model_zip("upload.zip", lambda t: b"PK\x03\x04garbage"),
            ("upload.zip: is not a zip archive",),
        ),
        AppCase(
            "app-detect-model-torch-pickle-refused",
            detect,
            _detect_model_zip("model.zip", _torch_save_bytes),
            ("model.zip: does not contain config.json or model.safetensors",),
        ),
        AppCase(
            "app-detect-model-zip-over-size-cap",
            detect,
            _detect_model_zip("huge.zip", lambda t: b"\x00" * 120_000),
            ("huge.zip: upload too large",),
            env={"STCA_MAX_UPLOAD_MB": "0.05"},
        ),
        AppCase(
            "app-train-tau-s-not-below-tau-m",
            train,
            _train_start(tau_s_ms="40", tau_m_ms="30"),
            ("neuron config: tau_s_ms (40.0) must be smaller than tau_m_ms (30.0)",),
            check=_no_run_started,
        ),
        AppCase(
            "app-train-t-in-below-one-step",
            train,
            _train_start(t_in_ms="1"),
            ("neuron config: t_in_ms (1.0) must be at least one time step",),
            check=_no_run_started,
        ),
        AppCase(
            "app-train-zero-hidden-layer-size",
            train,
            _train_widget("hidden", "0"),
            ("hidden: hidden layer size 0 outside 1..",),
            check=_no_run_started,
        ),
        AppCase(
            "app-train-hidden-not-a-number",
            train,
            _train_widget("hidden", "64,abc"),
            ("hidden: hidden layer size 'abc' is not a whole number",),
            check=_no_run_started,
        ),
        AppCase("app-train-url-negative-tau", train, _train_url(tau_m_ms="-30"), ("tau_m_ms",), kind="warning"),
        AppCase("app-train-url-alpha-zero", train, _train_url(alpha="0"), ("alpha",), kind="warning"),
        AppCase(
            "app-train-data-outside-roots",
            train,
            _train_start(data="rwcp:{tmp}/allowed/../secret"),
            ("outside the allowed data folders",),
            env={"STCA_DATA_ROOTS": "{tmp}/allowed"},
        ),
    ]


def _train_start(**params):
    """Open the Train page with ``params`` in the URL (as a shared link would), press Start."""

    def act(at, tmp):
        _outside(tmp)
        for k, v in params.items():
            at.query_params[k] = v.replace("{tmp}", str(tmp))
        at.run()
        at.button(key="train.btn_start").click().run()
        if "train.run" in at.session_state:  # the run was accepted: wait for the worker to fail
            worker = at.session_state["train.run"]["worker"]
            worker.join(60)
            at.run()

    act.needs_query = True
    return act


def _train_url(**params):
    """A shared link with a bad value: the page opens, says which setting it ignored."""

    def act(at, tmp):
        for k, v in params.items():
            at.query_params[k] = v
        at.run()

    act.needs_query = True
    return act


def _train_widget(name: str, value: str):
    """The user types a bad value into a settings widget, then presses Start."""

    def act(at, tmp):
        import state  # app/state.py (on sys.path once the page has run)

        at.text_input(key=state.widget_key(name)).input(value).run()
        at.button(key="train.btn_start").click().run()

    return act


def _no_run_started(at):
    """Validated before any work: pressing Start with a bad setting must not start a run."""
    assert "train.run" not in at.session_state, "a run started although a setting is invalid"


APP_CASES = _app_cases()


@pytest.mark.parametrize("case", APP_CASES, ids=[c.id for c in APP_CASES])
def test_app_bad_input(case: AppCase, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STCA_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("STCA_DATA_ROOTS", raising=False)
    for k, v in (case.env or {}).items():
        monkeypatch.setenv(k, v.replace("{tmp}", str(tmp_path)))
    at = AppTest.from_file(str(APP_PAGES / case.page), default_timeout=120)
    try:
        if not getattr(case.act, "needs_query", False):
            at.run()
            assert not at.exception, at.exception
        case.act(at, tmp_path)
        assert not at.exception, [e.value for e in at.exception]
        shown = [e.value for e in getattr(at, case.kind)]
        everything = " | ".join(e.value for e in [*at.error, *at.warning])
        assert "Something went wrong" not in everything and "Traceback" not in everything, everything
        for frag in case.fragments:
            assert any(frag.replace("{tmp}", str(tmp_path)) in s for s in shown), (
                f"{frag!r} not in {case.kind}s {shown}"
            )
        assert not (tmp_path / "PWNED").exists()
        if case.check is not None:
            case.check(at)
    finally:  # never leave a training thread behind, whatever happened
        run = at.session_state["train.run"] if "train.run" in at.session_state else None
        if run is not None:
            run["worker"].stop("test over", wait_s=30)


# ---- limits: memory-bounded encoding of long recordings, env-configured caps ------------------------


def _long_wave(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) + 0.05 * rng.standard_normal(t.size)
    return (x / np.max(np.abs(x))).astype(np.float32)


def _peak_bytes(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_spikegram_of_long_recording_is_memory_bounded_by_chunks():
    """Matching pursuit holds a [kernels x samples] correlation table: in 1 s chunks an 8 s clip needs
    far less memory than in one piece (measured: ~17 MB vs ~150 MB at 20 s)."""
    from stca_engine.encoders import make_encoder

    wave = _long_wave(8.0)
    chunked = make_encoder("spikegram", chunk_seconds=1.0)
    whole = make_encoder("spikegram", chunk_seconds=30.0)
    chunked.encode(_long_wave(0.5))  # warm up numba and the kernel dictionary outside the measurement
    out = {}
    peak_chunked = _peak_bytes(lambda: out.setdefault("c", chunked.encode(wave)))
    peak_whole = _peak_bytes(lambda: out.setdefault("w", whole.encode(wave)))
    assert peak_chunked < 0.5 * peak_whole, (peak_chunked, peak_whole)
    tc, tw_ = out["c"][0], out["w"][0]
    assert tc.n_steps == tw_.n_steps and abs(tc.n_spikes - tw_.n_spikes) <= 0.1 * tw_.n_spikes


def test_long_recording_encoding_uses_the_configured_chunk_length(monkeypatch):
    """The Detect page's and the CLI's long-recording path (``detect.encode_recording``) cut the wave
    in STCA_CHUNK_SECONDS pieces, so peak memory follows the piece, not the recording; spikes land at
    their true times."""
    from stca_engine.detect import encode_recording
    from stca_engine.encoders import make_encoder

    enc = make_encoder("spectral")
    wave = _long_wave(20.0)
    enc.encode(wave[:SR])
    monkeypatch.setenv("STCA_CHUNK_SECONDS", "2")
    seen = []
    peak_chunked = _peak_bytes(
        lambda: seen.append(
            encode_recording(wave, SR, enc, segment=False, progress=lambda d, t, m: seen.append((d, t)))
        )
    )
    monkeypatch.setenv("STCA_CHUNK_SECONDS", "3600")
    peak_whole = _peak_bytes(lambda: encode_recording(wave, SR, enc, segment=False))
    assert (20, 20) in seen, "20 s in 2 s pieces is 10 pieces, two passes each (level, then spikes)"
    assert peak_chunked < 0.5 * peak_whole, (peak_chunked, peak_whole)
    train = seen[-1]
    assert train.n_steps == int(np.ceil(20.0 * 1000 / train.dt_ms))
    assert train.times.min() < 0.1 * train.n_steps and train.times.max() > 0.9 * train.n_steps


def test_limits_defaults_env_and_chunk_spans(monkeypatch):
    for k in ("STCA_MAX_UPLOAD_MB", "STCA_MAX_AUDIO_SECONDS", "STCA_CHUNK_SECONDS"):
        monkeypatch.delenv(k, raising=False)
    assert limits.current_limits() == limits.Limits(50.0, 600.0, 30.0)
    monkeypatch.setenv("STCA_MAX_UPLOAD_MB", "2.5")
    monkeypatch.setenv("STCA_MAX_AUDIO_SECONDS", "90")
    monkeypatch.setenv("STCA_CHUNK_SECONDS", "10")
    assert limits.max_upload_bytes() == int(2.5 * 2**20)
    assert limits.max_audio_seconds() == 90.0 and limits.chunk_seconds() == 10.0
    limits.check_upload_size(int(2.5 * 2**20), "ok.wav")  # exactly at the cap is fine
    with pytest.raises(AudioError, match=r"^big\.wav: upload too large: 2\.5 MB \(the limit is 2\.5 MB"):
        limits.check_upload_size(int(2.5 * 2**20) + 1, "big.wav")
    with pytest.raises(AudioError, match=r"^rec\.wav: too long: 90\.50 s \(the limit is 90 s"):
        limits.check_duration(90.5, "rec.wav")
    monkeypatch.setenv("STCA_CHUNK_SECONDS", "0.2")
    with pytest.raises(ConfigError, match=r"^STCA_CHUNK_SECONDS: must be a finite number at least 1"):
        limits.chunk_seconds()
    # spans: exact cover, bounded length, overlap only backwards
    for n, sr, c, o in [(100, 10, 3, 0.5), (16000 * 7 + 3, 16000, 2, 0.0), (5, 10, 1, 0), (0, 10, 1, 0)]:
        spans = limits.chunk_spans(n, sr, c, o)
        covered = np.zeros(n, bool)
        for a, b in spans:
            assert 0 <= a < b <= n and b - a <= round(c * sr) + round(o * sr)
            covered[a:b] = True
        assert covered.all()
        starts = [a + (round(o * sr) if i else 0) for i, (a, _) in enumerate(spans)]
        assert starts == list(range(0, n, round(c * sr)))[: len(spans)]


def test_app_nan_loss_stops_the_run_and_keeps_the_last_good_model(monkeypatch, tmp_path):
    """In the app: one epoch (Step), then a NaN loss on Resume: the worker ends in 'error', the page
    shows the TrainingError with its epoch, and the session's model is still the epoch-1 one."""
    from streamlit.testing.v1 import AppTest

    import stca_engine.trainer as trainer_mod

    sys.path.insert(0, str(REPO / "app"))
    import engine_runs as er
    import training_worker as tw

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    real_prepare = er.prepare_engine_data

    def small(settings, progress):
        from stca_engine.data.types import SpikeDataset

        train, test, info = real_prepare(settings, progress)
        cut = lambda ds, n: SpikeDataset(ds.samples[:n], ds.n_inputs, list(ds.class_names), ds.task, ds.dt_ms)  # noqa: E731
        return cut(train, 16), cut(test, 8), info

    monkeypatch.setattr(er, "prepare_engine_data", small)
    armed = {"on": False}
    real_loss, real_predict = trainer_mod._loss_fns()

    def maybe_nan(*a, **k):
        loss, info = real_loss(*a, **k)
        return (loss * float("nan") if armed["on"] else loss), info

    monkeypatch.setattr(trainer_mod, "_loss_fns", lambda: (maybe_nan, real_predict))
    at = AppTest.from_file(str(APP_PAGES / "2_Train.py"), default_timeout=120)
    for k, v in dict(
        data="digits", task="classify", classes="0,1", hidden="8", epochs="5", batch_size="8", seed="5"
    ).items():
        at.query_params[k] = v
    at.run()
    try:
        at.button(key="train.btn_step").click().run()
        worker = at.session_state["train.run"]["worker"]
        t0 = time.monotonic()
        while worker.snapshot().status != tw.PAUSED or worker.snapshot().epoch < 1:
            assert time.monotonic() - t0 < 120 and worker.snapshot().status not in tw.FINISHED, worker.snapshot()
            time.sleep(0.2)
            at.run()
        at.run()
        good = [w.detach().clone() for w in at.session_state["trained_model"]["net"].weights]
        armed["on"] = True
        at.button(key="train.btn_start").click().run()
        worker.join(120)
        at.run()
        snap = worker.snapshot()
        assert snap.status == tw.ERROR and snap.epoch == 1
        assert not at.exception
        errors = [e.value for e in at.error]
        assert any(
            "training: epoch 2, batch 1: the loss became nan" in e and "last good step were restored" in e
            for e in errors
        ), errors
        model = at.session_state["trained_model"]
        assert model["epochs_trained"] == 1
        for w, g in zip(model["net"].weights, good):
            assert torch.equal(w.detach(), g)
    finally:
        if "train.run" in at.session_state:
            at.session_state["train.run"]["worker"].stop("test over", wait_s=30)


def test_streamlit_config_hides_tracebacks_and_caps_uploads():
    """The browser never shows a traceback (only the exception type for a bug; bad input is an
    st.error), and Streamlit itself refuses uploads above the default cap before the app sees them."""
    import tomllib

    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["client"]["showErrorDetails"] in ("type", "none")
    assert cfg["server"]["maxUploadSize"] == limits.DEFAULT_MAX_UPLOAD_MB
