"""Issue #14 "Hardening": archive bombs, oversized dataset audio, unsafe ``--out`` targets, Markdown
injection through links and file names, unreadable dataset entries, truncated WAVs.

Each test builds the bad input in ``tmp_path`` and goes through the entry point a user reaches (engine,
``stca`` CLI in-process, or an app page through ``AppTest``). docs/ROBUSTNESS.md lists the cases with
their messages.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stca_engine.config import NeuronConfig
from stca_engine.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]
APP_PAGES = REPO / "app" / "pages"
SR = 16000
MiB = 1024 * 1024


def tone(seconds=0.3, sr=SR, freq=440.0, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, x, sr=SR, subtype="FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def run_cli(argv, tmp_path, monkeypatch, capsys):
    """``stca --quiet ARGV`` in-process; returns ``(exit code, stderr)``."""
    from stca_engine import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STCA_DATA_ROOTS", raising=False)
    capsys.readouterr()
    try:
        code = cli.main(["--quiet", *argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_line_error(code, err, *fragments):
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}; stderr: {err}"
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("stca: error: "), lines[0]
    for frag in fragments:
        assert frag in lines[0], f"{frag!r} not in {lines[0]!r}"
    return lines[0]


def peak_python_bytes(fn):
    """``(result or exception, peak bytes traced)`` of ``fn()``: every ``bytes`` object that unpacking
    or reading a file creates is traced, so a bomb that is unpacked shows up here."""
    tracemalloc.start()
    try:
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - returned for the caller to check
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---- 1. model archives: sizes checked from the zip directory and the safetensors header -----------


def _tiny_net(sizes=(6, 5, 3), seed=0):
    from stca_engine.network import SNN

    return SNN(list(sizes), NeuronConfig(), dtype=torch.float32, device="cpu", seed=seed, init_std=0.3)


def _good_zip(sizes=(6, 5, 3)) -> bytes:
    from stca_engine.checkpoint import model_to_zip_bytes

    return model_to_zip_bytes(
        _tiny_net(sizes),
        NeuronConfig(),
        class_names=[f"c{i}" for i in range(sizes[-1])],
        task="detect",
        objective="stca",
        encoder_settings={"name": "spectral"},
    )


def _bomb_zip(path: Path, zeros_bytes: int) -> Path:
    """A model zip whose config.json is a real 6-5-3 model's and whose model.safetensors is a valid
    header declaring one more huge tensor, followed by ``zeros_bytes`` of zeros (deflated: ~1/230)."""
    with zipfile.ZipFile(io.BytesIO(_good_zip())) as z:
        config = z.read("config.json")
    n = zeros_bytes // 4
    header = json.dumps(
        {
            "weights.0": {"dtype": "F32", "shape": [5, 6], "data_offsets": [0, 120]},
            "weights.1": {"dtype": "F32", "shape": [3, 5], "data_offsets": [120, 180]},
            "padding": {"dtype": "F32", "shape": [n], "data_offsets": [180, 180 + 4 * n]},
        }
    ).encode()
    chunk = bytes(MiB)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("config.json", config)
        with z.open("model.safetensors", "w", force_zip64=True) as f:
            f.write(struct.pack("<Q", len(header)) + header + bytes(180))
            left = 4 * n
            while left > 0:
                f.write(chunk[: min(left, MiB)])
                left -= MiB
    return path


BOMB_BYTES = 256 * MiB  # what a reverted fix would unpack (kept modest so a regression cannot sink the machine)


def test_zip_bomb_is_refused_from_the_zip_directory_without_unpacking(tmp_path):
    from stca_engine.checkpoint import model_from_zip_bytes

    bomb = _bomb_zip(tmp_path / "bomb.zip", BOMB_BYTES)
    data = bomb.read_bytes()
    assert len(data) < 4 * MiB  # small on disk
    err, peak = peak_python_bytes(lambda: model_from_zip_bytes(data, device="cpu", name="bomb.zip"))
    assert isinstance(err, CheckpointError), err
    assert str(err).startswith("bomb.zip:model.safetensors: unpacks to 26843"), err
    assert " bytes, but the layer sizes [6, 5, 3] (float32) in config.json need at most 1048764;" in str(err)
    assert str(err).endswith("; refused before reading it")
    assert peak < 16 * MiB, f"{peak / MiB:.0f} MiB allocated: the archive was unpacked"


def test_zip_bomb_from_disk_is_refused_without_unpacking(tmp_path):
    from stca_engine.checkpoint import load_model

    bomb = _bomb_zip(tmp_path / "bomb.zip", BOMB_BYTES)
    err, peak = peak_python_bytes(lambda: load_model(bomb, device="cpu"))
    assert isinstance(err, CheckpointError) and str(err).startswith(f"{bomb}:model.safetensors: unpacks to "), err
    assert peak < 16 * MiB, f"{peak / MiB:.0f} MiB allocated: the archive was unpacked"


def test_cli_detect_with_a_zip_bomb_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    bomb = _bomb_zip(tmp_path / "bomb.zip", BOMB_BYTES)
    wav = write_wav(tmp_path / "x.wav", tone())
    code, err = run_cli(["detect", str(bomb), str(wav)], tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, err, "bomb.zip:model.safetensors: unpacks to ", "refused before reading it")


def test_sparse_weights_file_in_a_model_folder_is_refused_before_reading(tmp_path):
    from stca_engine.checkpoint import load_model, save_model

    d = save_model(tmp_path / "model", _tiny_net(), NeuronConfig(), class_names=["a", "b", "c"], task="classify")
    w = d / "model.safetensors"
    os.truncate(w, BOMB_BYTES)  # sparse: takes no disk, reads as zeros
    err, peak = peak_python_bytes(lambda: load_model(d, device="cpu"))
    assert isinstance(err, CheckpointError), err
    assert str(err).startswith(
        f"{w}: is {BOMB_BYTES} bytes, but the layer sizes [6, 5, 3] (float32) in config.json need at most "
    ), err
    assert peak < 16 * MiB, f"{peak / MiB:.0f} MiB allocated: the file was read"


def test_config_declaring_huge_layers_is_refused_by_the_operator_cap(tmp_path, monkeypatch):
    from stca_engine import checkpoint
    from stca_engine.checkpoint import load_model, model_from_zip_bytes, save_model

    d = save_model(tmp_path / "big", _tiny_net((1000, 600)), NeuronConfig(), task="detect")
    blob = _good_zip((1000, 600))
    monkeypatch.setenv("STCA_MAX_MODEL_MB", "1")

    def never(*a, **k):
        raise AssertionError("weights were read although the config is over the cap")

    monkeypatch.setattr(checkpoint, "_read_weights", never)
    with pytest.raises(CheckpointError) as ei:
        load_model(d, device="cpu")
    assert str(ei.value) == (
        f"{d / 'config.json'}: 'sizes' [1000, 600] (float32) make 2.3 MB of weights, over the "
        "limit of 1 MB (set by STCA_MAX_MODEL_MB)"
    )
    with pytest.raises(CheckpointError) as ei:
        model_from_zip_bytes(blob, name="big.zip")
    assert str(ei.value).startswith("big.zip:config.json: 'sizes' [1000, 600] (float32) make 2.3 MB")
    monkeypatch.undo()
    net, info = model_from_zip_bytes(blob, device="cpu", name="big.zip")  # the default cap (256 MB) takes it
    assert info.sizes == [1000, 600]


def test_safetensors_header_is_checked_against_the_config_before_tensor_data(tmp_path, monkeypatch):
    """A header declaring other shapes / another dtype is refused from the header alone."""
    import safetensors.torch as st

    from stca_engine.checkpoint import load_model, save_model

    a = save_model(tmp_path / "a", _tiny_net((6, 5, 3)), NeuronConfig(), task="detect")
    b = save_model(tmp_path / "b", _tiny_net((6, 7, 3)), NeuronConfig(), task="detect")
    (a / "model.safetensors").write_bytes((b / "model.safetensors").read_bytes())
    c = save_model(tmp_path / "c", _tiny_net((6, 5, 3)), NeuronConfig(), task="detect")
    (c / "model.safetensors").write_bytes(
        st.save(
            {"weights.0": torch.zeros(5, 6, dtype=torch.float64), "weights.1": torch.zeros(3, 5, dtype=torch.float64)}
        )
    )

    def never(*a, **k):
        raise AssertionError("tensor data was parsed before the header was checked")

    monkeypatch.setattr(st, "load", never)
    with pytest.raises(
        CheckpointError,
        match=r"weights\.0 has shape \[7, 6\], but sizes \[6, 5, 3\] in config\.json "
        r"need \[5, 6\]$",
    ):
        load_model(a, device="cpu")
    with pytest.raises(CheckpointError, match=r"weights\.0 is float64, but config\.json says float32$"):
        load_model(c, device="cpu")


def test_app_detect_page_refuses_a_zip_bomb_upload(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STCA_RUNS_DIR", str(tmp_path / "runs"))
    data = _bomb_zip(tmp_path / "bomb.zip", BOMB_BYTES).read_bytes()
    at = AppTest.from_file(str(APP_PAGES / "3_Detect.py"), default_timeout=120)
    at.run()
    at.radio(key="detect.model_src").set_value("Upload a model .zip").run()
    at.file_uploader(key="detect.model_zip").set_value(("bomb.zip", data, "application/zip")).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert any(e.startswith("bomb.zip:model.safetensors: unpacks to ") for e in errors), errors


# ---- 2 + 5. dataset entries judged from the directory entry and header: never decoded when unusable --


def sparse_wav(path: Path, data_bytes: int, sr=SR) -> Path:
    """A PCM16 mono WAV whose header declares ``data_bytes`` of samples, made sparse (no disk used)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sr, 2 * sr, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )
    with open(path, "wb") as f:
        f.write(header)
    os.truncate(path, len(header) + data_bytes)
    return path


TWO_GIB = 2**31 - 64


def class_folder(root: Path, n=2, classes=("cat", "dog")) -> Path:
    for c in classes:
        for i in range(n):
            write_wav(root / c / f"{c}_{i}.wav", tone(0.3, freq=300 + 200 * i + (100 if c == "dog" else 0)))
    return root


def bad_entries(folder: Path, ext=".wav") -> dict[str, str]:
    """A dangling link, a FIFO and a sparse file whose header declares 2 GiB, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(folder / "moved_away.wav", folder / f"dangling{ext}")
    os.mkfifo(folder / f"pipe{ext}")
    if ext == ".raw":
        with open(folder / "huge.raw", "wb"):
            pass
        os.truncate(folder / "huge.raw", TWO_GIB)
    else:
        sparse_wav(folder / f"huge{ext}", TWO_GIB)
    return {
        f"dangling{ext}": "broken link (its target does not exist); not read",
        f"pipe{ext}": "not a regular file (a named pipe (FIFO)); not read",
        f"huge{ext}": "too long: ",
    }


def reasons_by_name(skipped) -> dict[str, str]:
    return {Path(p).name: r for p, r in skipped}


def test_folder_loader_skips_dangling_links_fifos_and_oversized_files_without_reading(tmp_path):
    from stca_engine.data.folder import load_folder

    root = class_folder(tmp_path / "mine")
    want = bad_entries(root / "cat")
    cs, peak = peak_python_bytes(lambda: load_folder(root))
    assert not isinstance(cs, Exception), cs
    assert len(cs.clips) == 4 and cs.class_names == ["cat", "dog"]
    got = reasons_by_name(cs.skipped)
    assert got["dangling.wav"] == want["dangling.wav"]
    assert got["pipe.wav"] == want["pipe.wav"]
    assert got["huge.wav"] == ("too long: 67108.86 s (the limit is 600 s, set by STCA_MAX_AUDIO_SECONDS); not read")
    assert peak < 16 * MiB


def test_rwcp_loader_skips_dangling_links_fifos_and_oversized_raw_files(tmp_path):
    from stca_engine.data.rwcp import load_rwcp

    root = tmp_path / "rwcp" / "nospeech" / "drysrc" / "a1"
    for c in ("bells5", "horn"):
        for i in range(2):
            x = (tone(0.2, sr=48000, freq=600 + 100 * i) * 32767 * 0.5).astype("<i2")
            (root / c / "48khz").mkdir(parents=True, exist_ok=True)
            (root / c / "48khz" / f"00{i}.raw").write_bytes(x.tobytes())
    bad_entries(root / "horn" / "48khz", ".raw")
    cs = load_rwcp(tmp_path / "rwcp", classes="all")
    got = reasons_by_name(cs.skipped)
    assert len(cs.clips) == 4
    assert got["dangling.raw"] == "broken link (its target does not exist); not read"
    assert got["pipe.raw"] == "not a regular file (a named pipe (FIFO)); not read"
    assert got["huge.raw"] == "too long: 22369.62 s (the limit is 600 s, set by STCA_MAX_AUDIO_SECONDS); not read"


def _medley(root: Path, t: str, stems: dict[str, str], seconds=4.0):
    d = root / "Audio" / t
    (d / f"{t}_STEMS").mkdir(parents=True, exist_ok=True)
    lines = ["stems:"]
    for sid, inst in stems.items():
        lines += [f"  {sid}:", f"    instrument: {inst}", f"    filename: {t}_STEM_{sid[1:]}.wav"]
    (d / f"{t}_METADATA.yaml").write_text("\n".join(lines) + "\n")
    return d / f"{t}_STEMS"


def test_medleydb_loader_skips_linked_away_fifo_and_oversized_stems(tmp_path, monkeypatch):
    from stca_engine.data.medleydb import load_medleydb

    monkeypatch.setenv("STCA_MAX_AUDIO_SECONDS", "30")
    root = tmp_path / "medley"
    for i, t in enumerate(("A", "B", "C")):
        stems = _medley(root, t, {"S01": "violin", "S02": "flute"})
        for j, f in enumerate((500, 900)):
            write_wav(stems / f"{t}_STEM_0{j + 1}.wav", tone(4.0, freq=f + 50 * i))
    bad = _medley(root, "D", {"S01": "violin", "S02": "flute", "S03": "cello"})
    os.symlink(bad / "elsewhere.wav", bad / "D_STEM_01.wav")
    os.mkfifo(bad / "D_STEM_02.wav")
    sparse_wav(bad / "D_STEM_03.wav", 2 * SR * 60)  # header: 60 s, over the 30 s limit
    cs = load_medleydb(root, classes="violin,flute", min_pieces=1)
    got = reasons_by_name(cs.skipped)
    assert got["D_STEM_01.wav"] == "stem S01 (violin): broken link (its target does not exist); not read"
    assert got["D_STEM_02.wav"] == "stem S02 (flute): not a regular file (a named pipe (FIFO)); not read"
    assert sorted(cs.class_names) == ["flute", "violin"] and len(cs.clips) > 0
    cs = load_medleydb(root, classes=None, min_pieces=1)
    got = reasons_by_name(cs.skipped)
    assert got["D_STEM_03.wav"] == (
        "stem S03 (cello): too long: 60.00 s (the limit is 30 s, set by STCA_MAX_AUDIO_SECONDS); not read"
    )


def test_a_dataset_file_grown_past_the_limit_after_listing_is_refused_before_decoding(tmp_path, monkeypatch):
    """The clip's own load checks the header again (the file may change between listing and encoding)."""
    from stca_engine.data.cache import encode_clips
    from stca_engine.data.clips import AudioClip
    from stca_engine.encoders import make_encoder
    from stca_engine.errors import AudioError

    monkeypatch.setenv("STCA_MAX_AUDIO_SECONDS", "5")
    p = sparse_wav(tmp_path / "grown.wav", 2 * SR * 60)
    with pytest.raises(
        AudioError,
        match=r"grown\.wav: too long: 60\.00 s \(the limit is 5 s, set by "
        r"STCA_MAX_AUDIO_SECONDS\); not read$",
    ):
        AudioClip(str(p), "x").load()
    enc = encode_clips([AudioClip(str(p), "x")], make_encoder("spectral"), cache=False, workers=1)
    assert list(enc) == [None] and "too long: 60.00 s" in enc.skipped[0][1]


def test_folder_root_that_is_not_a_dataset_is_refused_without_walking_the_disk(tmp_path, monkeypatch):
    from stca_engine.data import folder, sources
    from stca_engine.errors import DatasetError

    calls = []
    real_walk = os.walk
    monkeypatch.setattr(folder.os, "walk", lambda *a, **k: calls.append(a) or real_walk(*a, **k))
    with pytest.raises(DatasetError, match=r"^/: is the root of the file system, not a dataset folder"):
        sources.load_clipset("folder:/")
    assert calls == [], "the disk was walked"
    # a folder with many files: the walk stops at the entry cap instead of listing everything
    root = tmp_path / "big"
    for c in ("a", "b"):
        (root / c / "deep").mkdir(parents=True)
        for i in range(40):
            (root / c / "deep" / f"{i}.txt").write_text("x")
    monkeypatch.setattr(folder, "MAX_ENTRIES", 50)
    with pytest.raises(DatasetError, match=r"big: holds more than 50 files and folders; not a dataset folder"):
        folder.load_folder(root)
    # depth is bounded: audio files nested deeper than MAX_DEPTH below a class are not searched
    monkeypatch.setattr(folder, "MAX_ENTRIES", 200_000)
    deep = class_folder(tmp_path / "nest")
    write_wav(deep / "cat" / "1" / "2" / "3" / "4" / "5" / "deep.wav", tone())
    cs = folder.load_folder(deep)
    assert len(cs.clips) == 4


def test_cli_train_lists_skipped_files_and_finishes(tmp_path, monkeypatch, capsys):
    from stca_engine import cli

    root = class_folder(tmp_path / "mine", n=3)
    bad_entries(root / "cat")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STCA_DATA_ROOTS", raising=False)
    capsys.readouterr()
    code = cli.main(
        [
            "train",
            "--data",
            f"folder:{root}",
            "--task",
            "classify",
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--encoder",
            "spectral",
            "--out",
            str(tmp_path / "run"),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    assert "skipped 3 file(s):" in err
    assert f"  {root / 'cat' / 'dangling.wav'}: broken link (its target does not exist); not read" in err
    assert f"  {root / 'cat' / 'pipe.wav'}: not a regular file (a named pipe (FIFO)); not read" in err
    assert f"  {root / 'cat' / 'huge.wav'}: too long: 67108.86 s (the limit is 600 s" in err


def test_cli_train_on_the_filesystem_root_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    code, err = run_cli(
        ["train", "--data", "folder:/", "--task", "classify", "--out", str(tmp_path / "run")],
        tmp_path,
        monkeypatch,
        capsys,
    )
    assert_one_line_error(code, err, "/: is the root of the file system, not a dataset folder")
    assert not (tmp_path / "run").exists()


def test_app_data_page_lists_unreadable_entries_and_keeps_working(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root = class_folder(tmp_path / "mine")
    bad_entries(root / "cat")
    monkeypatch.setenv("STCA_DATA_ROOTS", str(tmp_path))
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(APP_PAGES / "1_Data.py"), default_timeout=120)
    at.run()
    at.radio(key="data.source").set_value("Folder of class sub-folders").run()
    at.text_input(key="data.path").input(str(root)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    tables = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert len(tables) == 1, "no 'file(s) left out' table"
    table = tables[0]
    got = {Path(f).name: r for f, r in zip(table["file"], table["reason"])}
    assert got["dangling.wav"] == "broken link (its target does not exist); not read"
    assert got["pipe.wav"] == "not a regular file (a named pipe (FIFO)); not read"
    assert got["huge.wav"].startswith("too long: 67108.86 s")


# ---- 3. --out and every other write: regular files only, temp file beside the target, always removed --


def _full_device(p: Path) -> Path:
    """A character device like /dev/full (1, 7) inside tmp_path, so the real /dev/full is never at risk."""
    import stat

    try:
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except PermissionError:
        pytest.skip("creating a device node needs root (CAP_MKNOD); the FIFO and folder rows still run")
    return p


def _fifo(p: Path) -> Path:
    os.mkfifo(p)
    return p


def _folder(p: Path) -> Path:
    p.mkdir()
    return p


TARGETS = {
    "device": (_full_device, "is a device file, not a regular file; refusing to replace it"),
    "fifo": (_fifo, "is a named pipe (FIFO), not a regular file; refusing to replace it"),
    "folder": (_folder, "is a folder, not a regular file; refusing to replace it"),
}


def _unchanged(p: Path, kind: str) -> bool:
    import stat

    mode = os.lstat(p).st_mode
    return {"device": stat.S_ISCHR, "fifo": stat.S_ISFIFO, "folder": stat.S_ISDIR}[kind](mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "tmp" in p.name)


@pytest.mark.parametrize("kind", list(TARGETS))
def test_cli_encode_refuses_a_non_regular_out_target(kind, tmp_path, monkeypatch, capsys):
    make, problem = TARGETS[kind]
    out = make(tmp_path / "out.npz")
    wav = write_wav(tmp_path / "tone.wav", tone())
    code, err = run_cli(
        ["encode", str(wav), "--out", str(out), "--encoder", "spectral", "--no-cache"], tmp_path, monkeypatch, capsys
    )
    assert_one_line_error(code, err, f"stca: error: {out}: {problem}")
    assert _unchanged(out, kind), "the target was replaced"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", list(TARGETS))
def test_write_json_and_write_atomic_refuse_non_regular_targets(kind, tmp_path):
    from stca_engine import cli
    from stca_engine.atomic import write_atomic
    from stca_engine.errors import ConfigError

    make, problem = TARGETS[kind]
    out = make(tmp_path / "eval.json")
    with pytest.raises(ConfigError) as ei:
        cli.write_json(out, {"a": 1})
    assert str(ei.value) == f"{out}: {problem} (choose a file name)"
    with pytest.raises(ConfigError):
        write_atomic(out, b"x")
    assert _unchanged(out, kind)
    assert _leftovers(tmp_path) == []


def test_a_symlink_to_a_device_is_refused_and_a_symlink_to_a_file_is_written_through(tmp_path):
    from stca_engine.atomic import write_atomic
    from stca_engine.errors import ConfigError

    dev = _full_device(tmp_path / "full")
    os.symlink(dev, tmp_path / "link.npz")
    with pytest.raises(ConfigError, match=r"link\.npz: is a device file"):
        write_atomic(tmp_path / "link.npz", b"x")
    real = tmp_path / "real.json"
    real.write_text("old")
    os.symlink(real, tmp_path / "alias.json")
    write_atomic(tmp_path / "alias.json", b"new")
    assert (tmp_path / "alias.json").is_symlink() and real.read_text() == "new"


def test_cli_encode_failed_write_names_the_out_path_exits_2_and_leaves_no_temp_file(tmp_path, monkeypatch, capsys):
    import errno

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", disk_full)
    wav = write_wav(tmp_path / "tone.wav", tone())
    out = tmp_path / "out" / "spikes.npz"
    code, err = run_cli(
        ["encode", str(wav), "--out", str(out), "--encoder", "spectral", "--no-cache"], tmp_path, monkeypatch, capsys
    )
    line = assert_one_line_error(code, err)
    assert line == f"stca: error: {out}: cannot write the file (No space left on device)"
    assert not out.exists() and _leftovers(out.parent) == []


def test_failed_model_save_names_the_model_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import errno

    from stca_engine import atomic
    from stca_engine.checkpoint import save_model
    from stca_engine.errors import StcaError

    real_fdopen = os.fdopen

    class Full(io.RawIOBase):
        def __init__(self, fd):
            self.f = real_fdopen(fd, "wb")

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.f.close()

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: Full(fd))
    with pytest.raises(StcaError) as ei:
        save_model(tmp_path / "m", _tiny_net(), NeuronConfig(), task="detect")
    assert "m/model.safetensors: cannot write the file (No space left on device)" in str(ei.value)
    assert _leftovers(tmp_path / "m") == []


# ---- 4. text from links, file names and archives is shown as plain text, never Markdown --------------


def _app_path():
    import sys

    app = str(REPO / "app")
    if app not in sys.path:
        sys.path.insert(0, app)


def rendered(md: str) -> str:
    """Markdown source -> HTML (Python-Markdown: close enough to tell text from links, images,
    emphasis, headings and lists; Streamlit's own extensions are checked on the source)."""
    import markdown

    return markdown.markdown(md)


EVIL = "[click here](http://evil.example/phish) ![x](http://evil.example/pixel.png)"
HOSTILE = [
    EVIL,
    "<a href='http://evil.example'>x</a> <img src=x onerror=alert(1)>",
    "# Heading",
    "1. a list",
    "- a list",
    "> quote",
    "**bold** *em* _em_ __b__ ~~gone~~ `code`",
    ":red[red] :material/home: :smile: $x^2$ $$y$$",
    "see http://evil.example or www.evil.example or mail me@evil.example",
    "two\n\n# lines",
    "&lt;b&gt; &amp;",
    "back\\slash [a]: http://evil.example",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_shows_hostile_text_as_plain_text(text):
    import html
    import re

    _app_path()
    from components.text import ZWSP, plain

    src = plain(text)
    out = rendered(src)
    for tag in ("<a", "<img", "<em", "<strong", "<h1", "<code", "<li", "<blockquote", "<del", "<hr"):
        assert tag not in out, (src, out)
    # the reader sees the same characters (newlines as spaces); nothing else was added or dropped
    shown = html.unescape(re.sub(r"</?p>", "", out)).replace(ZWSP, "")
    assert shown == " ".join(text.split()).replace("\n", " ") or shown == " ".join(text.split("\n")).strip(), (
        shown,
        text,
    )
    # Streamlit's extensions: no ":name:" shortcode, ":color[" directive, unescaped "$" or autolink left
    assert not re.search(r":[A-Za-z0-9_+\-/]+:", src.replace("\\", ""))
    assert not re.search(r"(?<!\\)\$", src)
    assert not re.search(r"(?i)https?://|www\.|\w@\w", src)


def test_plain_keeps_ordinary_messages_unchanged():
    _app_path()
    from components.text import plain

    for msg in (
        "/tmp/x/rwcp: no class folders found",
        "tau_s_ms (40.0) must be smaller than tau_m_ms (30.0)",
        "big.wav: upload too large: 3.0 MB (the limit is 3 MB, set by STCA_MAX_UPLOAD_MB)",
        "rwcp:/data/x: missing class(es) cup1; found: bells5, horn",
    ):
        assert plain(msg) == msg


def test_train_link_with_markdown_in_the_preset_is_shown_as_plain_text(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STCA_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(APP_PAGES / "2_Train.py"), default_timeout=120)
    at.query_params["preset"] = EVIL
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning if "Link setting ignored" in w.value]
    assert len(warnings) == 1, [w.value for w in at.warning]
    out = rendered(warnings[0])
    assert "<a" not in out and "<img" not in out, out
    assert "evil.example/phish" in warnings[0].replace("\u200b", "")  # still says what was ignored


def _zip_with_class_names(names) -> bytes:
    from stca_engine.checkpoint import model_to_zip_bytes

    return model_to_zip_bytes(
        _tiny_net((6, 5, len(names))),
        NeuronConfig(),
        class_names=list(names),
        task="detect",
        objective="stca",
        encoder_settings={"name": "spectral"},
    )


def test_detect_page_shows_archive_class_names_and_file_names_as_plain_text(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STCA_RUNS_DIR", str(tmp_path / "runs"))
    names = ["[win](http://evil.example)", "![i](http://evil.example/p.png)", ":red[alarm]"]
    at = AppTest.from_file(str(APP_PAGES / "3_Detect.py"), default_timeout=120)
    at.run()
    at.radio(key="detect.model_src").set_value("Upload a model .zip").run()
    at.file_uploader(key="detect.model_zip").set_value(
        ("[a](http://evil.example).zip", _zip_with_class_names(names), "application/zip")
    ).run()
    assert not at.exception, [e.value for e in at.exception]
    model_lines = [s.value for s in at.success if "Model:" in s.value]
    assert model_lines, [s.value for s in at.success]
    for body in model_lines:
        out = rendered(body)
        assert "<a" not in out and "<img" not in out, out
        assert ":red[" not in body.replace("\\", "")
    # an archive whose name carries Markdown and that fails to load: the error is plain text too
    at.file_uploader(key="detect.model_zip").set_value(
        ("[b](http://evil.example).zip", b"not a zip", "application/zip")
    ).run()
    errs = [e.value for e in at.error]
    assert errs and all("<a" not in rendered(e) for e in errs), errs


def test_data_page_shows_a_folder_name_with_markdown_as_plain_text(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root = class_folder(tmp_path / "[x](http:evil.example) **loud**")
    monkeypatch.setenv("STCA_DATA_ROOTS", str(tmp_path))
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(APP_PAGES / "1_Data.py"), default_timeout=120)
    at.run()
    at.radio(key="data.source").set_value("Folder of class sub-folders").run()
    at.text_input(key="data.path").input(str(root)).run()
    assert not at.exception, [e.value for e in at.exception]
    bodies = [s.value for s in at.success] + [c.value for c in at.caption]
    assert any("loud" in b for b in bodies)
    for b in bodies:
        out = rendered(b)
        assert "<a" not in out and "<strong>loud" not in out, out
    # and a folder that does not exist: its name in the error is plain text
    at.text_input(key="data.path").input(str(tmp_path / "[y](http://evil.example)")).run()
    errs = [e.value for e in at.error]
    assert errs and all("<a" not in rendered(e) for e in errs), errs


# ---- 6. a truncated WAV is read as far as it goes, with a warning naming what is missing -------------


def truncated_wav_bytes(declared_s=2.0, missing_s=1.38) -> bytes:
    b = io.BytesIO()
    sf.write(b, tone(declared_s, freq=500), SR, subtype="PCM_16", format="WAV")
    data = b.getvalue()
    return data[: len(data) - int(round(missing_s * SR)) * 2]


CUT_MESSAGE = (
    "truncated: the header declares 2.00 s of audio but only 0.62 s are present (1.38 s missing); using what is there"
)


def test_truncated_wav_warns_naming_how_much_is_missing(tmp_path):
    from stca_engine.audio import AudioWarning, load_audio, load_audio_bytes

    p = tmp_path / "cut.wav"
    p.write_bytes(truncated_wav_bytes())
    notes = []
    wave = load_audio(p, warn=notes.append)
    assert wave.size == int(0.62 * SR)
    assert notes == [f"{p}: {CUT_MESSAGE}"]
    with pytest.warns(AudioWarning, match=r"cut\.wav: truncated: the header declares 2\.00 s"):
        load_audio(p)
    notes = []
    load_audio_bytes(p.read_bytes(), "up.wav", warn=notes.append)
    assert notes == [f"up.wav: {CUT_MESSAGE}"]
    whole = write_wav(tmp_path / "whole.wav", tone(2.0), subtype="PCM_16")
    notes = []
    load_audio(whole, warn=notes.append)
    assert notes == []


def _detect_model(tmp_path) -> Path:
    from stca_engine.checkpoint import save_model
    from stca_engine.encoders import make_encoder

    enc = make_encoder("spectral")
    settings = {"name": enc.name, **enc.settings()}
    return save_model(
        tmp_path / "model",
        _tiny_net((enc.n_units, 5, 2)),
        NeuronConfig(),
        class_names=["a", "b"],
        task="detect",
        objective="stca",
        encoder_settings=settings,
    )


def test_cli_detect_warns_about_a_truncated_wav_and_goes_on(tmp_path, monkeypatch, capsys):
    model = _detect_model(tmp_path)
    p = tmp_path / "cut.wav"
    p.write_bytes(truncated_wav_bytes())
    code, err = run_cli(["detect", str(model), str(p)], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert f"stca: warning: {p}: {CUT_MESSAGE}" in err.splitlines()
    assert "Traceback" not in err


def test_app_detect_page_warns_about_a_truncated_upload(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STCA_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(APP_PAGES / "3_Detect.py"), default_timeout=120)
    at.run()
    at.radio(key="detect.audio_src").set_value("Upload a recording").run()
    at.file_uploader(key="detect.upload").set_value(("cut.wav", truncated_wav_bytes(), "audio/wav")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert f"cut.wav: {CUT_MESSAGE}" in [w.value for w in at.warning]
    at.run()  # still shown on the next rerun (the recording is cached with its warning)
    assert f"cut.wav: {CUT_MESSAGE}" in [w.value for w in at.warning]


# ---- 7. one heartbeat value in code and docs; per-session upload folders are removed ----------------


def test_heartbeat_and_idle_pause_defaults_are_the_documented_ones(monkeypatch):
    import re

    _app_path()
    import training_worker as tw

    monkeypatch.delenv("STCA_HEARTBEAT_S", raising=False)
    monkeypatch.delenv("STCA_IDLE_PAUSE_S", raising=False)
    doc = (REPO / "docs" / "ROBUSTNESS.md").read_text()
    documented = {
        name: float(v)
        for name, v in re.findall(r"^\| `(STCA_HEARTBEAT_S|STCA_IDLE_PAUSE_S)` \| (\d+) \|", doc, flags=re.M)
    }
    assert documented == {"STCA_HEARTBEAT_S": tw.heartbeat_timeout_s(), "STCA_IDLE_PAUSE_S": tw.idle_pause_s()}
    assert tw.heartbeat_timeout_s() == tw.DEFAULT_HEARTBEAT_S > tw.idle_pause_s()
    w = tw.TrainingWorker(lambda p, s: {}, n_epochs=1)
    assert w.heartbeat_timeout_s == tw.DEFAULT_HEARTBEAT_S


def _upload_files():
    b = []
    for name, f in (("bird_1.wav", 500), ("bird_2.wav", 700), ("horn_1.wav", 300), ("horn_2.wav", 900)):
        buf = io.BytesIO()
        sf.write(buf, tone(0.3, freq=f), SR, format="WAV", subtype="FLOAT")
        b.append((buf.getvalue(), name))
    return b


def test_upload_folder_is_removed_when_its_clipset_is_dropped():
    import gc

    from stca_engine.data.uploads import uploads_clipset

    cs = uploads_clipset(_upload_files())
    folder = Path(cs.info["folder"])
    assert folder.is_dir() and folder.name.startswith(f"stca_uploads_{os.getpid()}_")
    assert len(cs.clips) == 4 and all(Path(c.path).is_file() for c in cs.clips)
    del cs
    gc.collect()
    assert not folder.exists()


def test_failed_upload_set_leaves_no_folder(tmp_path, monkeypatch):
    import tempfile

    from stca_engine.data.uploads import uploads_clipset
    from stca_engine.errors import DatasetError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(DatasetError):
        uploads_clipset([(b"not audio", "a_1.wav"), (b"nor this", "a_2.wav")])
    assert list(tmp_path.iterdir()) == []


def test_stale_upload_folders_of_gone_servers_are_removed_at_server_start(tmp_path):
    import time as _time

    from stca_engine.data.uploads import remove_stale_upload_dirs

    gone = tmp_path / "stca_uploads_999999999_ab12"  # a pid above any pid_max: that server is gone
    mine = tmp_path / f"stca_uploads_{os.getpid()}_cd34"
    old = tmp_path / "stca_uploads_legacy1"
    fresh = tmp_path / "stca_uploads_legacy2"
    other = tmp_path / "something_else"
    for d in (gone, mine, old, fresh, other):
        d.mkdir()
        (d / "x.wav").write_bytes(b"x")
    two_days_ago = _time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    removed = remove_stale_upload_dirs(tmp_path)
    assert sorted(removed) == sorted([str(gone), str(old)])
    assert mine.is_dir() and fresh.is_dir() and other.is_dir() and not gone.exists() and not old.exists()


def test_data_page_session_end_removes_its_upload_folder(tmp_path, monkeypatch):
    import gc

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(APP_PAGES / "1_Data.py"), default_timeout=120)
    at.run()
    at.radio(key="data.source").set_value("Upload files").run()
    at.file_uploader(key="data.uploads").set_value([(n, d, "audio/wav") for d, n in _upload_files()]).run()
    assert not at.exception, [e.value for e in at.exception]
    folder = Path(at.session_state["data.upload_set"][1].info["folder"])
    assert folder.is_dir() and any(folder.iterdir()) and folder.name.startswith(f"stca_uploads_{os.getpid()}_")
    # the user uploads another set: the first folder goes, the new one is live
    at.file_uploader(key="data.uploads").set_value([("x" + n, d, "audio/wav") for d, n in _upload_files()]).run()
    assert not at.exception, [e.value for e in at.exception]
    second = Path(at.session_state["data.upload_set"][1].info["folder"])
    at.run()  # Streamlit's session state lets go of replaced values at the next run
    gc.collect()
    assert second.is_dir() and not folder.exists()
    del at  # the session ends: its state goes
    gc.collect()
    assert not second.exists()


def test_first_page_of_a_server_removes_upload_folders_of_gone_servers(tmp_path, monkeypatch):
    import tempfile

    from streamlit.testing.v1 import AppTest

    _app_path()
    import components

    gone = tmp_path / "stca_uploads_999999999_zz"
    gone.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    components.server_started.clear()  # as on a fresh server process
    try:
        at = AppTest.from_file(str(REPO / "app" / "Home.py"), default_timeout=120)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert not gone.exists()
    finally:
        components.server_started.clear()


def test_train_page_lists_the_files_its_dataset_left_out(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root = class_folder(tmp_path / "mine", n=3)
    bad_entries(root / "cat")
    monkeypatch.setenv("STCA_DATA_ROOTS", str(tmp_path))
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STCA_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(APP_PAGES / "2_Train.py"), default_timeout=120)
    for k, v in {
        "task": "classify",
        "data": f"folder:{root}",
        "classes": "cat,dog",
        "encoder": "spectral",
        "hidden": "4",
        "epochs": "1",
        "batch_size": "2",
    }.items():
        at.query_params[k] = v
    at.run()
    at.button(key="train.btn_start").click().run()
    run = at.session_state["train.run"] if "train.run" in at.session_state else None
    assert run is not None, [e.value for e in at.error]
    try:
        run["worker"].join(120)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        tables = [d.value for d in at.dataframe if "reason" in d.value.columns]
        assert len(tables) == 1, "no 'file(s) left out' table on the Train page"
        got = {Path(f).name: r for f, r in zip(tables[0]["file"], tables[0]["reason"])}
        assert got["dangling.wav"] == "broken link (its target does not exist); not read"
        assert got["pipe.wav"] == "not a regular file (a named pipe (FIFO)); not read"
        assert got["huge.wav"].startswith("too long: 67108.86 s")
    finally:
        run["worker"].stop("test over", wait_s=30)


def test_rwcp_root_that_is_not_a_dataset_is_refused_without_walking_the_disk(tmp_path, monkeypatch):
    from stca_engine.data import rwcp, sources
    from stca_engine.errors import DatasetError

    calls = []
    real_walk = os.walk
    monkeypatch.setattr(rwcp.os, "walk", lambda *a, **k: calls.append(a) or real_walk(*a, **k))
    with pytest.raises(DatasetError, match=r"^/: is the root of the file system, not an RWCP folder"):
        sources.load_clipset("rwcp:/")
    assert calls == []
    for i in range(30):
        (tmp_path / "big" / f"d{i}").mkdir(parents=True)
    monkeypatch.setattr(rwcp, "MAX_FOLDERS", 20)
    with pytest.raises(DatasetError, match=r"big: holds more than 20 folders; not an RWCP folder"):
        rwcp.load_rwcp(tmp_path / "big")
