"""Data specs, clip sets and ready-to-train datasets (the entry the CLI and the app use)."""

from __future__ import annotations

import numpy as np
import pytest

from stca_engine.data.clips import ClipSet
from stca_engine.data.sources import DataSpec, load_clipset, parse_data_spec, prepare_datasets
from stca_engine.data.types import SpikeTrain
from stca_engine.errors import ConfigError, PathNotAllowedError, StcaError

SR = 48000


class ToyEncoder:
    """One spike per 3 ms frame whose peak exceeds 0.05, on afferent (frame index mod 4): every
    sounding frame spikes, so a clip's trimmed encoding is as long as its sounding part."""

    name = "toy"
    n_units = 4

    def __init__(self, dt_ms=3.0):
        self.dt_ms = dt_ms

    def settings(self):
        return {"encoder": "toy", "dt_ms": self.dt_ms}

    def encode(self, wave):
        hop = int(16 * self.dt_ms)
        n = wave.size // hop
        peak = np.abs(wave[: n * hop]).reshape(n, hop).max(axis=1)
        t = np.flatnonzero(peak > 0.05)
        return SpikeTrain(t, t % 4, 4, n, self.dt_ms), {"frames": int(n)}


def rwcp_fixture(root, classes=("bells5", "horn", "ring"), n=6, silent=None):
    """Clip g (over all classes) sounds for 0.1 + 0.012 g s (a unique length) inside 30 ms of silence."""
    g = 0
    for ci, cls in enumerate(classes):
        d = root / "nospeech" / "drysrc" / "a1" / cls / "48khz"
        d.mkdir(parents=True)
        for k in range(n):
            body = int((0.1 + 0.012 * g) * SR)
            t = np.arange(body) / SR
            x = np.zeros(body + int(0.06 * SR))
            x[int(0.03 * SR) : int(0.03 * SR) + body] = 0.7 * np.sign(np.sin(2 * np.pi * (200 + 50 * ci) * t)) * 0.9
            if silent == (cls, k):
                x[:] = 0
            (d / f"{k:03d}.raw").write_bytes(np.round(x * 32767).astype("<i2").tobytes())
            g += 1
    return root


def test_parse_data_spec():
    assert parse_data_spec("demo") == DataSpec("demo")
    assert parse_data_spec(" Digits ") == DataSpec("digits")
    assert parse_data_spec("rwcp:/data/RWCP") == DataSpec("rwcp", "/data/RWCP")
    assert parse_data_spec("folder:/a:b") == DataSpec("folder", "/a:b")
    assert str(parse_data_spec("medleydb:/m")) == "medleydb:/m"
    assert parse_data_spec("mnist:~/mnist").path.endswith("/mnist") and "~" not in parse_data_spec("mnist:~/m").path
    for bad, text in [
        ("", "empty"),
        ("rwcp", "needs a folder"),
        ("rwcp:", "needs a folder"),
        ("demo:/x", "takes no path"),
        ("youtube:abc", "unknown data source 'youtube'"),
        (None, "empty"),
    ]:
        with pytest.raises(ConfigError, match=text) as e:
            parse_data_spec(bad)
        assert "\n" not in str(e.value) and isinstance(e.value, StcaError)


def test_load_clipset_passes_options_and_refuses_unknown_ones(tmp_path):
    rwcp_fixture(tmp_path)
    cs = load_clipset(f"rwcp:{tmp_path}", classes=["horn", "ring"], seed=1)
    assert isinstance(cs, ClipSet) and cs.class_names == ["horn", "ring"]
    with pytest.raises(ConfigError, match="n_train_streamz") as e:
        load_clipset(f"rwcp:{tmp_path}", n_train_streamz=3)
    assert "classes" in str(e.value)


def test_restrict_to_allowed_roots(tmp_path, monkeypatch):
    rwcp_fixture(tmp_path / "data")
    monkeypatch.setenv("STCA_DATA_ROOTS", str(tmp_path / "elsewhere"))
    with pytest.raises(PathNotAllowedError):
        load_clipset(f"rwcp:{tmp_path / 'data'}", restrict=True)
    monkeypatch.setenv("STCA_DATA_ROOTS", str(tmp_path))
    assert load_clipset(f"rwcp:{tmp_path / 'data'}", restrict=True).class_names == ["bells5", "horn", "ring"]


def event_lengths(ds):
    return {e.offset_step - e.onset_step for s in ds.samples for e in s.events}


def test_detect_streams_come_from_their_own_side(tmp_path):
    root = rwcp_fixture(tmp_path / "rwcp")
    cache = tmp_path / "cache"
    train, test, info = prepare_datasets(
        f"rwcp:{root}",
        "detect",
        encoder=ToyEncoder(),
        n_train_streams=40,
        n_test_streams=15,
        events_per_stream=4,
        seed=3,
        cache=cache,
        workers=1,
    )
    assert (len(train), len(test)) == (40, 15)
    assert train.task == test.task == "detect" and train.n_inputs == 4 and train.dt_ms == 3.0
    assert train.class_names == ["bells5", "horn", "ring"]
    cs = load_clipset(f"rwcp:{root}", seed=3)
    enc = ToyEncoder()

    def lengths(idx):
        out = set()
        for i in idx:
            tr, _ = enc.encode(cs.clips[i].load())
            out.add(int(tr.times.max() - tr.times.min() + 1))
        return out

    tr_len, te_len = lengths(cs.train_idx), lengths(cs.test_idx)
    assert len(tr_len) == 9 and len(te_len) == 9 and not tr_len & te_len  # every clip identifiable
    assert event_lengths(train) <= tr_len and event_lengths(test) <= te_len
    for s in train.samples + test.samples:
        assert len(s.events) == 4 and s.target.sum() == 4
        assert np.array_equal(s.target, np.bincount([e.class_index for e in s.events], minlength=3))
    x, y = train.batch([0, 1])
    assert x.shape[1:] == (2, 4) and y.shape == (2, 3)
    assert info["encoder"] == "toy" and info["encoder_settings"] == {"encoder": "toy", "dt_ms": 3.0}
    assert info["per_class"] == {"bells5": (3, 3), "horn": (3, 3), "ring": (3, 3)}
    assert info["cache_misses"] == 18 and info["n_train_streams"] == 40
    again, _, info2 = prepare_datasets(
        f"rwcp:{root}",
        "detect",
        encoder=ToyEncoder(),
        n_train_streams=40,
        n_test_streams=15,
        events_per_stream=4,
        seed=3,
        cache=cache,
        workers=1,
    )
    assert info2["cache_hits"] == 18 and info2["cache_misses"] == 0
    assert [s.events for s in again.samples] == [s.events for s in train.samples]
    other, _, _ = prepare_datasets(
        f"rwcp:{root}",
        "detect",
        encoder=ToyEncoder(),
        n_train_streams=40,
        n_test_streams=15,
        events_per_stream=4,
        seed=4,
        cache=cache,
        workers=1,
    )
    assert [s.events for s in other.samples] != [s.events for s in train.samples]


def test_classify_clips_and_skipped_clips(tmp_path):
    root = rwcp_fixture(tmp_path / "rwcp", silent=("horn", 2))
    cs = load_clipset(f"rwcp:{root}")
    train, test, info = prepare_datasets(cs, "classify", encoder=ToyEncoder(), cache=False, workers=1)
    assert len(train) + len(test) == 17
    assert any("002.raw" in p and "silent" in r for p, r in info["skipped"])
    labels = cs.labels()
    by_name = {f"{cs.clips[i].class_name}/{cs.clips[i].name}": labels[i] for i in cs.train_idx}
    silent_in_train = "horn/002.raw" in by_name
    assert len(by_name) == len(cs.train_idx) == len(train) + silent_in_train
    for s in train.samples:
        assert s.events == [] and s.target == by_name[s.name]
    _, y = train.batch(list(range(len(train))))
    assert y.dtype.is_floating_point is False and y.ndim == 1
    with pytest.raises(ConfigError, match="need a data spec"):
        prepare_datasets(cs, "classify", encoder=ToyEncoder(), classes=["horn"])


def test_digits_rate_coded(tmp_path):
    from sklearn.datasets import load_digits

    ref = load_digits()
    assert len(load_clipset("digits").labels) == 1797
    train, test, info = prepare_datasets("digits", "classify", dt_ms=3.0, classes=["3", "8"])
    assert train.n_inputs == 64 and info["encoder"] == "rate" and train.class_names == ["3", "8"]
    assert len(train) + len(test) == int(np.sum((ref.target == 3) | (ref.target == 8)))
    assert {s.target for s in train.samples} == {0, 1}
    # the k-th kept image is the k-th 3-or-8 of the original set
    kept = np.flatnonzero((ref.target == 3) | (ref.target == 8))
    for s in train.samples[:20]:
        orig = kept[int(s.name.replace("image", ""))]
        assert s.target == (0 if ref.target[orig] == 3 else 1)
        counts = np.bincount(s.spikes.units, minlength=64)
        img = ref.images[orig].ravel() / 16.0
        np.testing.assert_array_equal(counts, np.floor(125 * img + 0.5).astype(int))  # round(125 p), halves up
        assert s.spikes.n_steps == 250 and s.spikes.dt_ms == 3.0
    with pytest.raises(ConfigError, match="'classify' only"):
        prepare_datasets("digits", "detect")


def test_bad_task_and_time_step_mismatch(tmp_path):
    root = rwcp_fixture(tmp_path / "rwcp")
    with pytest.raises(ConfigError, match="task"):
        prepare_datasets(f"rwcp:{root}", "segment", encoder=ToyEncoder())
    with pytest.raises(ConfigError, match="time step"):
        prepare_datasets(f"rwcp:{root}", "detect", encoder=ToyEncoder(dt_ms=1.0), dt_ms=3.0)


def test_default_spikegram_encoder_on_demo_clips(tmp_path):
    demo = load_clipset("demo")
    keep = [i for i, c in enumerate(demo.clips) if c.class_name in ("horn", "whistle")]
    tr = [i for i in demo.train_idx if i in keep][:6]
    te = [i for i in demo.test_idx if i in keep][:6]
    small = ClipSet(demo.clips, demo.class_names, tr, te, [], "demo-subset")
    train, test, info = prepare_datasets(
        small, "detect", n_train_streams=4, n_test_streams=2, dt_ms=3.0, cache=tmp_path / "cache", workers=1
    )
    assert info["encoder"] == "spikegram" and train.n_inputs == 128
    assert info["encoder_settings"]["encoder"] == "spikegram" and info["encoder_settings"]["dt_ms"] == 3.0
    assert all(s.spikes.n_spikes > 0 for s in train.samples)
    horn, whistle = demo.class_names.index("horn"), demo.class_names.index("whistle")
    assert all(s.target.sum() == s.target[horn] + s.target[whistle] == 5 for s in train.samples + test.samples)


def test_paper_gaps_through_prepare_datasets_and_the_cli_option(tmp_path):
    from stca_engine.cli import build_parser

    root = rwcp_fixture(tmp_path / "rwcp")
    kw = dict(encoder=ToyEncoder(), n_train_streams=6, n_test_streams=3, events_per_stream=3, seed=3, workers=1)
    train, _, info = prepare_datasets(f"rwcp:{root}", "detect", cache=False, gaps="paper", **kw)
    assert info["gaps"] == "paper" and info["gap_s"] == (0.15, 0.15)
    for s in train.samples:
        assert [b.onset_step - a.offset_step for a, b in zip(s.events, s.events[1:])] == [50, 50]
    with pytest.raises(ConfigError, match="gaps must be one of"):
        prepare_datasets(f"rwcp:{root}", "detect", cache=False, gaps="nope", **kw)
    args = build_parser().parse_args(["train", "--data", "demo", "--task", "detect", "--gaps", "paper"])
    assert args.gaps == "paper"
