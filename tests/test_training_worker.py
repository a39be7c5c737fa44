"""The background training worker, without Streamlit: commands, snapshots, stop flag, heartbeat.

Fake runners make the threading logic deterministic (gates instead of sleeps where order matters);
``test_engine_worker_*`` drive the real engine glue.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

import engine_runs as er  # noqa: E402
import training_worker as tw  # noqa: E402

from stca_engine.errors import StcaError, TrainingError  # noqa: E402


def wait_until(pred, timeout=10.0, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class FakeRunner:
    """``n_batches`` per epoch; each batch optionally waits for ``gate`` and checks the stop flag."""

    def __init__(self, n_batches=3, batch_s=0.0, gate: threading.Event | None = None, fail_at_epoch=None, error=None):
        self.n_batches, self.batch_s, self.gate = n_batches, batch_s, gate
        self.epochs_started = 0
        self.batches_run = 0
        self.weights = 0
        self.fail_at_epoch, self.error = fail_at_epoch, error
        self.left = None  # batches left in the epoch in progress (None: between epochs)

    def run_epoch(self, should_stop):
        """Like the Trainer: stopped between batches it returns None and the next call continues
        the same epoch."""
        if self.left is None:
            self.epochs_started += 1
            if self.fail_at_epoch == self.epochs_started:
                raise self.error
            self.left = self.n_batches
        while self.left:
            if should_stop():
                return None
            if self.gate is not None:
                assert self.gate.wait(10)
            if self.batch_s:
                time.sleep(self.batch_s)
            self.batches_run += 1
            self.weights += 1
            self.left -= 1
        self.left = None
        return {"epoch": self.epochs_started, "weights": self.weights}

    def snapshot(self):
        return {"weights": self.weights}


def make_worker(runners, n_epochs=3, timeout=30.0, progress_steps=0, setup_error=None):
    def setup(progress, should_stop):
        for i in range(progress_steps):
            progress(i + 1, progress_steps, f"encoding {i + 1}")
        if setup_error is not None:
            raise setup_error
        return runners

    return tw.TrainingWorker(setup, n_epochs=n_epochs, heartbeat_timeout_s=timeout)


def test_start_trains_all_epochs_of_every_run_then_done():
    a, b = FakeRunner(), FakeRunner(n_batches=2)
    w = make_worker({"stca": a, "tdp1": b}, n_epochs=4, progress_steps=3)
    assert w.snapshot().status == tw.IDLE and not w.alive
    w.start()
    w.join(10)
    snap = w.snapshot()
    assert snap.status == tw.DONE and snap.finished and not snap.active
    assert snap.epoch == 4 and snap.n_epochs == 4
    assert snap.labels == ("stca", "tdp1")
    assert [r["epoch"] for r in snap.reports["stca"]] == [1, 2, 3, 4]
    assert [r["weights"] for r in snap.reports["tdp1"]] == [2, 4, 6, 8]
    assert w.model("stca") == {"weights": 12} and w.model("tdp1") == {"weights": 8}
    assert snap.progress == (3, 3, "encoding 3")
    assert snap.epoch_seconds is not None and snap.epoch_seconds >= 0


def test_step_trains_exactly_one_epoch_then_pauses():
    r = FakeRunner()
    w = make_worker({"run": r}, n_epochs=5)
    w.step()
    wait_until(lambda: w.snapshot().status == tw.PAUSED and w.snapshot().epoch == 1, what="first step")
    time.sleep(0.1)  # nothing more happens while paused
    assert w.snapshot().epoch == 1 and r.epochs_started == 1
    w.step()
    wait_until(lambda: w.snapshot().epoch == 2 and w.snapshot().status == tw.PAUSED, what="second step")
    assert r.epochs_started == 2
    w.stop(wait_s=5)
    assert w.snapshot().status == tw.STOPPED and not w.alive


def test_pause_takes_effect_after_the_batch_in_flight_and_start_resumes_the_same_epoch():
    """Pause is seen between minibatches (issue #14: not at the end of a long epoch); the partial
    epoch is never reported, and Resume continues it instead of starting a new one."""
    r = FakeRunner(n_batches=100_000, batch_s=0.001)
    w = make_worker({"run": r}, n_epochs=10)
    w.start()
    wait_until(lambda: r.batches_run >= 3, what="a few batches")
    w.pause()  # requested mid-epoch
    wait_until(lambda: w.snapshot().status == tw.PAUSED, what="paused")
    done = r.batches_run
    snap = w.snapshot()
    assert snap.epoch == 0 and snap.reports["run"] == () and done < 100_000  # cut, not completed
    time.sleep(0.1)
    assert r.batches_run == done and w.alive  # nothing runs while paused
    r.n_batches = r.left = 5  # (make the rest of the epoch short)
    w.start()
    wait_until(lambda: w.snapshot().epoch >= 1, what="resumed")
    assert r.epochs_started >= 1 and w.snapshot().reports["run"][0] == {"epoch": 1, "weights": done + 5}
    w.stop(wait_s=5)
    assert not w.alive


def test_stop_mid_epoch_is_seen_between_batches_and_never_reports_a_partial_epoch():
    gate = threading.Event()
    r = FakeRunner(n_batches=1000, gate=gate)
    w = make_worker({"run": r}, n_epochs=3)
    w.start()
    wait_until(lambda: w.snapshot().status == tw.RUNNING, what="running")
    w.stop("reset")
    gate.set()
    w.join(5)
    snap = w.snapshot()
    assert not w.alive
    assert snap.status == tw.STOPPED and snap.stop_reason == "reset"
    assert snap.epoch == 0 and snap.reports["run"] == ()
    assert r.batches_run <= 1  # stopped after at most the batch in flight
    w.start()  # commands after the end are ignored
    assert w.snapshot().status == tw.STOPPED and not w.alive


def test_worker_stops_by_itself_when_the_page_stops_polling():
    r = FakeRunner(n_batches=10_000, batch_s=0.001)
    w = make_worker({"run": r}, n_epochs=1000, timeout=0.3)
    w.start()
    w.join(5)
    snap = w.snapshot()
    assert not w.alive and snap.status == tw.STOPPED
    assert "stopped polling" in snap.stop_reason


def test_paused_worker_also_stops_when_the_page_goes_away():
    w = make_worker({"run": FakeRunner()}, n_epochs=50, timeout=0.3)
    w.step()
    wait_until(lambda: w.snapshot().status == tw.PAUSED, what="paused")
    w.join(5)
    assert not w.alive and w.snapshot().status == tw.STOPPED


def test_heartbeats_keep_a_slow_run_alive_past_the_timeout():
    r = FakeRunner(n_batches=5, batch_s=0.02)
    w = make_worker({"run": r}, n_epochs=6, timeout=0.25)  # ≈ 0.6 s of training > timeout
    w.start()
    t0 = time.monotonic()
    while w.alive and time.monotonic() - t0 < 10:
        w.heartbeat()
        time.sleep(0.02)
    assert w.snapshot().status == tw.DONE and w.snapshot().epoch == 6


def test_unwatched_run_pauses_itself_then_resumes_and_finally_stops():
    r = FakeRunner(n_batches=2, batch_s=0.01)
    w = tw.TrainingWorker(lambda p, s: {"run": r}, n_epochs=1000, heartbeat_timeout_s=1.5, idle_pause_s=0.2)
    w.start()
    wait_until(lambda: w.snapshot().status == tw.PAUSED, what="idle pause")
    snap = w.snapshot()
    assert snap.epoch >= 1 and "no page watched" in snap.pause_reason and w.alive
    w.start()  # the user came back and pressed Resume
    assert w.snapshot().pause_reason is None
    e0 = w.snapshot().epoch
    wait_until(lambda: w.snapshot().epoch > e0, what="resumed")
    w.join(10)  # nobody polls: pauses again, then stops for good
    assert not w.alive and w.snapshot().status == tw.STOPPED


def test_env_timeouts(monkeypatch):
    monkeypatch.setenv("STCA_HEARTBEAT_S", "42")
    monkeypatch.delenv("STCA_IDLE_PAUSE_S", raising=False)
    assert tw.heartbeat_timeout_s() == 42.0 and tw.idle_pause_s() == 120.0
    monkeypatch.setenv("STCA_IDLE_PAUSE_S", "soon")
    with pytest.raises(StcaError, match="STCA_IDLE_PAUSE_S: must be a number"):
        tw.idle_pause_s()
    monkeypatch.setenv("STCA_HEARTBEAT_S", "-1")
    with pytest.raises(StcaError, match="must be > 0"):
        tw.heartbeat_timeout_s()


def test_stca_error_in_setup_is_reported_not_raised():
    w = make_worker({}, setup_error=StcaError("no clips found", "/data/rwcp"))
    w.start()
    w.join(5)
    snap = w.snapshot()
    assert snap.status == tw.ERROR and snap.error == "/data/rwcp: no clips found"


def test_training_error_mid_run_keeps_the_finished_epochs_and_last_model():
    r = FakeRunner(
        fail_at_epoch=3, error=TrainingError("loss became NaN at epoch 3; kept the last good weights", "training")
    )
    w = make_worker({"run": r}, n_epochs=10)
    w.start()
    w.join(5)
    snap = w.snapshot()
    assert snap.status == tw.ERROR and "NaN" in snap.error
    assert snap.epoch == 2 and len(snap.reports["run"]) == 2
    assert w.model("run") == {"weights": 6}


def test_a_bug_in_a_runner_becomes_an_error_message():
    r = FakeRunner(fail_at_epoch=1, error=ZeroDivisionError("division by zero"))
    w = make_worker({"run": r}, n_epochs=2)
    w.start()
    w.join(5)
    snap = w.snapshot()
    assert snap.status == tw.ERROR
    assert "ZeroDivisionError" in snap.error and "division by zero" in snap.error


def test_stop_during_dataset_preparation():
    started, release = threading.Event(), threading.Event()

    def setup(progress, should_stop):
        progress(1, 100, "encoding")
        started.set()
        assert release.wait(5)
        progress(2, 100, "encoding")  # raises once a stop was requested
        raise AssertionError("progress must raise after stop")

    w = tw.TrainingWorker(setup, n_epochs=3)
    w.start()
    assert started.wait(5)
    assert w.snapshot().status == tw.PREPARING and w.snapshot().progress[:2] == (1, 100)
    w.stop()
    release.set()
    w.join(5)
    assert w.snapshot().status == tw.STOPPED


def test_two_workers_do_not_share_state():
    gate = threading.Event()
    w1 = make_worker({"run": FakeRunner(gate=gate)}, n_epochs=2)
    w2 = make_worker({"run": FakeRunner()}, n_epochs=2)
    w1.start()
    w2.start()
    w2.join(5)
    assert w2.snapshot().status == tw.DONE
    assert w1.snapshot().epoch == 0 and w1.alive
    w1.stop()
    gate.set()
    w1.join(5)
    assert w1.snapshot().status == tw.STOPPED and w2.snapshot().status == tw.DONE


def test_snapshot_version_changes_only_when_something_happens():
    w = make_worker({"run": FakeRunner()}, n_epochs=1)
    v0 = w.snapshot().version
    assert w.snapshot().version == v0
    w.start()
    w.join(5)
    v1 = w.snapshot().version
    assert v1 > v0 and w.snapshot().version == v1


def test_snapshot_is_isolated_from_later_epochs():
    w = make_worker({"run": FakeRunner()}, n_epochs=3)
    w.step()
    wait_until(lambda: w.snapshot().status == tw.PAUSED, what="paused")
    snap = w.snapshot()
    w.start()
    w.join(5)
    assert len(snap.reports["run"]) == 1 and len(w.snapshot().reports["run"]) == 3


def test_invalid_epoch_count():
    with pytest.raises(ValueError):
        tw.TrainingWorker(lambda p, s: {}, n_epochs=0)


# ---- the engine glue: real Trainer, tiny synthetic streams --------------------------------------------


def synthetic(n=16, seed=0, n_classes=3, n_in=18, dt=3.0):
    """Class c = a 30-step burst on afferents [c·k, (c+1)·k); streams of two events 60 steps apart."""
    import numpy as np

    from stca_engine.data.types import Event, Sample, SpikeDataset, SpikeTrain

    rng = np.random.default_rng(seed)
    k = n_in // n_classes
    samples = []
    for i in range(n):
        classes = rng.integers(0, n_classes, size=2)
        ts, us, events, pos = [], [], [], 20
        for c in classes:
            ts.append(np.repeat(np.arange(pos, pos + 30, 2), k))
            us.append(np.tile(np.arange(c * k, (c + 1) * k), 15))
            events.append(Event(int(c), pos, pos + 30))
            pos += 90
        target = np.bincount(classes, minlength=n_classes).astype(np.int64)
        samples.append(
            Sample(SpikeTrain(np.concatenate(ts), np.concatenate(us), n_in, pos + 20, dt), target, events, f"s{i}")
        )
    return SpikeDataset(samples, n_in, [f"c{j}" for j in range(n_classes)], "detect", dt)


def engine_worker(compare=False, epochs=3, seed=0):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
    from dataclasses import replace

    import state

    s = replace(
        state.TrainSettings(),
        hidden="8",
        init_std=0.3,
        lr=0.01,
        batch_size=4,
        epochs=epochs,
        seed=seed,
        compare=compare,
        compare_objective="tdp1",
    )
    train, test = synthetic(seed=1), synthetic(n=6, seed=2)
    prep = lambda settings, progress: (train, test, {"encoder_settings": {"name": "synthetic"}})  # noqa: E731
    return tw.TrainingWorker(er.make_engine_setup(s, prep), n_epochs=epochs)


def test_engine_worker_replay_matches_the_epochs_own_probe_and_runs_are_isolated():
    solo = engine_worker(compare=True)
    solo.start()
    solo.join(300)
    assert solo.snapshot().status == tw.DONE, solo.snapshot().error
    # two sessions training at the same time get exactly the solo results (nothing shared)
    a, b = engine_worker(compare=True), engine_worker(compare=True, seed=5)
    a.start()
    b.start()
    a.join(300)
    b.join(300)
    sa, sb, s0 = a.snapshot(), b.snapshot(), solo.snapshot()
    assert sa.status == sb.status == tw.DONE
    for lb in ("stca", "tdp1"):
        assert [r.train_loss for r in sa.reports[lb]] == [r.train_loss for r in s0.reports[lb]]
        assert [r.test_accuracy for r in sa.reports[lb]] == [r.test_accuracy for r in s0.reports[lb]]
    assert [r.train_loss for r in sb.reports["stca"]] != [r.train_loss for r in s0.reports["stca"]]
    # each epoch's weights were kept: replaying an epoch's probe gives exactly what that epoch reported
    runner = a.runner("stca")
    assert sorted(runner.weights_by_epoch) == [0, 1, 2, 3]  # 0: the initial weights
    for epoch in (1, 2, 3):
        rep = sa.reports["stca"][epoch - 1].probe
        again = runner.probe_at(epoch, rep.index)
        import numpy as np

        np.testing.assert_array_equal(again.voltages, rep.voltages)
        np.testing.assert_array_equal(again.k_star, rep.k_star)
        np.testing.assert_array_equal(again.sign, rep.sign)
    other = runner.probe_at(1, 3)
    assert other.index == 3 and other.name == "s3"
    assert runner.probe_at(99, 0) is None
    # the credit view: each epoch's weight change, and the credit map under the kept weights
    kept = runner.weights_by_epoch
    for epoch in (1, 2, 3):
        dws, since = runner.weight_change(epoch)
        assert since == epoch - 1
        for dw, w_after, w_before in zip(dws, kept[epoch], kept[epoch - 1]):
            np.testing.assert_array_equal(dw, (w_after - w_before).numpy())
    assert runner.weight_change(0) is None and runner.weight_change(99) is None
    from stca_engine.credit import credit_of_sample

    cm = runner.credit_at(2, 1)
    want = credit_of_sample(runner.build_net(kept[2]), runner.probe_set, 1, runner.neuron_cfg, "detect", "stca")
    assert cm.name == "s1" and cm.n_layers == 2
    for mine, theirs in zip(cm.dV + cm.dW, want.dV + want.dW):
        np.testing.assert_array_equal(mine, theirs)
    assert runner.credit_at(99, 0) is None
    info = sa.info
    assert info["class_names"] == ["c0", "c1", "c2"] and info["n_train"] == 16 and len(info["probe_names"]) == 6
    assert info["encoder_settings"] == {"name": "synthetic"}
    # the model copy handed to the page equals the last epoch's weights, and is not the training tensor
    import torch

    last = a.model("stca")
    assert all(torch.equal(w, k) for w, k in zip(last, runner.weights_by_epoch[3]))
    assert all(w.data_ptr() != p.data_ptr() for w, p in zip(last, runner.trainer.net.weights))


def test_engine_worker_stops_between_batches():
    w = engine_worker(epochs=200)
    w.start()
    wait_until(lambda: w.snapshot().epoch >= 1, timeout=120, what="first epoch")
    w.stop("reset")
    w.join(30)
    assert not w.alive and w.snapshot().status == tw.STOPPED and w.snapshot().epoch < 200


def test_sgd_choice_gives_the_optimiser_momentum_0_9():
    """The page offers "SGD (momentum 0.9)": the engine's optimiser must really get that momentum."""
    from dataclasses import replace

    import state

    assert "0.9" in state.OPTIMIZERS["sgd"]
    s = replace(state.TrainSettings(), hidden="8", init_std=0.3, lr=0.01, batch_size=4, epochs=1, optimizer="sgd")
    assert er.train_config_for(s, "stca").momentum == 0.9
    assert er.train_config_for(replace(s, optimizer="adam"), "stca").momentum == 0.0
    train, test = synthetic(seed=1), synthetic(n=6, seed=2)
    setup = er.make_engine_setup(s, lambda settings, progress: (train, test, {}))
    runners, _ = setup(lambda *a: None, lambda: False)
    opt = runners["stca"].trainer.optimizer
    import torch

    assert isinstance(opt, torch.optim.SGD)
    assert [g["momentum"] for g in opt.param_groups] == [0.9] * len(opt.param_groups)


def test_regularise_setting_brings_the_suite_recipe_and_a_validation_split():
    """The Train page's "Guard against memorising" (on by default, off in the paper preset) gives the run
    stca_engine.defaults.REGULARISATION: new takes, augmentation, dropout, a validation split and best-val
    selection."""
    from dataclasses import replace

    import state

    from stca_engine.defaults import REGULARISATION

    on = replace(state.TrainSettings(), classes="bells,horn", n_train=6, n_test=4, events_per_stream=2)
    assert on.regularise is True
    cfg = er.train_config_for(on, "stca")
    assert cfg.augment == {**cfg.augment, **REGULARISATION["augment"]} and cfg.dropout == REGULARISATION["dropout"]
    assert cfg.select == "best-val"
    assert er.train_config_for(on, "stca", has_val=False).select == "last"
    off = replace(on, regularise=False)
    cfg_off = er.train_config_for(off, "stca")
    assert cfg_off.dropout == 0.0 and cfg_off.select == "last" and not any(cfg_off.augment.values())
    train, test, info = er.prepare_engine_data(on, lambda *a: None)
    assert info["val"] is not None and len(info["val"]) == 4
    assert info["n_takes"] == REGULARISATION["takes"] > 0  # sound: new takes of every training clip
    off_info = er.prepare_engine_data(off, lambda *a: None)[2]
    assert off_info.get("val") is None and not off_info.get("n_takes")
    assert state.load_presets()["paper"].settings.regularise is False
