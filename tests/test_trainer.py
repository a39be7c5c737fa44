"""Trainer: repeatable runs, report shapes, NaN handling, pause/resume, learning on hand-made spike
trains, and evaluate() on networks whose answers are known by construction."""

import math
import threading

import numpy as np
import pytest
import torch

import stca_engine as se
from stca_engine.checkpoint import load_model
from stca_engine.config import NeuronConfig
from stca_engine.data.types import Event, Sample, SpikeDataset, SpikeTrain
from stca_engine.errors import ConfigError, TrainingError
from stca_engine.network import SNN
from stca_engine.trainer import EpochReport, TrainConfig, Trainer, evaluate, learning_rates

CFG = NeuronConfig(dt_ms=3.0, tau_m_ms=30.0, tau_s_ms=7.5, t_in_ms=30.0)  # T_in = 10 steps
N_IN, T = 20, 120


def _detect_set(n, seed):
    """Streams of 0–2 events; class c is a fixed pattern on afferents 10c..10c+9 within 12 steps,
    plus 8 random background spikes."""
    rng = np.random.default_rng(seed)
    pat_rng = np.random.default_rng(1234)
    pats = [np.stack([pat_rng.integers(0, 12, 10), np.arange(10) + 10 * c], 1) for c in range(2)]
    samples = []
    for i in range(n):
        times, units, events = [], [], []
        counts = np.zeros(2, np.int64)
        for on in [5, 60][: int(rng.integers(0, 3))]:
            c = int(rng.integers(0, 2))
            counts[c] += 1
            events.append(Event(c, on, on + 12))
            times += list(pats[c][:, 0] + on)
            units += list(pats[c][:, 1])
        times += list(rng.integers(0, T, 8))
        units += list(rng.integers(0, N_IN, 8))
        st = SpikeTrain.merge([SpikeTrain(np.array(times), np.array(units), N_IN, T, 3.0)], T)
        samples.append(Sample(st, counts, events, f"stream{i}"))
    return SpikeDataset(samples, N_IN, ["a", "b"], "detect", 3.0)


TRAIN, TEST = _detect_set(32, 0), _detect_set(16, 1)


def _cfg(**kw):
    base = dict(
        task="detect",
        hidden=[32],
        batch_size=8,
        optimizer="adam",
        lr=1e-2,
        seed=0,
        device="cpu",
        init_std=0.2,
        epochs=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(net):
    return [w.detach().clone() for w in net.weights]


@pytest.fixture(scope="module")
def ref_run():
    """Two uninterrupted epochs with the default test config (shared reference)."""
    t = Trainer(None, TRAIN, TEST, CFG, _cfg())
    reports = t.fit(2)
    return [r.train_loss for r in reports], [r.test_loss for r in reports], _weights(t.net)


def test_same_seed_same_run_other_seed_other_run(ref_run):
    runs = [ref_run]
    for seed in (0, 1):
        t = Trainer(None, TRAIN, TEST, CFG, _cfg(seed=seed))
        reports = t.fit(2)
        runs.append(([r.train_loss for r in reports], [r.test_loss for r in reports], _weights(t.net)))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][2], runs[1][2]))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0][2], runs[2][2]))
    # the minibatch order depends on seed and epoch only
    t = Trainer(None, TRAIN, TEST, CFG, _cfg())
    assert torch.equal(t.epoch_order(2), t.epoch_order(2)) and not torch.equal(t.epoch_order(1), t.epoch_order(2))
    assert sorted(t.epoch_order(1).tolist()) == list(range(len(TRAIN)))


def test_loss_goes_down_on_hand_made_streams():
    t = Trainer(None, TRAIN, TEST, CFG, _cfg())
    reports = t.fit(8)
    losses = [r.train_loss for r in reports]
    assert losses[0] > 0.3
    assert losses[-1] < 0.25 * losses[0], losses
    assert reports[-1].test_loss < reports[0].test_loss
    assert reports[-1].test_accuracy > 0.8
    assert t.history == reports and [r.epoch for r in reports] == list(range(1, 9))


def test_report_shapes_and_contents():
    t = Trainer(None, TRAIN, TEST, CFG, _cfg(probe_index=3, hidden=[32, 12]))
    r = t.step_epoch()
    assert isinstance(r, EpochReport) and r.epoch == 1 and r.n_samples == len(TRAIN)
    for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "mean_clusters", "seconds"):
        assert isinstance(getattr(r, k), float) and math.isfinite(getattr(r, k)), k
    for k in (
        "count_accuracy",
        "stream_accuracy",
        "event_f1",
        "event_f1_strict",
        "event_precision",
        "event_recall",
        "loss",
    ):
        assert k in r.test_metrics
    assert r.test_accuracy == r.test_metrics["count_accuracy"]
    p = r.probe
    sample = TEST[3]
    assert p.index == 3 and p.name == "stream3" and p.events == sample.events
    np.testing.assert_array_equal(p.target, sample.target)
    assert p.voltages.shape == (T, 2) and p.voltages.dtype == np.float32
    assert p.spikes.shape == (T, 2) and set(np.unique(p.spikes)) <= {0, 1}
    assert p.n_hidden == 12 and p.hidden_times.shape == p.hidden_units.shape
    assert p.hidden_units.size == 0 or (p.hidden_units.max() < 12 and p.hidden_times.max() < T)
    assert p.k_star.shape == (2,) and p.sign.shape == (2,) and p.n_clusters.shape == (2,)
    assert all((p.k_star[c] == -1) == (p.sign[c] == 0) for c in range(2))
    # the probe is what the network does on that sample now
    with torch.no_grad():
        x, _ = TEST.batch([3])
        rec = t.net(x)
    np.testing.assert_array_equal(p.voltages, rec.voltages[-1][:, 0].numpy())
    np.testing.assert_array_equal(p.spikes, rec.spikes[-1][:, 0].numpy())
    hidden = rec.spikes[-2][:, 0].numpy()
    assert p.hidden_times.size == hidden.sum()
    assert hidden[p.hidden_times, p.hidden_units].all()
    assert [len(c) for c in p.clusters] == p.n_clusters.tolist()
    # the loss's own verdict on each neuron comes with the probe (views never re-derive the k⁺ rule)
    _, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], TEST.batch([3])[1], CFG, task="detect")
    np.testing.assert_array_equal(p.no_kplus, info.no_kplus[0].numpy())

    assert len(r.weights) == 3
    for ws, w in zip(r.weights, t.net.weights):
        a = w.detach().double().numpy()
        assert ws.shape == a.shape and ws.hist_counts.sum() == a.size
        assert ws.mean == pytest.approx(a.mean()) and ws.std == pytest.approx(a.std())
        assert ws.min == a.min() and ws.max == a.max()
    assert r.summary()["epoch"] == 1 and "test_event_f1" in r.summary()


def test_nan_stops_and_keeps_last_good_weights():
    t = Trainer(None, TRAIN, TEST, CFG, _cfg())
    t.step_epoch()
    good = _weights(t.net)
    with torch.no_grad():
        t.net.weights[0][3, 4] = float("nan")
    with pytest.raises(TrainingError, match=r"epoch 2, batch 1: .*NaN|epoch 2, batch 1: the loss became nan"):
        t.step_epoch()
    assert all(torch.equal(a, b) for a, b in zip(_weights(t.net), good))
    assert len(t.history) == 1 and t.epoch == 1 and not t.interrupted
    # training can go on from the restored weights
    assert t.step_epoch().epoch == 2


def test_overflowing_weights_are_caught():
    t = Trainer(None, TRAIN, TEST, CFG, _cfg(optimizer="sgd", lr=0.1))
    good = _weights(t.net)
    with torch.no_grad():
        t.net.weights[-1][:, :] = 3e38  # float32 currents overflow to inf
    with pytest.raises(TrainingError, match=r"^training: epoch 1, batch 1: .*(inf|nan|NaN).*restored"):
        t.step_epoch()
    assert all(torch.equal(a, b) for a, b in zip(_weights(t.net), good)) and t.history == []


def test_pause_and_resume_ends_like_an_uninterrupted_run(ref_run):
    t = Trainer(None, TRAIN, TEST, CFG, _cfg())
    seen = []

    def on_batch(b):
        seen.append((b.epoch, b.batch))
        if (b.epoch, b.batch) == (1, 2):
            t.request_stop()

    assert t.step_epoch(on_batch=on_batch) is None
    assert t.interrupted and t.epoch == 0 and seen == [(1, 1), (1, 2)]
    r1 = t.step_epoch(on_batch=on_batch)
    assert r1.epoch == 1 and seen[2:] == [(1, 3), (1, 4)]
    stop_after = {"n": 0}

    def should_stop():
        stop_after["n"] += 1
        return stop_after["n"] > 1

    assert t.step_epoch(should_stop=should_stop) is None
    r2 = t.step_epoch()
    assert [r1.train_loss, r2.train_loss] == ref_run[0] and [r1.test_loss, r2.test_loss] == ref_run[1]
    assert all(torch.equal(a, b) for a, b in zip(_weights(t.net), ref_run[2]))


def test_fit_progress_and_callbacks():
    t = Trainer(None, TRAIN, TEST, CFG, _cfg())
    calls, batches = [], []
    reports = t.fit(2, progress=lambda d, n, m: calls.append((d, n, m)), on_batch=batches.append)
    assert [c[:2] for c in calls] == [(i, 8) for i in range(1, 9)] and "epoch 2" in calls[-1][2]
    assert len(batches) == 8 and batches[-1].n_batches == 4 and batches[0].n_samples == 8
    assert len(reports) == 2
    more = t.fit(5, callback=lambda r: r.epoch < 3)  # False after epoch 3 stops the run
    assert [r.epoch for r in more] == [3]
    # a stop from another thread while fit runs
    t2 = Trainer(None, TRAIN, TEST, CFG, _cfg())

    def stop_from_thread(b):
        if b.batch == 1:
            th = threading.Thread(target=t2.request_stop)
            th.start()
            th.join()

    assert t2.fit(1, on_batch=stop_from_thread) == []
    assert t2.interrupted and t2.epoch == 0


def test_train_config_validation_and_round_trip():
    tc = TrainConfig(task="classify", objective="margin", hidden=[64, 32], optimizer="sgd", lr=0.5, momentum=0.9)
    assert TrainConfig.from_dict(tc.to_dict()) == tc.validate()
    bad = [
        (dict(task="segment"), "task"),
        (dict(objective="mse"), "objective"),
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(hidden=[0]), "hidden"),
        (dict(hidden="300"), "hidden"),
        (dict(epochs=-1), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(lr=1e300), "lr"),
        (dict(lr_hidden=0.0), "lr_hidden"),
        (dict(dtype="float16"), "dtype"),
        (dict(momentum=1.0), "momentum"),
        (dict(seed=1.5), "seed"),
        (dict(objective="margin"), "objective"),  # margin with the default task 'detect'
        (dict(device="tpu"), "device"),
        (dict(init_std=-0.1), "init_std"),
    ]
    for kw, name in bad:
        with pytest.raises(ConfigError, match=name):
            TrainConfig(**kw).validate()
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainConfig.from_dict({"epochs": 3, "learning_rate": 0.1})


def test_paper_learning_rates():
    v0 = CFG.v0
    assert learning_rates(TrainConfig(optimizer="sgd"), CFG, 3) == pytest.approx([1e-2 / v0 / v0] * 2 + [1e-2 / v0])
    assert learning_rates(TrainConfig(optimizer="sgd", lr=0.3), CFG, 2) == pytest.approx([0.3 / v0, 0.3])
    assert learning_rates(TrainConfig(optimizer="adam"), CFG, 2) == pytest.approx([1e-3, 1e-3])
    t = Trainer(None, TRAIN, TEST, CFG, _cfg(optimizer="sgd", lr=None, hidden=[8]))
    assert isinstance(t.optimizer, torch.optim.SGD)
    assert [g["lr"] for g in t.optimizer.param_groups] == pytest.approx([1e-2 / v0 / v0, 1e-2 / v0])


def test_bad_setups_are_config_errors():
    with pytest.raises(ConfigError, match="inputs"):
        Trainer(SNN([7, 2], CFG, seed=0), TRAIN, TEST, CFG, _cfg())
    with pytest.raises(ConfigError, match="probe_index"):
        Trainer(None, TRAIN, TEST, CFG, _cfg(probe_index=16))
    with pytest.raises(ConfigError, match="task"):
        Trainer(None, TRAIN, TEST, CFG, _cfg(task="classify"))
    with pytest.raises(ConfigError, match="dt"):
        Trainer(None, TRAIN, TEST, NeuronConfig(dt_ms=1.0, t_in_ms=30.0), _cfg())


# ---- evaluate() on networks whose answers are known by construction ----------------------------
def _identity_net(n, weight=2.0, perm=None):
    net = SNN([n, n], CFG, dtype=torch.float64, seed=0)
    perm = list(range(n)) if perm is None else perm
    with torch.no_grad():
        net.weights[0].zero_()
        for i, j in enumerate(perm):
            net.weights[0][j, i] = weight  # afferent i drives output perm[i]
    return net


def test_evaluate_classify_known_answers():
    n = 3
    labels = [0, 1, 2, 2, 1, 0, 0]
    samples = [Sample(SpikeTrain([5 + i % 3], [c], n, 40, 3.0), c, name=f"c{i}") for i, c in enumerate(labels)]
    ds = SpikeDataset(samples, n, ["x", "y", "z"], "classify", 3.0)
    m = evaluate(_identity_net(n), ds, CFG, "classify", "stca", batch_size=3)
    assert m["accuracy"] == 1.0 and m["f1"] == 1.0 and m["n_samples"] == 7
    np.testing.assert_array_equal(m["confusion_matrix"], np.diag([3, 2, 2]))
    assert m["loss"] == 0.0 and m["mean_clusters"] == pytest.approx(1 / 3)
    # outputs 0 and 1 swapped: class 2 still right, classes 0 and 1 always wrong
    m = evaluate(_identity_net(n, perm=[1, 0, 2]), ds, CFG, "classify", "stca", batch_size=4)
    assert m["accuracy"] == pytest.approx(2 / 7)
    np.testing.assert_array_equal(m["confusion_matrix"], [[0, 3, 0], [2, 0, 0], [0, 0, 2]])
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 3)
    assert m["loss"] > 0


def test_evaluate_detect_known_answers():
    """Afferent c bursting at an event's onset makes output c fire one cluster inside the event."""
    n, T_len = 2, 100

    def stream(evs, counts, length=T_len):
        times = [e.onset_step + 1 for e in evs]
        units = [e.class_index for e in evs]
        return Sample(SpikeTrain(times, units, n, length, 3.0), np.array(counts), list(evs))

    samples = [
        stream([Event(0, 10, 30), Event(1, 50, 70)], [1, 1]),
        stream([Event(0, 10, 30), Event(0, 60, 80)], [2, 0]),
        stream([Event(1, 20, 40)], [0, 1], length=60),  # shorter: padded inside the batch
        stream([Event(1, 20, 40)], [1, 1]),  # wrong label: count for class 0 is off
    ]
    ds = SpikeDataset(samples, n, ["p", "q"], "detect", 3.0)
    net = _identity_net(n)
    m1 = evaluate(net, ds, CFG, "detect", "stca", batch_size=4, tolerance_steps=0)
    m2 = evaluate(net, ds, CFG, "detect", "stca", batch_size=1, tolerance_steps=0)
    for m in (m1, m2):
        assert m["count_accuracy"] == pytest.approx(7 / 8) and m["stream_accuracy"] == pytest.approx(3 / 4)
        assert (m["event_tp"], m["event_fp"], m["event_fn"]) == (6, 0, 0) and m["event_f1"] == 1.0
    # the wrong label asks neuron 0 for a cluster in a stream where afferent 0 never fires: its V ≡ 0
    # depends on no weight, so it has no k⁺ (counted) instead of a loss at a fake k⁺ at step 0
    assert m1["loss"] == m2["loss"] == 0 and m1["n_no_kplus"] == m2["n_no_kplus"] == 1
    # events shifted so that no cluster lies inside them: every cluster is a false alarm
    shifted = [
        Sample(s.spikes, s.target, [Event(e.class_index, e.onset_step + 15, e.offset_step + 15) for e in s.events])
        for s in samples
    ]
    ds2 = SpikeDataset(shifted, n, ["p", "q"], "detect", 3.0)
    m = evaluate(net, ds2, CFG, "detect", "stca", tolerance_steps=0)
    assert (m["event_tp"], m["event_fp"], m["event_fn"]) == (0, 6, 6) and m["event_f1"] == 0.0
    assert evaluate(net, ds2, CFG, "detect", "stca", tolerance_steps=20)["event_f1"] == 1.0


def test_margin_objective_and_save(tmp_path):
    labels = [0, 1, 2, 1, 0, 2]
    samples = [Sample(SpikeTrain([5, 9, 14], [c, c, c], 3, 40, 3.0), c) for c in labels]
    ds = SpikeDataset(samples, 3, ["x", "y", "z"], "classify", 3.0)
    tc = TrainConfig(
        task="classify",
        objective="margin",
        hidden=[50],
        batch_size=3,
        optimizer="adam",
        lr=0.05,
        seed=0,
        device="cpu",
        init_std=0.1,
    )
    with pytest.raises(ConfigError, match="non-spiking"):
        Trainer(SNN([3, 3], CFG, seed=0), ds, ds, CFG, tc)
    # all weights positive: with max-over-time V a neuron that never rises above 0 has k* at a
    # silent step and gets no gradient (a property of the margin rule, not of the trainer)
    net = SNN([3, 3], CFG, output_spiking=False, seed=0, init_std=0.1)
    with torch.no_grad():
        net.weights[0].abs_()
    t = Trainer(net, ds, ds, CFG, tc)
    assert t.cfg.hidden == [] and t.cfg.dtype == "float32"
    reports = t.fit(10)
    assert reports[-1].train_loss < reports[0].train_loss and reports[-1].test_accuracy == 1.0
    t.save(tmp_path / "m")
    net2, info = load_model(tmp_path / "m", device="cpu")
    assert info.objective == "margin" and info.class_names == ["x", "y", "z"] and info.extra["epochs_trained"] == 10
    assert evaluate(net2, ds, info.neuron_cfg, "classify", "margin")["accuracy"] == 1.0


def test_tdp1_in_float64_counts_single_spikes():
    t = Trainer(None, TRAIN, TEST, CFG, _cfg(objective="tdp1", dtype="float64", hidden=[16]))
    assert all(w.dtype == torch.float64 for w in t.net.weights)
    r = t.step_epoch()
    assert math.isfinite(r.train_loss) and r.weights[0].shape == (16, N_IN)
    # tdp1 judges the number of spikes, not of clusters
    np.testing.assert_array_equal(r.probe.prediction, r.probe.spikes.sum(axis=0))
    assert t.probe_set is TEST


def test_a_silenced_network_is_reported_not_trained_at_a_fake_k_plus():
    """Negative input weights silence the hidden layer: the output's V ≡ 0 depends on no weight, so
    its needed k⁺ are counted as missing (no fake k⁺ at step 0) and the report names the silent layers."""
    net = SNN([N_IN, 32, 2], CFG, dtype=torch.float32, device="cpu", seed=0, init_std=0.2)
    with torch.no_grad():
        net.weights[0].copy_(-net.weights[0].abs())
    t = Trainer(net, TRAIN, TEST, CFG, _cfg())
    r = t.step_epoch()
    assert r.layer_spikes[0] == 0 and r.layer_spikes[1] == 0
    wanted = int(sum(int(np.asarray(s.target).sum() > 0) for s in TRAIN.samples))
    assert wanted > 0 and r.n_kplus == 0 and r.n_no_kplus >= wanted
    assert r.silent_layers == ["hidden 1", "output"]
    assert r.summary()["silent_layers"] == "hidden 1, output"
    assert r.train_loss == 0.0  # nothing was trained at a step whose V no weight could move


def test_a_healthy_network_reports_no_silent_layers():
    t = Trainer(None, TRAIN, TEST, CFG, _cfg())
    r = t.step_epoch()
    assert len(r.layer_spikes) == 2 and r.layer_spikes[0] > 0
    assert r.n_kplus + r.n_no_kplus > 0
    assert "hidden 1" not in r.silent_layers and r.summary()["silent_layers"] == ", ".join(r.silent_layers)


def test_a_silent_network_probe_says_which_neurons_found_no_k_plus():
    from stca_engine.reports import make_probe

    net = se.SNN([N_IN, 6, 2], CFG, dtype=torch.float64, seed=0, init_std=0.0)  # V ≡ 0 everywhere
    p = make_probe(net, TEST, 0, CFG, "detect", "stca")
    wanted = np.asarray(TEST[0].target) > 0
    assert wanted.any() and np.array_equal(p.no_kplus, wanted) and (p.sign == 0).all()
