"""RWCP loader on fixture trees in the real layout (nospeech/drysrc/<group>/<class>/48khz/NNN.raw)."""

from __future__ import annotations

import numpy as np
import pytest

from stca_engine.data.clips import AudioClip
from stca_engine.data.rwcp import AUTHORS_CLASSES, PAPER_CLASSES, load_rwcp
from stca_engine.errors import AudioError, DatasetError

SR = 48000


def tone(freq, n=4800, amp=0.5, seed=0):
    t = np.arange(n) / SR
    rng = np.random.default_rng(seed)
    x = amp * np.sin(2 * np.pi * freq * t) * np.hanning(n) + 1e-3 * rng.standard_normal(n)
    return np.round(x * 32767).astype(np.int16)


def write_raw(path, samples, order="little"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(samples.astype("<i2" if order == "little" else ">i2").tobytes())


def make_tree(root, classes, n=6, group="a1", big_every=0):
    for ci, cls in enumerate(classes):
        for k in range(n):
            order = "big" if big_every and k % big_every == 0 else "little"
            write_raw(
                root / "nospeech" / "drysrc" / group / cls / "48khz" / f"{k:03d}.raw",
                tone(300 + 100 * ci + 10 * k, seed=k),
                order,
            )
    return root


def test_class_lists_match_the_spec():
    assert PAPER_CLASSES == ["bank", "bells5", "bowl", "cherry1", "coin3", "cup1", "horn", "phone4", "ring", "whistle1"]
    assert AUTHORS_CLASSES == [
        "bells5",
        "bottle1",
        "buzzer",
        "cymbals",
        "horn",
        "kara",
        "metal15",
        "phone4",
        "ring",
        "whistle1",
    ]


def test_loads_all_classes_with_half_split(tmp_path):
    make_tree(tmp_path, ["cup1", "horn", "ring"], n=6)
    cs = load_rwcp(tmp_path, classes="all")
    assert cs.class_names == ["cup1", "horn", "ring"]
    assert len(cs.clips) == 18
    assert sorted(cs.train_idx + cs.test_idx) == list(range(18))
    assert cs.counts() == {"cup1": (3, 3), "horn": (3, 3), "ring": (3, 3)}
    assert all(c.kind == "rwcp_raw" and c.group == "a1" for c in cs.clips)
    assert cs.skipped == []


@pytest.mark.parametrize("level", ["", "nospeech", "nospeech/drysrc", "nospeech/drysrc/a1"])
def test_root_at_any_level_above_class(tmp_path, level):
    make_tree(tmp_path, ["cup1", "horn"], n=4)
    cs = load_rwcp(tmp_path / level if level else tmp_path, classes="all")
    assert cs.class_names == ["cup1", "horn"] and len(cs.clips) == 8


def test_eighty_per_class_first_sorted_or_seeded(tmp_path):
    make_tree(tmp_path, ["horn"], n=90)
    first = load_rwcp(tmp_path, classes=["horn"])
    names = sorted(c.path.rsplit("/", 1)[1] for c in first.clips)
    assert names == [f"{k:03d}.raw" for k in range(80)]
    assert len(first.train_idx) == 40 and len(first.test_idx) == 40
    r1 = load_rwcp(tmp_path, classes=["horn"], pick="random", seed=3)
    r2 = load_rwcp(tmp_path, classes=["horn"], pick="random", seed=3)
    r3 = load_rwcp(tmp_path, classes=["horn"], pick="random", seed=4)
    assert [c.path for c in r1.clips] == [c.path for c in r2.clips]
    assert r1.train_idx == r2.train_idx
    assert len(r1.clips) == 80 and [c.path for c in r1.clips] != [c.path for c in r3.clips]
    assert any(int(c.path[-7:-4]) >= 80 for c in r1.clips)


def test_both_byte_orders_decode_to_the_same_wave(tmp_path):
    x = tone(440, n=9600)
    write_raw(tmp_path / "le" / "horn" / "48khz" / "000.raw", x, "little")
    write_raw(tmp_path / "be" / "horn" / "48khz" / "000.raw", x, "big")
    le = AudioClip(str(tmp_path / "le/horn/48khz/000.raw"), "horn", kind="rwcp_raw").load()
    be = AudioClip(str(tmp_path / "be/horn/48khz/000.raw"), "horn", kind="rwcp_raw").load()
    assert le.shape == (3200,)  # 0.2 s at 16 kHz
    np.testing.assert_array_equal(le, be)
    # independent reference: the int16 samples, decimated 48k -> 16k, match the sine in shape
    ref = x.astype(np.float64)[::3]
    assert np.corrcoef(ref[100:-100], le[100:-100])[0, 1] > 0.99


def test_mixed_byte_orders_are_counted(tmp_path):
    make_tree(tmp_path, ["horn", "ring"], n=6, big_every=3)
    cs = load_rwcp(tmp_path, classes="all")
    assert cs.info["byte_orders"] == {"little": 8, "big": 4}
    assert "mixed byte orders" in cs.info["note"]


def test_odd_sized_and_empty_files_are_skipped_not_fatal(tmp_path):
    make_tree(tmp_path, ["horn"], n=4)
    d = tmp_path / "nospeech/drysrc/a1/horn/48khz"
    (d / "004.raw").write_bytes(b"\x00\x01\x02")
    (d / "005.raw").write_bytes(b"")
    (d / "notes.txt").write_text("ignored")
    cs = load_rwcp(tmp_path, classes=["horn"])
    assert len(cs.clips) == 4
    reasons = dict(cs.skipped)
    assert "odd size (3 bytes)" in reasons[str(d / "004.raw")]
    assert reasons[str(d / "005.raw")] == "empty file"


def test_missing_requested_classes_named_with_what_exists(tmp_path):
    make_tree(tmp_path, ["horn", "ring"], n=4)
    with pytest.raises(DatasetError) as e:
        load_rwcp(tmp_path, classes="paper")
    msg = str(e.value)
    assert str(tmp_path) in msg
    assert "bank" in msg and "whistle1" in msg and "found: horn, ring" in msg


def test_class_without_48khz_folder(tmp_path):
    make_tree(tmp_path, ["horn"], n=4)
    (tmp_path / "nospeech/drysrc/a1/bank/16khz").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no 48khz folder") as e:
        load_rwcp(tmp_path, classes=["horn", "bank"])
    assert "bank" in str(e.value)


def test_no_class_folders_at_all(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(DatasetError, match="no RWCP class folders") as e:
        load_rwcp(tmp_path)
    assert str(tmp_path) in str(e.value)
    with pytest.raises(DatasetError, match="does not exist"):
        load_rwcp(tmp_path / "nope")


def test_class_with_no_files(tmp_path):
    make_tree(tmp_path, ["horn"], n=4)
    (tmp_path / "nospeech/drysrc/a1/ring/48khz").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no .raw files"):
        load_rwcp(tmp_path, classes=["horn", "ring"])
    cs = load_rwcp(tmp_path, classes="all")  # not requested explicitly: left out and listed
    assert cs.class_names == ["horn"]
    assert any("ring" in r for _, r in cs.skipped)


def test_auto_uses_the_paper_set_when_present(tmp_path):
    make_tree(tmp_path, PAPER_CLASSES + ["extra1"], n=2)
    assert load_rwcp(tmp_path).class_names == PAPER_CLASSES
    assert load_rwcp(tmp_path, classes="all").class_names == sorted(PAPER_CLASSES + ["extra1"])


def test_bad_clip_content_fails_at_load_with_its_name(tmp_path):
    d = tmp_path / "horn" / "48khz"
    write_raw(d / "000.raw", np.zeros(4800, np.int16))
    write_raw(d / "001.raw", tone(500))
    cs = load_rwcp(tmp_path, classes="all")
    silent = next(c for c in cs.clips if c.path.endswith("000.raw"))
    with pytest.raises(AudioError, match="silent") as e:
        silent.load()
    assert "000.raw" in str(e.value)


def test_content_key_tracks_content_not_path(tmp_path):
    x = tone(440)
    write_raw(tmp_path / "a.raw", x)
    write_raw(tmp_path / "b.raw", x)
    a = AudioClip(str(tmp_path / "a.raw"), "c", kind="rwcp_raw")
    b = AudioClip(str(tmp_path / "b.raw"), "c", kind="rwcp_raw")
    assert a.content_key() == b.content_key()
    assert AudioClip(a.path, "c", 0.0, 0.05, kind="rwcp_raw").content_key() != a.content_key()
    write_raw(tmp_path / "b.raw", tone(441))
    assert AudioClip(str(tmp_path / "b.raw"), "c", kind="rwcp_raw").content_key() != a.content_key()


@pytest.mark.parametrize(
    "word, expected", [("paper", PAPER_CLASSES), ("authors", AUTHORS_CLASSES), ("AUTHORS", AUTHORS_CLASSES)]
)
def test_cli_classes_preset_words_select_the_preset_lists(tmp_path, word, expected):
    """``--classes paper|authors`` arrive as a one-element list (the CLI splits on commas)."""
    from stca_engine import cli
    from stca_engine.data.sources import load_clipset

    root = make_tree(tmp_path / "rwcp", sorted(set(PAPER_CLASSES) | set(AUTHORS_CLASSES)), n=2)
    args = cli.build_parser().parse_args(["train", "--data", f"rwcp:{root}", "--task", "classify", "--classes", word])
    cs = load_clipset(args.data, **cli._data_kwargs(args))
    assert cs.class_names == expected
    assert load_rwcp(root, classes=[word]).class_names == expected
