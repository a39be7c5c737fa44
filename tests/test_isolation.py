"""Isolation (SPEC §10): several browser sessions train at once without sharing state or models; a
session that goes away mid-training leaves nothing running; the encoded-clip cache is safe under
concurrent writers (threads and processes) and concurrent readers.

The sessions are real Train-page sessions (``streamlit.testing.v1.AppTest``, one per browser tab),
each with its own ``TrainingWorker`` thread running the real engine on the scikit-learn digits
(rate-coded, no audio decoding), cut to a few dozen samples so the test stays short.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "app"
TRAIN_PAGE = str(APP / "pages" / "2_Train.py")
if str(APP) not in sys.path:
    sys.path.insert(0, str(APP))

import engine_runs as er  # noqa: E402  (the very module object the page imports)
import training_worker as tw  # noqa: E402  (the very module object the page imports)

QUERY = dict(
    data="digits",
    task="classify",
    classes="0,1,2",
    hidden="8",
    batch_size="8",
    optimizer="adam",
    lr="0.01",
    compare="0",
)
FINISHED = (tw.DONE, tw.STOPPED, tw.ERROR)


def _subset(ds, n):
    from stca_engine.data.types import SpikeDataset

    return SpikeDataset(ds.samples[:n], ds.n_inputs, list(ds.class_names), ds.task, ds.dt_ms)


@pytest.fixture
def small_data(monkeypatch, tmp_path):
    """The real data path (digits through ``prepare_engine_data``), cut to 24 train / 8 test samples;
    ``gate`` (a Barrier, when set) makes every session wait for the others inside its setup, so the
    sessions provably overlap."""
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    real = er.prepare_engine_data
    hooks = {"gate": None, "threads": []}

    def small(settings, progress):
        train, test, info = real(settings, progress)
        hooks["threads"].append(threading.get_ident())
        if hooks["gate"] is not None:
            hooks["gate"].wait(timeout=120)
        return _subset(train, 24), _subset(test, 8), info

    monkeypatch.setattr(er, "prepare_engine_data", small)
    return hooks


def _session(**params) -> AppTest:
    at = AppTest.from_file(TRAIN_PAGE, default_timeout=120)
    for k, v in {**QUERY, **params}.items():
        at.query_params[k] = str(v)
    at.run()
    assert not at.exception, at.exception
    return at


def _worker(at: AppTest):
    return at.session_state["train.run"]["worker"]


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _poll_until(sessions, done, timeout=240.0):
    """Rerun every session (as each open tab's polling does) until ``done(at)`` holds for all."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        pending = [at for at in sessions if not done(at)]
        if not pending:
            return
        for at in pending:
            at.run()
            assert not at.exception, at.exception
        time.sleep(0.3)
    raise AssertionError(
        f"sessions did not finish within {timeout} s: {[_worker(at).snapshot().status for at in sessions]}"
    )


def _weights(model) -> list[torch.Tensor]:
    return [w.detach().cpu().clone() for w in model["net"].weights]


def test_sessions_train_at_once_without_sharing_state(small_data):
    small_data["gate"] = threading.Barrier(3)
    seeds = [1, 1, 2]  # two sessions with the same seed must end identical; the third must differ
    sessions = [_session(seed=s, epochs=2) for s in seeds]
    for at in sessions:
        at.button(key="train.btn_start").click().run()
        assert not at.exception
    workers = [_worker(at) for at in sessions]
    assert len({id(w) for w in workers}) == 3, "each session must own its worker"
    _poll_until(sessions, lambda at: _worker(at).snapshot().status in FINISHED)

    assert len(set(small_data["threads"])) == 3, "each session trains on its own thread"
    for at, s in zip(sessions, seeds):
        snap = _worker(at).snapshot()
        assert snap.status == tw.DONE and snap.epoch == 2, (snap.status, snap.error)
        assert _errors(at) == []
        assert at.session_state["train.settings"].seed == s
    _poll_until(
        sessions,
        lambda at: (
            (at.session_state["trained_model"] if "trained_model" in at.session_state else {}).get("epochs_trained")
            == 2
        ),
    )
    models = [at.session_state["trained_model"] for at in sessions]
    nets = [m["net"] for m in models]
    assert len({id(n) for n in nets}) == 3, "sessions must not share a model object"
    ptrs = [{w.data_ptr() for w in n.weights} for n in nets]
    assert not (ptrs[0] & ptrs[1]) and not (ptrs[0] & ptrs[2]) and not (ptrs[1] & ptrs[2]), "shared weight memory"
    w = [_weights(m) for m in models]
    for a, b in zip(w[0], w[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # same seed, concurrent: same result
    assert any(not torch.allclose(a, c) for a, c in zip(w[0], w[2])), "different seeds gave the same model"
    # the trained weights really moved away from their (seeded) start
    from stca_engine.network import SNN

    start = SNN(
        nets[0].sizes,
        models[0]["neuron_cfg"],
        seed=1,
        init_std=float(sessions[0].session_state["train.settings"].init_std),
    )
    assert any(not torch.allclose(a, b.detach()) for a, b in zip(w[0], start.weights))
    # resetting one session leaves the others' models untouched
    sessions[2].button(key="train.btn_reset").click().run()
    assert "train.run" not in sessions[2].session_state
    for a, b in zip(_weights(sessions[0].session_state["trained_model"]), w[0]):
        assert torch.equal(a, b)


def _train_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stca-train") and t.is_alive()]


def test_session_closing_mid_training_leaves_nothing_running(small_data, monkeypatch):
    """A tab that closes stops polling: its worker stops by itself after the heartbeat timeout."""
    monkeypatch.setenv("STCA_HEARTBEAT_S", "1.5")
    before = set(_train_threads())
    at = _session(seed=3, epochs=500)
    at.button(key="train.btn_start").click().run()
    worker = _worker(at)
    _poll_until([at], lambda a: _worker(a).snapshot().epoch >= 1)
    assert worker.alive and worker.snapshot().status in (tw.RUNNING, tw.PAUSED, tw.PREPARING)
    del at  # the browser tab is gone: nobody polls any more
    t0 = time.monotonic()
    worker.join(timeout=60)
    assert not worker.alive, "the training thread kept running after its session went away"
    snap = worker.snapshot()
    assert snap.status == tw.STOPPED and "stopped polling" in (snap.stop_reason or "")
    assert snap.epoch < 500
    assert time.monotonic() - t0 < 60
    assert set(_train_threads()) <= before, "a training thread is still alive"


def test_reset_mid_training_stops_the_thread(small_data):
    at = _session(seed=4, epochs=500)
    at.button(key="train.btn_start").click().run()
    worker = _worker(at)
    _poll_until([at], lambda a: _worker(a).snapshot().epoch >= 1)
    at.button(key="train.btn_reset").click().run()
    worker.join(timeout=60)
    assert not worker.alive
    assert worker.snapshot().status == tw.STOPPED
    assert not at.exception and _errors(at) == []


# ---- the encoded-clip cache under concurrent writers ----------------------------------------------


def _train_for(key_index: int, n_units=16, n_steps=200):
    from stca_engine.data.types import SpikeTrain

    rng = np.random.default_rng(key_index)
    n = 3000 + 37 * key_index  # big enough that a write is not one syscall
    return SpikeTrain(rng.integers(0, n_steps, n), rng.integers(0, n_units, n), n_units, n_steps, 3.0)


def _writer(directory: str, keys: list[str], rounds: int, start_evt) -> int:
    from stca_engine.data.cache import SpikeCache

    cache = SpikeCache(directory)
    start_evt.wait(30)
    n = 0
    for _ in range(rounds):
        for i, k in enumerate(keys):
            cache.put(k, _train_for(i), {"writer": os.getpid(), "i": i})
            n += 1
    return n


def _same(a, b) -> bool:
    return (
        a.n_units == b.n_units
        and a.n_steps == b.n_steps
        and np.array_equal(a.times, b.times)
        and np.array_equal(a.units, b.units)
    )


def test_cache_concurrent_writers_and_readers_never_see_partial_entries(tmp_path):
    from stca_engine.data.cache import SpikeCache

    directory = str(tmp_path / "cache")
    keys = [f"{i:02x}" + "ab" * 31 for i in range(6)]  # same keys for every writer: maximal contention
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(directory, keys, 4, start)) for _ in range(2)]
    for p in procs:
        p.start()
    # threads of this process write the same keys at the same time
    tstart = threading.Event()
    threads = [threading.Thread(target=_writer, args=(directory, keys, 4, tstart)) for _ in range(2)]
    for t in threads:
        t.start()
    start.set()
    tstart.set()
    reader = SpikeCache(directory)
    seen, bad = 0, []
    while any(p.is_alive() for p in procs) or any(t.is_alive() for t in threads):
        for i, k in enumerate(keys):
            got = reader.get(k)
            if got is not None:
                seen += 1
                if not _same(got[0], _train_for(i)) or got[1]["i"] != i:
                    bad.append(k)
        time.sleep(0.002)  # leave the 2 CPUs to the writers
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for t in threads:
        t.join(60)
    assert bad == [], "a reader saw a partial or mixed entry"
    for i, k in enumerate(keys):
        got = reader.get(k)
        assert got is not None and _same(got[0], _train_for(i))
    leftovers = [
        p.name
        for p in Path(directory).rglob("*")
        if p.is_file() and not p.name.endswith(".npz") or p.name.startswith(".tmp")
    ]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    assert seen > 0


def test_cache_corrupt_entry_is_a_miss_and_gets_rewritten(tmp_path):
    from stca_engine.data.cache import SpikeCache

    cache = SpikeCache(tmp_path / "cache")
    key = "cd" * 32
    path = cache.put(key, _train_for(1), {"i": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # a crashed writer from an older version
    assert cache.get(key) is None
    cache.put(key, _train_for(1), {"i": 1})
    got = cache.get(key)
    assert got is not None and _same(got[0], _train_for(1))


def test_concurrent_encode_clips_share_one_cache_consistently(tmp_path):
    """Two sessions encoding the same clips into one cache at once get identical results, and a third
    pass reads everything from the cache."""
    import soundfile as sf

    from stca_engine.data.cache import encode_clips
    from stca_engine.data.clips import AudioClip
    from stca_engine.encoders import make_encoder

    clips = []
    for i in range(8):
        t = np.arange(int(0.4 * 16000)) / 16000
        x = 0.5 * np.sin(2 * np.pi * (300 + 90 * i) * t) * np.exp(-3 * t)
        p = tmp_path / "wav" / f"c{i}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(str(p), x, 16000)
        clips.append(AudioClip(str(p), f"k{i % 2}"))
    enc = make_encoder("spectral")
    results, errors = {}, []

    def session(name):
        try:
            results[name] = encode_clips(clips, enc, cache=tmp_path / "cache", workers=1)
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    ts = [threading.Thread(target=session, args=(n,)) for n in ("a", "b", "c")]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert errors == []
    ref = encode_clips(clips, enc, cache=False, workers=1)
    for name, res in results.items():
        assert not res.skipped
        for (tr, _), (tr_ref, _) in zip(res, ref):
            assert _same(tr, tr_ref), name
    again = encode_clips(clips, enc, cache=tmp_path / "cache", workers=1)
    assert again.hits == len(clips) and again.misses == 0


class _Stop(Exception):
    pass


def test_stopping_an_encode_mid_way_cancels_the_pending_work(tmp_path):
    """A session that goes away while its dataset is being encoded by a process pool: the stop (raised
    from the progress callback, as the training worker does) must cancel the queued chunks instead of
    waiting for the whole dataset, and leave no worker process behind."""
    import soundfile as sf

    from stca_engine.data.cache import SpikeCache, encode_clips
    from stca_engine.data.clips import AudioClip
    from stca_engine.encoders import make_encoder

    clips = []
    t = np.arange(int(0.2 * 16000)) / 16000
    for i in range(640):
        p = tmp_path / "wav" / f"c{i:03d}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(str(p), 0.5 * np.sin(2 * np.pi * (200 + 7 * i) * t) * np.exp(-2 * t), 16000)
        clips.append(AudioClip(str(p), "a"))
    cache = SpikeCache(tmp_path / "cache")
    calls = []

    def progress(done, total, msg):
        calls.append(done)
        if len(calls) == 2:  # the first chunk came back: the page has gone away
            raise _Stop()

    with pytest.raises(_Stop):
        encode_clips(clips, make_encoder("spikegram"), cache=cache, progress=progress, workers=2)
    deadline = time.monotonic() + 30
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mp.active_children() == [], "encoding processes outlived the stop"
    written = len(list(Path(cache.directory).glob("??/*.npz")))
    # 640 clips in 20 chunks of 32 on 2 processes: the chunks done before the stop, the 2 running, the
    # pool's look-ahead queue (workers + 1) and a chunk or two racing the cancel may finish (7 seen on
    # a quiet machine); without cancelling, all 20 would
    assert written <= 10 * 32, f"{written} of 640 clips were still encoded after the stop"
