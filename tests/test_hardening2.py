"""Issue #14 "Hardening", remaining items: chunk seams, bounded run memory, sessions that release
what they hold.

Each test goes through the entry point a user reaches (engine, ``stca`` CLI in-process, or an app
page / the app's training worker). docs/ROBUSTNESS.md lists the cases with their messages.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from stca_engine.config import NeuronConfig

SR = 16000
EVENTS_S = (12.3, 33.1, 57.7)  # noise bursts on top of the steady tone


def _steady_tone_with_events(seconds=70.0):
    """A −30 dB 440 Hz tone throughout (one sound region) and three louder noise bursts."""
    t = np.arange(int(seconds * SR)) / SR
    w = 10 ** (-30 / 20) * np.sin(2 * np.pi * 440.0 * t)
    rng = np.random.default_rng(0)
    for s in (e for e in EVENTS_S if e + 0.3 < seconds):
        a, n = int(s * SR), int(0.3 * SR)
        w[a : a + n] += rng.standard_normal(n) * 0.5 * np.hanning(n)
    return (w / np.abs(w).max()).astype(np.float32)


def _onset_detector(n_in):
    """One output neuron that fires when a few afferents spike together (a sound onset)."""
    from stca_engine.network import SNN

    net = SNN([n_in, 1], NeuronConfig(), dtype=torch.float64, seed=0)
    with torch.no_grad():
        net.weights[0].fill_(0.3)
    return net


# ------------------------------------------------------------------------------------------------
# A. chunked encoding does not change what is detected
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mel", "gammatone"])
def test_chunk_length_changes_no_spike_and_no_detection(monkeypatch, kind):
    """70 s steady tone + 3 bursts, encoded as the Detect page and ``stca detect`` do
    (``encode_recording``) with STCA_CHUNK_SECONDS 5, 30 and whole: identical spikes, identical
    events, and events only at the recording's start and end and at the bursts (before the fix every seam
    was an onset: spikes and detections at 5, 10, 15 … s)."""
    from stca_engine.detect import detect_events, encode_recording
    from stca_engine.encoders import make_encoder

    wave = _steady_tone_with_events()
    enc = make_encoder("spectral", kind=kind)
    net = _onset_detector(enc.n_units)
    cfg = NeuronConfig()
    trains, events = {}, {}
    for chunk in ("5", "30", "1000"):
        monkeypatch.setenv("STCA_CHUNK_SECONDS", chunk)
        calls = []
        trains[chunk] = encode_recording(wave, SR, enc, progress=lambda d, t, m, calls=calls: calls.append((d, t)))
        assert calls and calls[-1][0] == calls[-1][1]
        events[chunk] = detect_events(net, cfg, trains[chunk], ["onset"], chunk_steps=1667).events
    whole = trains["1000"]
    assert whole.n_spikes > 0
    for chunk in ("5", "30"):
        np.testing.assert_array_equal(trains[chunk].times, whole.times)
        np.testing.assert_array_equal(trains[chunk].units, whole.units)
        assert events[chunk] == events["1000"]
    starts = [ev["start_s"] for ev in events["1000"]]
    assert starts and starts[0] < 0.05
    for s in starts:  # the recording's own edges (the tone starts, the file cuts it off) and the bursts
        assert s < 0.05 or s > 69.95 or any(e - 0.05 <= s <= e + 0.35 for e in EVENTS_S), starts
    assert {e for e in EVENTS_S if any(e - 0.05 <= s <= e + 0.35 for s in starts)} == set(EVENTS_S)
    seams = np.arange(5, 70, 5) * 1000 / cfg.dt_ms
    secs = whole.times * cfg.dt_ms / 1000
    near_event = np.zeros(secs.shape, bool)
    for e in EVENTS_S:
        near_event |= (secs > e - 0.1) & (secs < e + 0.5)
    for seam in seams:  # no spike in the 50 ms after a seam unless a burst is there
        assert not np.any((whole.times[~near_event] >= seam) & (whole.times[~near_event] < seam + 17))


def test_spectral_pieces_carry_sustained_firing_across_seams():
    """With sustained firing (an afferent repeats every N steps while its band stays up) the carried
    state keeps the rhythm through the seams: the pieces' spikes equal one whole-wave encoding."""
    from stca_engine.spectral import SpectralConfig, encode_spectral, encode_spectral_pieces

    wave = _steady_tone_with_events(12.0)
    cfg = SpectralConfig(sustain_steps=7)
    whole = encode_spectral(wave, cfg)[0]
    for piece_s in (1.0, 2.5, 5.0):
        cut = encode_spectral_pieces(wave, cfg, int(piece_s * SR))
        assert cut.n_steps == whole.n_steps
        np.testing.assert_array_equal(cut.times, whole.times)
        np.testing.assert_array_equal(cut.units, whole.units)


def test_cli_detect_reports_the_same_events_whatever_the_chunk_length(tmp_path, monkeypatch, capsys):
    """``stca detect`` on the 70 s recording with STCA_CHUNK_SECONDS 5, 30 and 1000: the same lines."""
    from stca_engine import cli
    from stca_engine.checkpoint import save_model
    from stca_engine.encoders import make_encoder

    enc = make_encoder("spectral")
    model = save_model(
        tmp_path / "m",
        _onset_detector(enc.n_units),
        NeuronConfig(),
        class_names=["onset"],
        encoder_settings=enc.settings(),
        task="detect",
        objective="stca",
    )
    rec = tmp_path / "hour.wav"
    sf.write(str(rec), _steady_tone_with_events(), SR, subtype="FLOAT")
    monkeypatch.delenv("STCA_DATA_ROOTS", raising=False)
    out = {}
    for chunk in ("5", "30", "1000"):
        monkeypatch.setenv("STCA_CHUNK_SECONDS", chunk)
        capsys.readouterr()
        assert cli.main(["--quiet", "detect", str(model), str(rec), "--json"]) == 0
        out[chunk] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert out["5"] == out["30"] == out["1000"]
    starts = [ev["start_s"] for ev in out["1000"]]
    assert 1 <= len(starts) <= 1 + 2 * len(EVENTS_S), starts
    assert not [s for s in starts if 0.05 <= s <= 69.95 and not any(e - 0.05 <= s <= e + 0.35 for e in EVENTS_S)]


def test_spikegram_regions_do_not_depend_on_the_chunk_length(monkeypatch):
    """The spikegram encodes each region whole (its pursuit bounds memory with an exact carried
    residual), so STCA_CHUNK_SECONDS changes none of its spikes; before, the pieces were pursued on
    their own and each seam cut the tone (an onset) and rescaled the amplitude bins."""
    from stca_engine.detect import encode_recording
    from stca_engine.encoders import make_encoder

    t = np.arange(int(4.0 * SR)) / SR
    wave = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    wave[int(2.6 * SR) : int(2.8 * SR)] += 0.4
    enc = make_encoder("spikegram", spikes_per_second=300, chunk_seconds=1.5)
    out = {}
    for chunk in ("1", "1000"):
        monkeypatch.setenv("STCA_CHUNK_SECONDS", chunk)
        out[chunk] = encode_recording(wave, SR, enc)
    assert out["1000"].n_spikes > 0
    np.testing.assert_array_equal(out["1"].times, out["1000"].times)
    np.testing.assert_array_equal(out["1"].units, out["1000"].units)


# ------------------------------------------------------------------------------------------------
# B. a run's memory is estimated and refused above STCA_MAX_RUN_MB
# ------------------------------------------------------------------------------------------------
def test_run_estimate_counts_activations_weights_and_data_and_is_refused_above_the_cap(monkeypatch):
    from stca_engine import limits
    from stca_engine.errors import ConfigError
    from stca_engine.memory import check_run, estimate_run

    monkeypatch.delenv("STCA_MAX_RUN_MB", raising=False)
    assert limits.max_run_mb() == limits.DEFAULT_MAX_RUN_MB == 2048
    base = estimate_run([128, 64, 4], 1000, 8, threads=2)
    # activations grow with steps × batch, weights with the layer sizes, data as given
    assert estimate_run([128, 64, 4], 2000, 8, threads=2).parts["activations"] == 2 * base.parts["activations"]
    assert estimate_run([128, 64, 4], 1000, 16, threads=2).parts["activations"] == 2 * base.parts["activations"]
    assert estimate_run([128, 64, 4], 1000, 8, "float64", threads=2).parts["weights"] == 2 * base.parts["weights"]
    assert base.parts["activations"] == 1000 * 8 * (128 * 4 + (5 * 64 + 128) * 4 + 8 + (5 * 4 + 64) * 4 + 8)
    assert base.parts["weights"] == (128 * 64 + 64 * 4) * 4 * (1 + 1 + 2 + 1 + 2 + 2)  # adam, 2 threads
    assert estimate_run([128, 64, 4], 1000, 8, data_bytes=5 * 2**20).parts["data"] == 5 * 2**20
    check_run(base)  # 26 MB: fine
    big = estimate_run([128, 4096, 4096, 4096, 4096, 4], 1264, 1, threads=2)
    assert 1500 < big.total_mb < 2048
    monkeypatch.setenv("STCA_MAX_RUN_MB", "1000")
    with pytest.raises(ConfigError) as err:
        check_run(big, "training run")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(
        f"training run: needs an estimated {big.total_mb:.0f} MB of memory, over the limit of "
        "1000 MB (set by STCA_MAX_RUN_MB): ≈ "
    )
    assert msg.endswith(
        "for network 128-4096-4096-4096-4096-4, 1264 steps × batch 1, float32; use fewer or smaller hidden layers"
    )
    monkeypatch.setenv("STCA_MAX_RUN_MB", "20000")
    check_run(big)
    monkeypatch.setenv("STCA_MAX_RUN_MB", "lots")
    with pytest.raises(ConfigError, match=r"^STCA_MAX_RUN_MB: must be a number, got 'lots'$"):
        check_run(base)


def _run_cli(argv, tmp_path, monkeypatch, capsys):
    from stca_engine import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STCA_DATA_ROOTS", raising=False)
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_cli_train_refuses_a_run_over_the_memory_cap_in_one_line(tmp_path, monkeypatch, capsys):
    """``stca train`` with four hidden layers of 4096 and batch 64: exit 2, one line naming the
    estimate, the cap and what to reduce, before any network is built or folder written."""
    monkeypatch.delenv("STCA_MAX_RUN_MB", raising=False)
    out = tmp_path / "run"
    code, err = _run_cli(
        [
            "--quiet",
            "train",
            "--data",
            "digits",
            "--task",
            "classify",
            "--classes",
            "0,1",
            "--hidden",
            "4096",
            "4096",
            "4096",
            "4096",
            "--batch",
            "64",
            "--epochs",
            "1",
            "--out",
            str(out),
        ],
        tmp_path,
        monkeypatch,
        capsys,
    )
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("stca: error: stca train: needs an estimated ")
    assert "over the limit of 2048 MB (set by STCA_MAX_RUN_MB)" in lines[0]
    assert "for network 64-4096-4096-4096-4096-2, 250 steps × batch 64, float32" in lines[0]
    assert lines[0].endswith(
        "; use a smaller batch, shorter samples (fewer events per stream) or fewer or smaller hidden layers"
    )
    assert not out.exists()
    # the operator's cap applies to small runs too; a run under it trains and reports its estimate
    monkeypatch.setenv("STCA_MAX_RUN_MB", "0.05")
    code, err = _run_cli(
        [
            "--quiet",
            "train",
            "--data",
            "digits",
            "--task",
            "classify",
            "--classes",
            "0,1",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--out",
            str(out),
        ],
        tmp_path,
        monkeypatch,
        capsys,
    )
    assert code == 2 and "over the limit of 0.05 MB (set by STCA_MAX_RUN_MB)" in err and not out.exists()
    monkeypatch.setenv("STCA_MAX_RUN_MB", "100")
    code, err = _run_cli(
        [
            "train",
            "--data",
            "digits",
            "--task",
            "classify",
            "--classes",
            "0,1",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--out",
            str(out),
        ],
        tmp_path,
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert "memory: ≈ " in err and "(the limit is 100 MB, STCA_MAX_RUN_MB)" in err


def _train_page(query, monkeypatch, tmp_path):
    from conftest import REPO
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STCA_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(REPO / "app" / "pages" / "2_Train.py"), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def test_train_page_shows_the_estimate_and_refuses_start_above_the_cap(monkeypatch, tmp_path):
    """The run that took the server from 1.3 to 6-7 GB (four hidden layers of 4096, 5000 streams,
    batch 1): the page names the estimate and the cap before Start, and Start / Step are refused;
    the classroom preset shows its (small) estimate and starts."""
    monkeypatch.delenv("STCA_MAX_RUN_MB", raising=False)
    at = _train_page(
        {"preset": "classroom-fast", "hidden": "4096,4096,4096,4096", "n_train": "5000", "batch_size": "1"},
        monkeypatch,
        tmp_path,
    )
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith("training run: needs an estimated ")
    assert "over the limit of 2048 MB (set by STCA_MAX_RUN_MB)" in errors[0]
    assert "network 128-4096-4096-4096-4096-4" in errors[0] and "use fewer or smaller hidden layers" in errors[0]
    assert at.button(key="train.btn_start").disabled and at.button(key="train.btn_step").disabled
    assert "train.run" not in at.session_state
    at2 = _train_page({"preset": "classroom-fast"}, monkeypatch, tmp_path)
    assert not at2.error and not at2.button(key="train.btn_start").disabled
    shown = [c.value for c in at2.caption if "Estimated memory of this run" in c.value]
    assert shown and "network 128-64-4" in shown[0] and "the server's limit is 2048 MB" in shown[0]


def test_worker_refuses_a_run_whose_encoded_data_is_over_the_cap(monkeypatch):
    """After encoding, the exact estimate (longest sample, the datasets' spikes) is checked again: the
    worker ends in "error" with the one-line message, no network is built."""
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "app"))
    from dataclasses import replace

    import engine_runs as er
    import state
    import training_worker as tw

    from stca_engine.data.types import Sample, SpikeDataset, SpikeTrain

    def prepare(settings, progress):
        samples = [
            Sample(
                SpikeTrain(np.arange(4000) % 3000, np.arange(4000) % 32, 32, 3000, 3.0), np.array([1, 0]), [], f"s{i}"
            )
            for i in range(4)
        ]
        ds = SpikeDataset(samples, 32, ["a", "b"], "detect", 3.0)
        return ds, ds, {}

    monkeypatch.setenv("STCA_MAX_RUN_MB", "1")
    settings = replace(state.preset_settings("classroom-fast"), epochs=1)
    worker = tw.TrainingWorker(er.make_engine_setup(settings, prepare), n_epochs=1)
    worker.start()
    worker.join(60)
    snap = worker.snapshot()
    assert snap.status == tw.ERROR and not snap.labels
    assert snap.error.startswith("training run: needs an estimated ") and "over the limit of 1 MB" in snap.error
    assert "for network 32-64-2, 3000 steps × batch 8" in snap.error


# ------------------------------------------------------------------------------------------------
# C. sessions release what they hold
# ------------------------------------------------------------------------------------------------
def _app_modules():
    import sys

    from conftest import REPO

    if str(REPO / "app") not in sys.path:
        sys.path.insert(0, str(REPO / "app"))
    import state
    import training_worker as tw

    return state, tw


def _wait(pred, timeout=120.0, what="condition"):
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _synthetic(n, n_in=12, n_steps=200, seed=0):
    from stca_engine.data.types import Event, Sample, SpikeDataset, SpikeTrain

    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        c = int(rng.integers(0, 2))
        t = np.repeat(np.arange(40, 80, 2), n_in // 2)
        u = np.tile(np.arange(c * n_in // 2, (c + 1) * n_in // 2), 20)
        samples.append(
            Sample(
                SpikeTrain(t, u, n_in, n_steps, 3.0),
                np.bincount([c], minlength=2).astype(np.int64),
                [Event(c, 40, 80)],
                f"s{i}",
            )
        )
    return SpikeDataset(samples, n_in, ["a", "b"], "detect", 3.0)


def _engine_worker(n_train=64, epochs=20, **worker_kw):
    from dataclasses import replace

    state, tw = _app_modules()
    import engine_runs

    s = replace(
        state.TrainSettings(), hidden="8", init_std=0.3, lr=0.01, batch_size=1, epochs=epochs, seed=0, compare=False
    )
    train, test = _synthetic(n_train), _synthetic(4, seed=1)
    return tw.TrainingWorker(
        engine_runs.make_engine_setup(s, lambda settings, progress: (train, test, {})), n_epochs=epochs, **worker_kw
    )


def test_pause_with_the_real_trainer_takes_effect_within_one_batch_and_resumes_the_epoch():
    """A 64-batch epoch: Pause is honoured after the batch in flight (the Trainer keeps the epoch
    pending), Resume finishes that same epoch, and its report covers every sample once."""
    _, tw = _app_modules()
    w = _engine_worker()
    w.start()
    _wait(
        lambda: (
            w.runner("stca") is not None
            and w.runner("stca").trainer._pending is not None
            and w.runner("stca").trainer._pending["next"] >= 2
        ),
        what="a few batches of epoch 1",
    )
    trainer = w.runner("stca").trainer
    w.pause()
    _wait(lambda: w.snapshot().status == tw.PAUSED, what="paused")
    assert w.snapshot().epoch == 0 and trainer.interrupted
    cut_at = trainer._pending["next"]
    assert 2 <= cut_at < trainer.n_batches == 64
    w.start()
    _wait(lambda: w.snapshot().epoch >= 1, what="epoch 1 finished")
    rep = w.snapshot().reports["stca"][0]
    assert rep.epoch == 1 and rep.n_samples == 64
    w.stop("test over", wait_s=30)
    assert not w.alive


def test_a_closed_tab_stops_its_run_promptly_and_frees_it():
    """The page gives the worker "is my session still connected?"; once that has been false for
    ``tab_closed_s`` the thread stops (reason names the closed tab) and drops its trainer and
    network, long before the 900 s heartbeat. A reconnect within the grace time keeps the run."""
    import gc
    import weakref

    _, tw = _app_modules()
    connected = {"v": True}
    w = _engine_worker(epochs=500, owner_alive=lambda: connected["v"], tab_closed_s=0.5)
    assert w.heartbeat_timeout_s == tw.DEFAULT_HEARTBEAT_S == 900
    w.start()
    _wait(lambda: w.snapshot().epoch >= 1, what="first epoch")
    connected["v"] = False  # a blip: back within the grace time
    connected["v"] = True
    _wait(lambda: w.snapshot().epoch >= 2, what="second epoch")
    assert w.alive and w.snapshot().status == tw.RUNNING
    runner = w.runner("stca")
    refs = [weakref.ref(runner.trainer), weakref.ref(runner.trainer.net), weakref.ref(runner.trainer.train)]
    del runner
    connected["v"] = False  # the tab is closed
    w.join(60)
    snap = w.snapshot()
    assert not w.alive and snap.status == tw.STOPPED
    assert snap.stop_reason == "the browser tab was closed (its session was gone for 0.5 s)"
    assert w.runner("stca") is None and w.model("stca") is None
    gc.collect()
    assert [r() for r in refs] == [None, None, None], "the stopped run still holds its trainer / network / data"


def test_tab_closed_setting_has_one_documented_default(monkeypatch):
    from conftest import REPO

    _, tw = _app_modules()
    monkeypatch.delenv("STCA_TAB_CLOSED_S", raising=False)
    assert tw.tab_closed_s() == tw.DEFAULT_TAB_CLOSED_S == 30.0
    monkeypatch.setenv("STCA_TAB_CLOSED_S", "2.5")
    assert tw.tab_closed_s() == 2.5
    doc = (REPO / "docs" / "ROBUSTNESS.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `STCA_TAB_CLOSED_S` |"))
    assert row.split("|")[2].strip() == "30"
    assert tw.TrainingWorker(lambda p, s: {}, n_epochs=1).tab_closed_s == 30.0


def test_reset_on_the_train_page_frees_the_run(monkeypatch, tmp_path):
    """Reset mid-training: the thread ends within a batch and nothing keeps the run's trainer,
    network or datasets alive (weak references die)."""
    import gc
    import weakref

    from conftest import REPO
    from streamlit.testing.v1 import AppTest

    _, tw = _app_modules()
    import engine_runs

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(
        engine_runs, "prepare_engine_data", lambda settings, progress: (_synthetic(400), _synthetic(4, seed=1), {})
    )
    at = AppTest.from_file(str(REPO / "app" / "pages" / "2_Train.py"), default_timeout=120)
    for k, v in {"preset": "classroom-fast", "hidden": "8", "batch_size": "1", "epochs": "50"}.items():
        at.query_params[k] = v
    at.run()
    at.button(key="train.btn_start").click().run()
    worker = at.session_state["train.run"]["worker"]
    _wait(lambda: worker.runner("stca") is not None and worker.snapshot().status == tw.RUNNING, what="running")  # noqa: F821 (deleted below, used before)
    trainer = worker.runner("stca").trainer
    refs = [weakref.ref(trainer), weakref.ref(trainer.net), weakref.ref(trainer.train), weakref.ref(worker)]
    del trainer
    at.run()
    at.button(key="train.btn_reset").click().run()
    assert not at.exception
    worker.join(60)
    assert not worker.alive and worker.snapshot().status == tw.STOPPED
    del worker
    gc.collect()
    assert [r() for r in refs] == [None, None, None, None], "Reset left the run's trainer / network / data alive"
