"""A .zip of class folders uploaded in the browser: labelled by folder, unpacked one member at a time
within the upload cap, the archive caps (STCA_MAX_ARCHIVE_MB / _FILES), and trainable like any set."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import soundfile as sf

from stca_engine.data.uploads import archive_labels, uploads_clipset
from stca_engine.errors import DatasetError

SR = 16000


def wav(freq: float, seconds: float = 0.3) -> bytes:
    t = np.arange(int(SR * seconds)) / SR
    buf = io.BytesIO()
    sf.write(buf, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def make_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_class_folders_inside_one_top_folder_become_the_classes(tmp_path):
    members = {
        f"my sounds/{c}/take{i}.wav": wav(f0 + 40 * i) for c, f0 in (("dog", 300), ("cat", 900)) for i in range(3)
    }
    members["my sounds/README.txt"] = b"notes"
    members["__MACOSX/my sounds/dog/._take0.wav"] = b"resource fork"
    members["my sounds/.DS_Store"] = b"x"
    cs = uploads_clipset([(make_zip(members), "sounds.zip")], dest=tmp_path)
    assert cs.class_names == ["cat", "dog"]
    assert len(cs.clips) == 6 and sorted(cs.counts().values()) == [(2, 1), (2, 1)]
    assert all(p.parent == tmp_path for p in (__import__("pathlib").Path(c.path) for c in cs.clips))
    assert [n for n, _ in cs.skipped] == ["sounds.zip:my sounds/README.txt"]  # hidden/macOS entries ignored quietly


def test_archive_labels_rules():
    assert archive_labels([(("a", "dog"), "1.wav"), (("a", "cat"), "1.wav")]) == ["dog", "cat"]
    assert archive_labels([(("dog",), "1.wav"), (("dog",), "2.wav")]) == ["dog", "dog"]  # a one-class zip
    assert archive_labels([((), "bell_01.wav"), ((), "horn-2.wav")]) == ["bell", "horn"]  # flat: file names
    assert archive_labels([(("x", "dog", "takes"), "1.wav"), (("x", "cat"), "2.wav")]) == ["dog", "cat"]
    assert archive_labels([(("x",), "bell_1.wav"), (("x", "cat"), "2.wav")]) == ["bell", "cat"]


def test_zips_and_loose_files_mix_and_bad_members_are_listed(tmp_path):
    members = {"dog/1.wav": wav(300), "dog/2.wav": wav(340), "dog/broken.wav": b"not a wav" * 30}
    files = [(make_zip(members), "dogs.zip"), (wav(900), "cat_1.wav"), (wav(950), "cat_2.wav"), (b"PK junk", "x.zip")]
    cs = uploads_clipset(files, dest=tmp_path)
    assert cs.class_names == ["cat", "dog"] and len(cs.clips) == 4
    reasons = dict(cs.skipped)
    assert "dogs.zip:dog/broken.wav" in reasons and reasons["x.zip"] == "not a zip archive"


def test_a_member_that_unpacks_past_the_cap_is_never_read(tmp_path, monkeypatch):
    """A zip bomb member (highly compressible zeros) is refused by its declared size, before unpacking."""
    bomb = b"\x00" * (3 * 2**20)
    members = {"dog/1.wav": wav(300), "dog/2.wav": wav(340), "cat/1.wav": wav(900), "cat/2.wav": wav(950)}
    members["cat/huge.wav"] = bomb
    data = make_zip(members)
    assert len(data) < 200_000
    read = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(
        zipfile.ZipFile,
        "open",
        lambda self, info, *a, **k: read.append(info.filename) or real_open(self, info, *a, **k),
    )
    cs = uploads_clipset([(data, "s.zip")], dest=tmp_path, max_mb=1.0)
    assert "cat/huge.wav" not in read and len(cs.clips) == 4
    assert "over the upload limit of 1 MB" in dict(cs.skipped)["s.zip:cat/huge.wav"]


def test_archive_total_and_file_count_caps(tmp_path, monkeypatch):
    members = {
        f"{c}/{i}.wav": wav(300 + 100 * i + (500 if c == "cat" else 0)) for c in ("dog", "cat") for i in range(3)
    }
    data = make_zip(members)
    monkeypatch.setenv("STCA_MAX_ARCHIVE_FILES", "5")
    with pytest.raises(DatasetError, match="holds 6 sound files, more than 5"):
        uploads_clipset([(data, "s.zip")], dest=tmp_path / "a")
    monkeypatch.delenv("STCA_MAX_ARCHIVE_FILES")
    one = len(wav(300))
    monkeypatch.setenv("STCA_MAX_ARCHIVE_MB", str(4.5 * one / 2**20))  # room for 4 of the 6 files
    cs = uploads_clipset([(data, "s.zip")], dest=tmp_path / "b")
    assert sum("unpacks to more than" in r and "STCA_MAX_ARCHIVE_MB" in r for _, r in cs.skipped) == 2
    # members are read in archive order: dog ×3, then one cat (too few to keep that class)
    assert cs.class_names == ["dog"] and len(cs.clips) == 3
    assert any("class 'cat' has only one usable upload" in r for _, r in cs.skipped)


def test_subset_keeps_the_split_and_names_unknown_classes(tmp_path):
    members = {
        f"{c}/{i}.wav": wav(f0 + 30 * i) for c, f0 in (("dog", 300), ("cat", 900), ("owl", 600)) for i in range(4)
    }
    cs = uploads_clipset([(make_zip(members), "s.zip")], dest=tmp_path)
    sub = cs.subset("owl, dog")
    assert sub.class_names == ["owl", "dog"] and len(sub.clips) == 8
    assert sub.counts() == {"owl": cs.counts()["owl"], "dog": cs.counts()["dog"]}
    assert {sub.clips[i].class_name for i in sub.train_idx} == {"owl", "dog"}
    with pytest.raises(DatasetError, match="no class 'bird'"):
        cs.subset(["bird"])


def test_an_uploaded_archive_trains_like_a_folder(tmp_path):
    from stca_engine.data.sources import prepare_datasets
    from stca_engine.encoders import make_encoder

    members = {f"{c}/{i}.wav": wav(f0 + 30 * i) for c, f0 in (("dog", 300), ("cat", 1200)) for i in range(4)}
    cs = uploads_clipset([(make_zip(members), "s.zip")], dest=tmp_path)
    train, test, info = prepare_datasets(cs, "classify", encoder=make_encoder("spectral"), cache=False, workers=1)
    assert len(train) == 4 and len(test) == 4 and info["class_names"] == ["cat", "dog"]
