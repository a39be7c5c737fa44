"""Generic folder loader (one sub-folder per class) and browser uploads."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from stca_engine.data.folder import load_folder
from stca_engine.data.uploads import label_from_filename, load_uploads, uploads_clipset
from stca_engine.errors import DatasetError

SR = 22050


def wav_bytes(freq=440.0, seconds=0.3, fmt="WAV", sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, 0.5 * np.sin(2 * np.pi * freq * t), sr, format=fmt)
    return buf.getvalue()


def make_folder(root, classes, n=4, ext="wav"):
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            (root / c / f"{k:02d}.{ext}").write_bytes(wav_bytes(200 + 100 * ci + 10 * k, fmt=ext.upper()))
    return root


def test_classes_and_seeded_half_split(tmp_path):
    make_folder(tmp_path, ["dog", "bird"], n=5)
    (tmp_path / "bird" / "deep").mkdir()
    (tmp_path / "bird" / "deep" / "x.flac").write_bytes(wav_bytes(900, fmt="FLAC"))
    a = load_folder(tmp_path, seed=1)
    assert a.class_names == ["bird", "dog"]
    assert a.counts() == {"bird": (3, 3), "dog": (3, 2)}
    assert sorted(a.train_idx + a.test_idx) == list(range(11))
    b = load_folder(tmp_path, seed=1)
    c = load_folder(tmp_path, seed=2)
    assert a.train_idx == b.train_idx and a.clips == b.clips
    assert [a.train_idx, a.test_idx] != [c.train_idx, c.test_idx]
    w = a.clips[0].load()
    assert w.dtype == np.float32 and abs(float(np.abs(w).max()) - 1) < 1e-6


def test_skips_non_audio_empty_and_small_classes(tmp_path):
    make_folder(tmp_path, ["dog", "cat"], n=3)
    (tmp_path / "dog" / "readme.txt").write_text("x")
    (tmp_path / "dog" / "empty.wav").write_bytes(b"")
    (tmp_path / "owl").mkdir()
    (tmp_path / "owl" / "00.wav").write_bytes(wav_bytes())
    cs = load_folder(tmp_path)
    assert cs.class_names == ["cat", "dog"]
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in cs.skipped}
    assert "not an audio file" in reasons["readme.txt"]
    assert "empty" in reasons["empty.wav"]
    assert "owl" in reasons["owl"] and "need at least 2" in reasons["owl"]


def test_errors_name_the_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_folder(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no class sub-folders") as e:
        load_folder(tmp_path)
    assert str(tmp_path) in str(e.value)
    make_folder(tmp_path, ["dog"], n=2)
    with pytest.raises(DatasetError, match="missing class folder.*cat.*found: dog"):
        load_folder(tmp_path, classes=["dog", "cat"])


def test_max_per_class(tmp_path):
    make_folder(tmp_path, ["dog"], n=10)
    cs = load_folder(tmp_path, max_per_class=4, seed=0)
    assert len(cs.clips) == 4 and cs.counts() == {"dog": (2, 2)}


def test_label_from_filename():
    assert label_from_filename("dog_01.wav") == "dog"
    assert label_from_filename("dog-2.flac") == "dog"
    assert label_from_filename("dog7.wav") == "dog"
    assert label_from_filename("Door Knock 3.mp3") == "Door"
    assert label_from_filename("123.wav") == "123"


def test_load_uploads_decodes_good_and_lists_bad():
    files = [
        (wav_bytes(440), "a.wav"),
        (b"not audio at all" * 50, "b.wav"),
        (b"", "c.wav"),
        (wav_bytes(440, seconds=3.0), "long.wav"),
    ]
    waves, skipped = load_uploads(files, max_seconds=2.0)
    assert [n for n, _ in waves] == ["a.wav"]
    assert waves[0][1].shape == (int(0.3 * 16000),)
    reasons = dict(skipped)
    assert set(reasons) == {"b.wav", "c.wav", "long.wav"}
    assert "empty" in reasons["c.wav"] and "too long" in reasons["long.wav"]


def test_upload_size_cap():
    big = wav_bytes(440, seconds=1.0)
    waves, skipped = load_uploads([(big, "big.wav")], max_mb=len(big) / 2**20 / 2)
    assert waves == [] and "too large" in skipped[0][1]


def test_uploads_clipset_labels_and_storage(tmp_path):
    files = [(wav_bytes(300 + 10 * k), f"dog_{k}.wav") for k in range(3)]
    files += [(wav_bytes(900 + 10 * k), f"bird-{k}.wav") for k in range(2)]
    files += [(wav_bytes(1500), "owl_1.wav"), (b"junk", "junk.wav"), (wav_bytes(200), "notes.txt")]
    cs = uploads_clipset(files, dest=tmp_path / "up", seed=0)
    assert cs.class_names == ["bird", "dog"]
    assert cs.counts() == {"bird": (1, 1), "dog": (2, 1)}
    reasons = dict(cs.skipped)
    assert set(reasons) == {"junk.wav", "notes.txt", "owl_1.wav"}
    assert "not an audio file" in reasons["notes.txt"] and "only one" in reasons["owl_1.wav"]
    for c in cs.clips:
        assert c.path.startswith(str(tmp_path / "up"))
        assert c.load().size > 0
    again = uploads_clipset(files, dest=tmp_path / "up", seed=0)  # same bytes -> same files
    assert [c.path for c in again.clips] == [c.path for c in cs.clips]
    labelled = uploads_clipset(files[:4], labels=["x", "x", "y", "y"], dest=tmp_path / "up2")
    assert labelled.class_names == ["x", "y"]
    with pytest.raises(DatasetError, match="labels for"):
        uploads_clipset(files[:2], labels=["x"])
    with pytest.raises(DatasetError, match="no class with at least two"):
        uploads_clipset(files[5:6], dest=tmp_path / "up3")
