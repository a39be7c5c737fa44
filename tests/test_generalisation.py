"""What keeps a network from memorising its training clips: spike augmentation, dropout, weight decay,
the learning-rate step, and model selection on a validation split carved from the training clips."""

import numpy as np
import pytest
import torch
from test_trainer import CFG, TEST, TRAIN

from stca_engine.augment import Augment, augment_train
from stca_engine.config import TrainConfig
from stca_engine.data.sources import carve_validation, prepare_datasets
from stca_engine.data.types import SpikeTrain
from stca_engine.errors import ConfigError
from stca_engine.network import SNN
from stca_engine.trainer import Trainer


def _train(n=400, seed=0):
    rng = np.random.default_rng(seed)
    key = rng.choice(300 * 16, size=n, replace=False)  # distinct (step, afferent) pairs
    return SpikeTrain(key // 16, key % 16, 16, 300, 3.0)


# ---- augmentation ------------------------------------------------------------------------------
def test_augment_off_returns_the_same_train():
    tr = _train()
    assert augment_train(tr, Augment(), np.random.default_rng(0)) is tr


def test_jitter_moves_spikes_by_at_most_j_steps_and_keeps_afferents():
    tr = SpikeTrain(np.arange(10, 290, 7), np.arange(40) % 16, 16, 300, 3.0)
    out = augment_train(tr, Augment(jitter_steps=2), np.random.default_rng(1))
    assert out.n_units == 16 and out.n_steps == 300
    moved = False
    for u in range(16):
        a, b = np.sort(tr.times[tr.units == u]), np.sort(out.times[out.units == u])
        assert len(a) == len(b)  # spikes of one afferent are >= 7*16 steps apart: none merge or vanish
        assert np.all(np.abs(a - b) <= 2)
        moved |= bool(np.any(a != b))
    assert moved


def test_drop_removes_about_that_share_and_noise_adds_spikes():
    tr = _train(4000)
    dropped = augment_train(tr, Augment(drop=0.3), np.random.default_rng(2))
    assert 0.6 < dropped.n_spikes / tr.n_spikes < 0.8
    noisy = augment_train(
        SpikeTrain(np.zeros(0), np.zeros(0), 16, 1000, 3.0), Augment(noise_hz=10.0), np.random.default_rng(3)
    )
    assert 300 < noisy.n_spikes < 660  # 10 Hz x 16 afferents x 3 s = 480 expected


def test_stretch_scales_times_within_bounds():
    tr = SpikeTrain(np.array([100]), np.array([0]), 16, 300, 3.0)
    ts = {int(augment_train(tr, Augment(stretch=0.2), np.random.default_rng(s)).times[0]) for s in range(30)}
    assert min(ts) >= 80 and max(ts) <= 120 and len(ts) > 5


def test_augment_is_repeatable_for_a_seed():
    tr, a = _train(), Augment(jitter_steps=3, drop=0.2, stretch=0.1, noise_hz=2.0)
    x = augment_train(tr, a, np.random.default_rng(5))
    y = augment_train(tr, a, np.random.default_rng(5))
    assert np.array_equal(x.times, y.times) and np.array_equal(x.units, y.units)


@pytest.mark.parametrize(
    "bad", [dict(jitter_steps=-1), dict(drop=1.0), dict(stretch=0.9), dict(noise_hz=-1.0), dict(jitter_steps=1.5)]
)
def test_augment_settings_are_validated(bad):
    with pytest.raises(ConfigError):
        Augment(**bad)


def test_train_config_checks_new_settings():
    for bad in (
        dict(dropout=1.0),
        dict(select="best-test"),
        dict(weight_decay=-1.0),
        dict(augment={"jiter": 1}),
        dict(lr_step_epoch=0),
    ):
        with pytest.raises(ConfigError):
            TrainConfig(**bad).validate(check_device=False)
    cfg = TrainConfig(augment={"jitter_steps": 2}).validate(check_device=False)
    assert TrainConfig.from_dict(cfg.to_dict(), check_device=False).augment == cfg.augment


# ---- dropout -----------------------------------------------------------------------------------
def test_dropout_zero_is_the_plain_network_and_dropout_silences_whole_neurons():
    net = SNN([20, 40, 3], CFG, init_std=0.4, seed=0, dtype=torch.float64)
    x = (torch.rand(80, 4, 20, generator=torch.Generator().manual_seed(0)) < 0.15).double()
    plain, same = net(x), net(x, dropout=0.0)
    assert torch.equal(plain.voltages[-1], same.voltages[-1])
    g = torch.Generator().manual_seed(1)
    dropped = net(x, dropout=0.5, generator=g)
    assert torch.equal(dropped.spikes[0], plain.spikes[0])  # the hidden layer itself is unchanged
    assert not torch.equal(dropped.voltages[-1], plain.voltages[-1])
    # the output current equals the plain net fed with masked, rescaled hidden spikes
    keep = torch.rand((4, 40), generator=torch.Generator().manual_seed(1), dtype=torch.float64) >= 0.5
    from stca_engine.layer import clif_layer

    h = plain.spikes[0].detach() * keep / 0.5
    v_ref, _ = clif_layer(h, net.weights[1], net.layer_params(1), net.backend)
    assert torch.allclose(dropped.voltages[-1], v_ref, atol=1e-12)


def test_dropout_run_is_repeatable_and_differs_from_no_dropout():
    def run(**kw):
        t = Trainer(
            None,
            TRAIN,
            TEST,
            CFG,
            TrainConfig(
                task="detect",
                hidden=[32],
                batch_size=8,
                optimizer="adam",
                lr=1e-2,
                seed=0,
                device="cpu",
                init_std=0.2,
                epochs=2,
                **kw,
            ),
        )
        t.fit()
        return [w.detach().clone() for w in t.net.weights]

    a, b, c = run(dropout=0.3), run(dropout=0.3), run()
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_augmented_training_is_repeatable_and_pause_resume_safe():
    cfg = dict(
        task="detect",
        hidden=[32],
        batch_size=8,
        optimizer="adam",
        lr=1e-2,
        seed=0,
        device="cpu",
        init_std=0.2,
        epochs=1,
        augment={"jitter_steps": 2, "drop": 0.1},
    )
    t1 = Trainer(None, TRAIN, TEST, CFG, TrainConfig(**cfg))
    t1.fit()
    t2 = Trainer(None, TRAIN, TEST, CFG, TrainConfig(**cfg))
    calls = {"n": 0}

    def stop_after_two():
        calls["n"] += 1
        return calls["n"] == 3

    assert t2.step_epoch(should_stop=stop_after_two) is None  # paused after two batches
    t2.step_epoch()
    assert all(torch.equal(a, b) for a, b in zip(t1.net.weights, t2.net.weights))
    plain = Trainer(None, TRAIN, TEST, CFG, TrainConfig(**{**cfg, "augment": {}}))
    plain.fit()
    assert not all(torch.equal(a, b) for a, b in zip(t1.net.weights, plain.net.weights))


def test_weight_decay_and_lr_step_reach_the_optimiser():
    t = Trainer(
        None,
        TRAIN,
        TEST,
        CFG,
        TrainConfig(
            task="detect",
            hidden=[16],
            optimizer="adam",
            lr=1e-2,
            device="cpu",
            weight_decay=1e-3,
            lr_step_epoch=1,
            lr_step_factor=0.5,
            epochs=2,
        ),
    )
    assert all(g["weight_decay"] == 1e-3 for g in t.optimizer.param_groups)
    t.fit(1)
    assert [g["lr"] for g in t.optimizer.param_groups] == pytest.approx([5e-3, 5e-3])
    assert t.history[-1].learning_rates == pytest.approx([5e-3, 5e-3])


# ---- validation split and model selection ------------------------------------------------------
def test_carve_validation_is_per_class_seeded_and_disjoint():
    labels = [0] * 10 + [1] * 10 + [2] * 1
    keep, held = carve_validation(labels, 0.2, seed=3)
    assert sorted(keep + held) == list(range(21)) and not set(keep) & set(held)
    assert [labels[i] for i in held].count(0) == 2 and [labels[i] for i in held].count(1) == 2
    assert 20 in keep  # a class with one item stays in training
    assert carve_validation(labels, 0.2, seed=3) == (keep, held)
    assert carve_validation(labels, 0.2, seed=4) != (keep, held)


def test_prepare_datasets_carves_validation_from_training_clips_only():
    train, test, info = prepare_datasets(
        "demo", "classify", seed=0, val_fraction=0.25, cache=False, classes=["bells", "horn"], n_per_class=8
    )
    val = info["val"]
    names = lambda ds: {s.name for s in ds.samples}  # noqa: E731
    assert len(val) == 2 * 1 and not names(val) & names(train) and not names(val) & names(test)
    full, _, _ = prepare_datasets("demo", "classify", seed=0, cache=False, classes=["bells", "horn"], n_per_class=8)
    assert names(val) | names(train) == names(full)
    det_train, det_test, det_info = prepare_datasets(
        "demo",
        "detect",
        seed=0,
        val_fraction=0.25,
        cache=False,
        classes=["bells", "horn"],
        n_per_class=8,
        n_train_streams=10,
        n_test_streams=5,
    )
    assert len(det_info["val"]) == 5 and det_info["val"].samples[0].name.startswith("val")


def test_best_val_keeps_the_best_epochs_weights():
    t = Trainer(
        None,
        TRAIN,
        TEST,
        CFG,
        TrainConfig(
            task="detect",
            hidden=[32],
            batch_size=8,
            optimizer="adam",
            lr=1e-2,
            seed=0,
            device="cpu",
            init_std=0.2,
            epochs=4,
            select="best-val",
        ),
        val=TEST,
    )
    snapshots = []
    t.fit(callback=lambda r: snapshots.append([w.detach().clone() for w in t.net.weights]))
    scores = [(r.val_metrics["accuracy"], -r.val_metrics["loss"]) for r in t.history]
    best = max(range(4), key=lambda i: (scores[i], -i))
    assert t.restore_best() == best + 1
    assert all(torch.equal(w, s) for w, s in zip(t.net.weights, snapshots[best]))


def test_best_val_without_a_validation_set_is_refused():
    with pytest.raises(ConfigError, match="validation"):
        Trainer(None, TRAIN, TEST, CFG, TrainConfig(task="detect", hidden=[8], device="cpu", select="best-val"))


def test_cli_keeps_the_last_epoch_when_no_validation_clip_can_be_held_out(tmp_path, capsys, monkeypatch):
    """Two clips per class: one trains, one tests, none is left to validate on; the run still trains (on
    the last epoch) and says so, instead of refusing best-val selection."""
    import json

    from test_takes import write_two_tone_folder

    from stca_engine import cli

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    data = write_two_tone_folder(tmp_path, 2)
    rc = cli.main(
        [
            "train",
            "--data",
            data,
            "--task",
            "classify",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "m"),
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "keeping the last epoch" in out.out + out.err
    m = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert m["select"] == "last" and m["selected_epoch"] == 1
