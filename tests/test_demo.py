"""The built-in demo set: deterministic, in the RWCP layout, varied, small and clearly separable."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from stca_engine.audio import detect_pcm16_byteorder
from stca_engine.data import demo
from stca_engine.data.rwcp import load_rwcp


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return demo.generate_demo(tmp_path_factory.mktemp("demo"))


def test_generation_is_deterministic(demo_root):
    files = json.loads((demo_root / demo.MANIFEST).read_text())["files"]
    assert len(files) == len(demo.CLASSES) * demo.CLIPS_PER_CLASS
    # each clip depends only on its own indices (not on generation order) and is the same every time
    for ci in range(len(demo.CLASSES)):
        for k in (0, 17, 39):
            rel = f"nospeech/drysrc/demo/{demo.CLASSES[ci]}/48khz/{k:03d}.raw"
            again = demo.synth_clip(ci, k).tobytes()
            assert hashlib.sha256(again).hexdigest() == files[rel]["sha256"]
            assert (demo_root / rel).read_bytes() == again
    assert demo.synth_clip(0, 1).tobytes() != demo.synth_clip(0, 2).tobytes()


def test_rwcp_loader_reads_it(demo_root):
    cs = load_rwcp(demo_root, classes="all")
    assert cs.class_names == sorted(demo.CLASSES) and len(demo.CLASSES) == 10
    assert all(v == (20, 20) for v in cs.counts().values())
    assert cs.info["byte_orders"] == {"little": 400, "big": 0}  # the detector agrees with how we wrote them


def test_clips_vary_in_length_loudness_and_pitch(demo_root):
    lengths, peaks = [], []
    for f in sorted(demo_root.rglob("*.raw")):
        x = np.frombuffer(f.read_bytes(), "<i2")
        lengths.append(x.size / demo.SR)
        peaks.append(np.abs(x).max() / 32767)
    lengths, peaks = np.array(lengths), np.array(peaks)
    assert lengths.min() >= 0.2 - 1e-9 and lengths.max() <= 0.6 + 1e-9 and lengths.std() > 0.05
    assert peaks.min() > 0.2 and peaks.max() <= 0.9 + 1e-4 and peaks.std() > 0.05
    # pitch: the whistle's dominant frequency differs across clips by more than a semitone
    freqs = []
    for k in range(10):
        x = demo.synth_clip(demo.CLASSES.index("whistle"), k).astype(np.float64)
        spec = np.abs(np.fft.rfft(x, 1 << 16))
        freqs.append(np.argmax(spec) * demo.SR / (1 << 16))
    assert max(freqs) / min(freqs) > 2 ** (1 / 12)
    total = sum(f.stat().st_size for f in demo_root.rglob("*.raw"))
    assert total < 16 * 2**20


def test_classes_are_clearly_different(demo_root):
    """A plain nearest-centroid classifier on log band energies (three time thirds, so the chirp
    directions differ) separates the test clips almost perfectly: the set is learnable."""
    cs = load_rwcp(demo_root, classes="all", check_byteorder=False)
    edges = np.geomspace(50, 8000, 25)
    fr = np.fft.rfftfreq(8192, 1 / demo.SR)

    def feat(path):  # straight from the 48 kHz int16 file, independent of the audio loader
        w = np.frombuffer(open(path, "rb").read(), "<i2").astype(np.float64)
        f = []
        for part in np.array_split(w, 3):
            s = np.abs(np.fft.rfft(part, 8192)) ** 2
            f += [np.log(s[(fr >= a) & (fr < b)].sum() + 1e-9) for a, b in zip(edges[:-1], edges[1:])]
        f = np.array(f)
        return (f - f.mean()) / f.std()

    X = np.array([feat(c.path) for c in cs.clips])
    y = np.array(cs.labels())
    tr, te = np.array(cs.train_idx), np.array(cs.test_idx)
    cent = np.array([X[tr][y[tr] == k].mean(0) for k in range(10)])
    pred = np.argmax(X[te] @ cent.T / np.linalg.norm(cent, axis=1), axis=1)
    assert (pred == y[te]).mean() >= 0.95


def test_ensure_demo_generates_only_when_needed(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "CLIPS_PER_CLASS", 4)  # a small set keeps this test quick
    monkeypatch.setenv("STCA_DEMO_DIR", str(tmp_path / "d"))
    assert demo.demo_dir() == tmp_path / "d"
    assert not demo.demo_is_complete()
    root = demo.ensure_demo()
    assert demo.demo_is_complete(root)
    f = root / "nospeech/drysrc/demo/horn/48khz/003.raw"
    stamp = f.stat().st_mtime_ns
    demo.ensure_demo()
    assert f.stat().st_mtime_ns == stamp  # current: nothing rewritten
    f.unlink()
    assert not demo.demo_is_complete(root)
    demo.ensure_demo()
    assert f.is_file() and np.array_equal(np.frombuffer(f.read_bytes(), "<i2"), demo.synth_clip(2, 3))
    m = json.loads((root / demo.MANIFEST).read_text())
    m["generator_version"] = -1
    (root / demo.MANIFEST).write_text(json.dumps(m))
    assert not demo.demo_is_complete(root)


def test_byte_order_detection_sees_every_clip_as_little_endian(demo_root):
    for f in sorted(demo_root.rglob("*.raw"))[::23]:
        raw = f.read_bytes()
        assert detect_pcm16_byteorder(raw)[0] == "little"
        swapped = np.frombuffer(raw, "<i2").astype(">i2").tobytes()
        assert detect_pcm16_byteorder(swapped)[0] == "big"


def test_read_only_assets_fall_back_to_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "CLIPS_PER_CLASS", 2)
    monkeypatch.delenv("STCA_DEMO_DIR", raising=False)
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(demo, "REPO_DEMO_DIR", tmp_path / "readonly" / "demo")
    real = demo.generate_demo

    def generate(root, progress=None):
        if "readonly" in str(root):
            raise PermissionError(13, "Permission denied", str(root))
        return real(root, progress)

    monkeypatch.setattr(demo, "generate_demo", generate)
    root = demo.ensure_demo()
    assert root == tmp_path / "cache" / "demo" and demo.demo_is_complete(root)
    monkeypatch.setenv("STCA_DEMO_DIR", str(tmp_path / "readonly" / "x"))
    with pytest.raises(PermissionError):  # an explicitly chosen folder is not silently replaced
        demo.ensure_demo()
