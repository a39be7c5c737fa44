"""Encoded-clip cache: keys, hits and misses, bad clips, process pool, atomic concurrent writes."""

from __future__ import annotations

import multiprocessing as mp
import shutil

import numpy as np
import pytest

from stca_engine.data.cache import SpikeCache, default_cache_dir, encode_clips
from stca_engine.data.clips import AudioClip
from stca_engine.data.types import SpikeTrain

SR = 48000


class FrameLevelEncoder:
    """A tiny deterministic encoder for the tests: one spike per 3 ms frame on the afferent given by
    the frame's peak level (8 bins), and a count of how often ``encode`` ran."""

    name = "frame-level"

    def __init__(self, bins=8):
        self.bins = bins
        self.n_units = bins
        self.dt_ms = 3.0
        self.calls = 0

    def settings(self):
        return {"bins": self.bins, "dt_ms": self.dt_ms, "sr": 16000}

    def encode(self, wave):
        self.calls += 1
        hop = 48
        n = wave.size // hop
        peak = np.abs(wave[: n * hop]).reshape(n, hop).max(axis=1)
        t = np.flatnonzero(peak > 0.05)
        u = np.minimum((peak[t] * self.bins).astype(np.int64), self.bins - 1)
        return SpikeTrain(t, u, self.n_units, n, self.dt_ms), {"n_frames": int(n), "n_spikes": int(t.size)}


def write_clip(path, freq, n=4800, amp=0.6):
    t = np.arange(n) / SR
    x = amp * np.sin(2 * np.pi * freq * t) * np.linspace(1, 0.2, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.round(x * 32767).astype("<i2").tobytes())
    return AudioClip(str(path), "c", kind="rwcp_raw")


def reference(clip, enc):
    return FrameLevelEncoder(enc.bins).encode(clip.load())


def same(a, b):
    return (
        np.array_equal(a.times, b.times)
        and np.array_equal(a.units, b.units)
        and (a.n_units, a.n_steps, a.dt_ms) == (b.n_units, b.n_steps, b.dt_ms)
    )


def test_miss_then_hit_and_settings_change_misses(tmp_path):
    clips = [write_clip(tmp_path / f"d/{k}.raw", 200 + 50 * k) for k in range(5)]
    cache = SpikeCache(tmp_path / "cache")
    enc = FrameLevelEncoder()
    first = encode_clips(clips, enc, cache=cache, workers=1)
    assert (first.hits, first.misses, enc.calls) == (0, 5, 5)
    for clip, (tr, rep) in zip(clips, first):
        ref_tr, ref_rep = reference(clip, enc)
        assert same(tr, ref_tr) and rep == ref_rep
    enc2 = FrameLevelEncoder()
    second = encode_clips(clips, enc2, cache=cache, workers=1)
    assert (second.hits, second.misses, enc2.calls) == (5, 0, 0)
    for (a, ra), (b, rb) in zip(first, second):
        assert same(a, b) and ra == rb and b.times.dtype == np.int32
    other = FrameLevelEncoder(bins=4)
    third = encode_clips(clips, other, cache=cache, workers=1)
    assert (third.hits, third.misses) == (0, 5)
    assert len(list((tmp_path / "cache").glob("??/*.npz"))) == 10


def test_key_follows_content_and_span_not_path(tmp_path):
    a = write_clip(tmp_path / "a.raw", 300)
    shutil.copy(a.path, tmp_path / "copy.raw")
    b = AudioClip(str(tmp_path / "copy.raw"), "other", kind="rwcp_raw")
    cache, enc = SpikeCache(tmp_path / "cache"), FrameLevelEncoder()
    assert cache.key(a, enc) == cache.key(b, enc)
    assert cache.key(AudioClip(a.path, "c", 0.0, 0.05, "rwcp_raw"), enc) != cache.key(a, enc)
    encode_clips([a], enc, cache=cache, workers=1)
    assert encode_clips([b], enc, cache=cache, workers=1).hits == 1
    c = write_clip(tmp_path / "copy.raw", 301)  # same path, new content
    assert encode_clips([c], enc, cache=cache, workers=1).misses == 1


def test_bad_clips_are_skipped_and_listed(tmp_path):
    good = write_clip(tmp_path / "good.raw", 400)
    silent = tmp_path / "silent.raw"
    silent.write_bytes(np.zeros(4800, "<i2").tobytes())
    gone = AudioClip(str(tmp_path / "missing.raw"), "c", kind="rwcp_raw")
    out = encode_clips(
        [good, AudioClip(str(silent), "c", kind="rwcp_raw"), gone],
        FrameLevelEncoder(),
        cache=SpikeCache(tmp_path / "cache"),
        workers=1,
    )
    assert out[0] is not None and out[1] is None and out[2] is None
    reasons = dict(out.skipped)
    assert "silent" in reasons[str(silent)]
    assert "missing.raw" in str(out.skipped) and len(out.skipped) == 2


def test_corrupt_entry_is_a_miss_and_rewritten(tmp_path):
    clip = write_clip(tmp_path / "a.raw", 300)
    cache, enc = SpikeCache(tmp_path / "cache"), FrameLevelEncoder()
    encode_clips([clip], enc, cache=cache, workers=1)
    p = cache.path(cache.key(clip, enc))
    p.write_bytes(p.read_bytes()[:40])
    assert cache.get(cache.key(clip, enc)) is None
    again = encode_clips([clip], enc, cache=cache, workers=1)
    assert again.misses == 1 and cache.get(cache.key(clip, enc)) is not None


def test_process_pool_matches_serial_and_fills_the_cache(tmp_path):
    clips = [write_clip(tmp_path / f"d/{k}.raw", 150 + 37 * k, n=2400) for k in range(8)]
    clips.append(AudioClip(str(tmp_path / "d/none.raw"), "c", kind="rwcp_raw"))
    seen = []
    par = encode_clips(
        clips,
        FrameLevelEncoder(),
        cache=SpikeCache(tmp_path / "c1"),
        workers=2,
        progress=lambda d, t, m: seen.append((d, t)),
    )
    ser = encode_clips(clips, FrameLevelEncoder(), cache=False, workers=1)
    assert par.misses == 8 and par[-1] is None and ser[-1] is None  # the missing file fails hashing
    assert len(par.skipped) == 1 and "none.raw" in par.skipped[0][0]
    for (a, ra), (b, rb) in zip(par[:-1], ser[:-1]):
        assert same(a, b) and ra == rb
    assert seen[-1] == (9, 9) and all(d <= t for d, t in seen)
    assert len(list((tmp_path / "c1").glob("??/*.npz"))) == 8  # written by the workers
    assert encode_clips(clips, FrameLevelEncoder(), cache=SpikeCache(tmp_path / "c1"), workers=2).hits == 8


def _writer(directory, key, worker, rounds):
    cache = SpikeCache(directory)
    for r in range(rounds):
        n = 50 + 997 * ((worker + r) % 5)  # entries of very different sizes
        tr = SpikeTrain(np.arange(n) % 400, np.full(n, worker), 8, 400, 3.0)
        cache.put(key, tr, {"worker": worker, "round": r, "n": n})


def test_concurrent_writers_never_expose_a_partial_entry(tmp_path):
    directory = tmp_path / "cache"
    key = "ab" + "0" * 62
    _writer(directory, key, 0, 1)
    ctx = mp.get_context("fork")  # the writers need only numpy; fork starts them at once
    procs = [ctx.Process(target=_writer, args=(str(directory), key, w, 300)) for w in range(3)]
    for p in procs:
        p.start()
    cache = SpikeCache(directory)
    reads = 0
    versions = set()
    while any(p.is_alive() for p in procs) or reads < 50:
        got = cache.get(key)
        assert got is not None  # never missing or half-written while others replace it
        tr, rep = got
        assert tr.n_spikes == rep["n"] and np.all(tr.units == rep["worker"])
        versions.add((rep["worker"], rep["round"]))
        reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert len(versions) > 10  # the reader really raced the writers
    assert list(directory.rglob(".tmp-*")) == []
    assert len(list(directory.rglob("*.npz"))) == 1


def test_default_dir_and_env_override(monkeypatch, tmp_path):
    monkeypatch.delenv("STCA_CACHE_DIR", raising=False)
    assert str(default_cache_dir()).endswith(".cache/stca")
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    assert SpikeCache().directory == tmp_path / "x"


def test_clear_and_size(tmp_path):
    cache = SpikeCache(tmp_path / "cache")
    clip = write_clip(tmp_path / "a.raw", 300)
    encode_clips([clip], FrameLevelEncoder(), cache=cache, workers=1)
    assert cache.size_bytes() > 0
    assert cache.clear() == 1 and cache.size_bytes() == 0


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
