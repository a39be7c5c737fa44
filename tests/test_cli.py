"""The ``stca`` command end to end on tiny data: train -> eval -> detect, encode, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stca_engine import cli

REPO = Path(__file__).resolve().parents[1]

# tiny but real: a folder data set of synthetic event sounds (3 classes x 8 clips) through the fast
# encoder, a few short streams, a small network
CLASSES = ("bells", "whistle", "horn")
TINY_DETECT = [
    "--task",
    "detect",
    "--encoder",
    "spectral",
    "--streams",
    "12",
    "--test-streams",
    "6",
    "--events",
    "2",
    "--hidden",
    "16",
    "--epochs",
    "2",
    "--batch",
    "4",
    "--lr",
    "0.01",
    "--init-std",
    "0.2",
]


def _sound_folder(root: Path) -> Path:
    import soundfile as sf

    from stca_engine.data import demo

    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(8):
            sf.write(root / name / f"{i:03d}.wav", demo.synth_clip(c, i).astype(np.float32) * 0.8, demo.SR)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "stca-cache"))
    monkeypatch.delenv("STCA_DATA_ROOTS", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.fixture(scope="module")
def sound_data(tmp_path_factory):
    return "folder:" + str(_sound_folder(tmp_path_factory.mktemp("sounds")))


def _run(argv, capsys):
    code = cli.main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def detect_model(tmp_path_factory, sound_data):
    """One tiny detection model shared by the train/eval/detect tests (trained once)."""
    out = tmp_path_factory.mktemp("model") / "det"
    os.environ["STCA_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "stca-cache")
    try:
        code = cli.main(["--quiet", "train", "--data", sound_data, *TINY_DETECT, "--out", str(out)])
    finally:
        os.environ.pop("STCA_CACHE_DIR", None)
    assert code == 0
    return out


def test_train_writes_model_config_and_metrics_schema(detect_model):
    assert (detect_model / "model.safetensors").is_file()
    cfg = json.loads((detect_model / "config.json").read_text())
    assert cfg["sizes"][1:] == [16, 3] and cfg["class_names"] == sorted(CLASSES)
    m = json.loads((detect_model / "metrics.json").read_text())
    assert [e["epoch"] for e in m["epochs"]] == [1, 2]
    for e in m["epochs"]:
        for k in ("train_loss", "test_loss", "test_accuracy"):
            assert isinstance(e[k], float) and np.isfinite(e[k]), k
    for k in ("count_accuracy", "stream_accuracy", "event_f1"):
        assert 0.0 <= m["test"][k] <= 1.0, k
    # the last epoch's test accuracy is the test block's count accuracy (same weights, same streams)
    assert m["epochs"][-1]["test_accuracy"] == pytest.approx(m["test"]["count_accuracy"])


def test_eval_prints_and_writes_the_same_test_block(detect_model, sound_data, capsys):
    code, out, err = _run(["eval", str(detect_model), "--data", sound_data], capsys)
    assert code == 0, err
    printed = json.loads(out.strip().splitlines()[-1])
    written = json.loads((detect_model / "eval.json").read_text())["test"]
    trained = json.loads((detect_model / "metrics.json").read_text())["test"]
    assert printed == written
    for k in ("count_accuracy", "stream_accuracy", "event_f1"):
        assert printed[k] == pytest.approx(trained[k]), k  # same model, same test streams


def _write_wav(path: Path, seconds: float = 2.0):
    import soundfile as sf

    from stca_engine.data import demo

    sr = 48000
    parts = [np.zeros(int(0.3 * sr), np.float32)]
    for c in (0, 1, 2):
        parts += [demo.synth_clip(c, 30).astype(np.float32), np.zeros(int(0.3 * sr), np.float32)]
    wave = np.concatenate(parts)
    wave = wave / np.abs(wave).max() * 0.8
    sf.write(path, wave, sr)
    return wave.size / sr


def test_detect_prints_events_and_json(detect_model, tmp_path, capsys):
    wav = tmp_path / "stream.wav"
    dur = _write_wav(wav)
    code, out, err = _run(["detect", str(detect_model), str(wav), "--json"], capsys)
    assert code == 0, err
    cfg_classes = json.loads((detect_model / "config.json").read_text())["class_names"]
    rows = [json.loads(line) for line in out.strip().splitlines() if line.strip()]
    assert rows, "the tiny model should detect something in a stream of three events"
    for r in rows:
        assert set(r) == {"file", "class", "start_s", "end_s", "n_spikes"}
        assert r["class"] in cfg_classes
        assert 0 <= r["start_s"] < r["end_s"] <= dur + 0.01 and r["n_spikes"] >= 1
    # chunked (0.5 s pieces, state carried) gives the same detections
    code, out2, err = _run(["detect", str(detect_model), str(wav), "--json", "--chunk-seconds", "0.5"], capsys)
    assert code == 0 and out2 == out
    code, table, err = _run(["detect", str(detect_model), str(wav)], capsys)
    assert code == 0 and table.splitlines()[0].split() == ["file", "class", "start_s", "end_s", "spikes"]
    assert len(table.strip().splitlines()) == 1 + len(rows)


def test_classify_digits_metrics_schema(tmp_path, capsys):
    out = tmp_path / "dig"
    code, _, err = _run(
        [
            "train",
            "--data",
            "digits",
            "--task",
            "classify",
            "--classes",
            "0,1,2",
            "--hidden",
            "20",
            "--epochs",
            "1",
            "--lr",
            "0.01",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["epochs"]) == 1
    for k in ("accuracy", "precision", "recall", "f1"):
        assert 0.0 <= m["test"][k] <= 1.0, k
    assert m["test"]["accuracy"] > 0.5  # one epoch already beats chance (1/3) on 8x8 digits 0-2
    # eval rebuilds the encoder (image rate coding) and the class subset from the saved model
    code, printed, err = _run(["eval", str(out), "--data", "digits"], capsys)
    assert code == 0, err
    again = json.loads(printed.strip().splitlines()[-1])
    for k in ("accuracy", "precision", "recall", "f1"):
        assert again[k] == pytest.approx(m["test"][k]), k


def test_encode_writes_spikegrams(tmp_path, capsys):
    wav = tmp_path / "a.wav"
    _write_wav(wav)
    npz = tmp_path / "out.npz"
    code, _, err = _run(["encode", str(wav), "--out", str(npz), "--encoder", "spectral"], capsys)
    assert code == 0, err
    trains, names, labels, class_names, enc = cli.load_spikegrams(npz)
    assert names == [str(wav)] and labels == [-1] and len(trains) == 1
    assert trains[0].n_spikes > 0 and enc["name"] == "spectral"
    assert trains[0].times.max() < trains[0].n_steps and trains[0].units.max() < trains[0].n_units


def test_spikegram_file_round_trip(tmp_path):
    from stca_engine.data.types import SpikeTrain

    a = SpikeTrain([0, 5, 9], [1, 2, 0], 4, 10, 3.0)
    b = SpikeTrain([], [], 4, 3, 3.0)
    cli.save_spikegrams(tmp_path / "x.npz", [a, b], ["a", "b"], [1, 0], ["x", "y"], {"name": "spectral"})
    trains, names, labels, classes, enc = cli.load_spikegrams(tmp_path / "x.npz")
    assert names == ["a", "b"] and labels == [1, 0] and classes == ["x", "y"] and enc == {"name": "spectral"}
    for got, want in zip(trains, (a, b)):
        np.testing.assert_array_equal(got.times, want.times)
        np.testing.assert_array_equal(got.units, want.units)
        assert (got.n_units, got.n_steps, got.dt_ms) == (want.n_units, want.n_steps, want.dt_ms)


@pytest.mark.parametrize("spec", ["nosuch", "rwcp:", "mnist:/definitely/not/here", "folder:/no/such/dir"])
def test_bad_data_spec_is_one_line_and_exit_2(spec, capsys):
    code, out, err = _run(["train", "--data", spec, "--task", "detect", "--epochs", "1"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stca: error: "), err
    assert "Traceback" not in err


def test_bad_model_folder_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "m"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    (bad / "model.safetensors").write_bytes(b"junk")
    code, out, err = _run(["detect", str(bad), str(tmp_path / "x.wav")], capsys)
    assert code == 2 and err.startswith("stca: error: ") and len(err.strip().splitlines()) == 1


def test_subprocess_errors_and_argparse_exit_codes(tmp_path):
    """The real ``python -m stca_engine`` process: StcaError -> exit 2 one line; argparse -> exit 2."""
    env = {**os.environ, "STCA_CACHE_DIR": str(tmp_path / "c")}
    env.pop("WORLD_SIZE", None)
    r = subprocess.run(
        [sys.executable, "-m", "stca_engine", "train", "--data", "bogus:thing", "--task", "detect"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr.startswith("stca: error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "stca_engine", "train", "--task", "detect"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2 and "--data" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "stca_engine", "train", "--data", "demo", "--task", "dance"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_training_error_keeps_last_good_weights_and_epochs(sound_data, tmp_path, monkeypatch, capsys):
    """A run the Trainer stops (NaN guard -> TrainingError) still leaves a loadable model with the
    epochs done so far, and the CLI says why in one line (exit 2)."""
    from stca_engine.checkpoint import load_model
    from stca_engine.errors import TrainingError
    from stca_engine.trainer import Trainer

    real = Trainer.step_epoch

    def failing(self, *a, **k):
        if self.epoch >= 1:
            raise TrainingError("epoch 2, batch 1: the loss became nan; training stopped", "training")
        return real(self, *a, **k)

    monkeypatch.setattr(Trainer, "step_epoch", failing)
    out = tmp_path / "m"
    code, _, err = _run(["train", "--data", sound_data, *TINY_DETECT, "--out", str(out)], capsys)
    assert code == 2 and err.startswith("stca: error: training: epoch 2") and len(err.strip().splitlines()) == 1
    m = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in m["epochs"]] == [1] and "loss became nan" in m["stopped"]
    net, info = load_model(out, device="cpu")
    assert info.extra["stopped"].startswith("training: epoch 2")


def test_epoch_line_warns_about_a_silent_network(sound_data, tmp_path, capsys):
    """Weights too small to make the hidden layer fire: with the paper's rule alone (--no-revive) the epoch
    line says so (even with --quiet) and the network stays silent; with revive (the default) it fires."""
    argv = ["train", "--data", sound_data, *TINY_DETECT, "--init-std", "1e-6", "--epochs", "2"]
    code, _, err = _run([*argv, "--no-revive", "--out", str(tmp_path / "m")], capsys)
    assert code == 0
    assert "stca: epoch 1:  WARNING: silent hidden 1, output (no spikes this epoch" in err
    assert "stca: epoch 2:  WARNING: silent hidden 1, output" in err
    assert "no step that depends on the weights" in err and "pushed up" not in err
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert [e["silent_layers"] for e in metrics["epochs"]] == [["hidden 1", "output"]] * 2
    assert [e["n_revived"] for e in metrics["epochs"]] == [0, 0]
    code = cli.main([*argv, "--no-revive", "--out", str(tmp_path / "m2")])
    err = capsys.readouterr().err
    assert code == 0 and "test accuracy" in err and "WARNING: silent hidden 1, output" in err
    # the default revives it: silent hidden neurons are pushed, and the network fires again
    code, _, err = _run([*argv, "--out", str(tmp_path / "rv")], capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "rv" / "metrics.json").read_text())
    assert metrics["epochs"][0]["n_revived"] > 0
    assert metrics["epochs"][-1]["silent_layers"] == []
    # a network that fires carries no warning
    code, _, err = _run(
        ["train", "--data", sound_data, *TINY_DETECT, "--epochs", "1", "--out", str(tmp_path / "ok")], capsys
    )
    assert code == 0 and "WARNING" not in err


def test_train_help_says_what_tdp1_is(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps (also at hyphens)
    assert "tdp1:aspike-countrulelikethe" in text and "notthethreshold-surfaceruleofTDP1'soriginalpaper" in text


def _column_starts(line: str) -> list[int]:
    import re

    return [m.start() for m in re.finditer(r"\S+", line)]


def test_detect_table_columns_stay_aligned_for_long_names(detect_model, tmp_path, capsys):
    wav = tmp_path / "a_rather_long_recording_name_from_a_field_trip_2026.wav"
    _write_wav(wav)
    code, table, err = _run(["detect", str(detect_model), str(wav)], capsys)
    assert code == 0, err
    lines = table.rstrip("\n").splitlines()
    assert len(lines) >= 2 and len(str(wav)) > 40  # longer than the old fixed 40-character column
    # every row's class column starts where the header's does, numbers end where the header's do
    head = lines[0]
    for line in lines[1:]:
        assert line.index(" ", len(str(wav))) + 1 == head.index("class")
        assert len(line) == len(head)
    # the pure formatter: a class name longer than the old 14-character column
    rows = [
        {"file": "a.wav", "class": "very_long_class_name_indeed", "start_s": 1.0, "end_s": 2.5, "n_spikes": 12},
        {"file": "bb.wav", "class": "x", "start_s": 10.25, "end_s": 100.0, "n_spikes": 3},
    ]
    out = cli.format_table(rows).splitlines()
    assert out[0].split() == ["file", "class", "start_s", "end_s", "spikes"]
    starts = [_column_starts(line) for line in out]
    assert starts[0][:2] == starts[1][:2] == starts[2][:2]
    assert len({len(line) for line in out}) == 1  # right-aligned numbers end in one column


def test_detect_writes_labels_and_scores_against_truth(detect_model, tmp_path, capsys):
    from stca_engine.labels import parse_audacity

    wav = tmp_path / "stream.wav"
    _write_wav(wav)
    code, out, err = _run(["detect", str(detect_model), str(wav), "--json"], capsys)
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert code == 0 and rows
    # Audacity label track, one file
    lab = tmp_path / "stream_labels.txt"
    code, out2, err = _run(["detect", str(detect_model), str(wav), "--json", "--labels-out", str(lab)], capsys)
    assert code == 0 and out2 == out  # --json output unchanged by --labels-out
    lines = lab.read_text().splitlines()
    assert lines == [f"{r['start_s']:.6f}\t{r['end_s']:.6f}\t{r['class']}" for r in rows]
    # CSV chosen by the extension
    csv_path = tmp_path / "stream.csv"
    assert _run(["detect", str(detect_model), str(wav), "--labels-out", str(csv_path)], capsys)[0] == 0
    csv_lines = csv_path.read_text().splitlines()
    assert csv_lines[0] == "file,class,start_s,end_s,n_spikes,peak_v" and len(csv_lines) == 1 + len(rows)
    # several recordings: a folder, one file per recording, named by the recording (same stems disambiguated)
    (tmp_path / "b").mkdir()
    wav2 = tmp_path / "b" / "stream.wav"
    _write_wav(wav2)
    outdir = tmp_path / "labels"
    assert _run(["detect", str(detect_model), str(wav), str(wav2), "--labels-out", str(outdir)], capsys)[0] == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["stream-2.txt", "stream.txt"]
    assert (outdir / "stream.txt").read_text() == lab.read_text()

    # ground truth = the detections themselves plus one event nobody detected -> recall < 1, precision 1
    truth = tmp_path / "truth.txt"
    truth.write_text("# ground truth\n" + lab.read_text() + "\\\t100.0\t2000.0\n9.0\t9.5\tbells\n")
    code, out, err = _run(["detect", str(detect_model), str(wav), "--truth", str(truth)], capsys)
    assert code == 0, err
    score_line = [line for line in out.splitlines() if line.startswith("score ")]
    n = len(rows)
    assert score_line == [
        f"score {wav}: precision 1.000  recall {n / (n + 1):.3f}  F1 {2 * n / (2 * n + 1):.3f}  "
        f"(hits {n}, false alarms 0, misses 1)"
    ]
    code, out, err = _run(["detect", str(detect_model), str(wav), "--truth", str(truth), "--json"], capsys)
    score = json.loads(out.strip().splitlines()[-1])
    assert score["file"] == str(wav) and (score["score"]["tp"], score["score"]["fn"]) == (n, 1)
    assert parse_audacity(truth.read_text())[-1]["class"] == "bells"
    # several recordings: truth is a folder of <stem>.txt; totals printed
    tdir = tmp_path / "truths"
    tdir.mkdir()
    (tdir / "stream.txt").write_text(lab.read_text())
    code, out, err = _run(
        ["detect", str(detect_model), str(wav), str(tmp_path / "stream_labels.txt"), "--truth", str(tdir)], capsys
    )
    assert code == 2 and "stream_labels.txt" in err  # the second recording has no truth file: named
    (tdir / "other.txt").write_text("")
    wav3 = tmp_path / "other.wav"
    _write_wav(wav3)
    code, out, err = _run(["detect", str(detect_model), str(wav), str(wav3), "--truth", str(tdir)], capsys)
    assert code == 0, err
    assert "score (all 2 recordings): precision" in out


def test_detect_bad_truth_file_is_one_line_naming_file_and_line(detect_model, tmp_path, capsys):
    wav = tmp_path / "stream.wav"
    _write_wav(wav)
    truth = tmp_path / "truth.txt"
    truth.write_text("0.5\t1.0\tbells\n\n1.0\tsoon\tbells\n")
    code, out, err = _run(["detect", str(detect_model), str(wav), "--truth", str(truth)], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"stca: error: {truth}: line 3: end time 'soon' is not a number (expected start<TAB>end<TAB>label in seconds)"
    ]
    code, out, err = _run(["detect", str(detect_model), str(wav), str(wav), "--labels-out", str(truth)], capsys)
    assert code == 2 and "must be a folder" in err


def test_paper_presets_fill_the_recipe_and_flags_win(tmp_path, capsys):
    """Issue #11 items 2-3: ``--preset mnist`` is Table 1's recipe (784-800-10 on MNIST; the offline
    8x8 digits give 64-800-10), ``--preset medleydb`` Table 2's 384-700-C with the margin readout."""
    from stca_engine.checkpoint import load_model

    out = tmp_path / "mnist"
    code, _, err = _run(["train", "--preset", "mnist", "--data", "digits", "--epochs", "0", "--out", str(out)], capsys)
    assert code == 0, err
    net, info = load_model(out, device="cpu")
    tc = info.train_config
    assert net.sizes == [64, 800, 10] and tc.task == "classify" and tc.objective == "stca"
    assert (tc.dropout, tc.lr_step_epoch, tc.lr_step_factor, tc.select) == (0.5, 50, 0.1, "last")
    assert net.cfg.tau_m_ms == 25.0 and net.cfg.tau_s_ms == 6.25  # tau_s = tau_m / 4
    # flags given as well win over the preset
    out2 = tmp_path / "mnist2"
    argv = ["train", "--preset", "mnist", "--data", "digits", "--epochs", "0", "--hidden", "40", "--tau-m-ms", "20"]
    code, _, err = _run([*argv, "--dropout", "0.2", "--out", str(out2)], capsys)
    assert code == 0, err
    net2, info2 = load_model(out2, device="cpu")
    assert net2.sizes == [64, 40, 10] and net2.cfg.tau_m_ms == 20.0 and info2.train_config.dropout == 0.2
    # the task comes from the preset; a contradicting --task is one clear error
    code, _, err = _run(["train", "--preset", "mnist", "--task", "detect", "--data", "demo", "--out", str(out)], capsys)
    assert code == 2 and "--preset mnist is for --task classify" in err
    code, _, err = _run(["train", "--data", "digits", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "--task is required" in err
    from stca_engine.defaults import preset_settings

    med = preset_settings("medleydb")
    assert (med["objective"], med["hidden"]) == ("margin", [700])
    assert preset_settings("medleydb-eq10")["objective"] == "stca"


def test_eval_per_event_scores_single_test_clips_by_the_highest_peak(detect_model, sound_data, capsys, tmp_path):
    """The authors' Fig. 4e metric: every test clip (one event) classified by the output whose V peaks highest."""

    from stca_engine.checkpoint import load_model
    from stca_engine.cli import _make_encoder, prepare

    code, out, err = _run(
        ["eval", str(detect_model), "--data", sound_data, "--per-event", "--out", str(tmp_path / "e.json")], capsys
    )
    assert code == 0, err
    block = json.loads(out.strip().splitlines()[-1])
    net, info = load_model(detect_model)
    enc = _make_encoder(info.encoder_settings)  # the model's own encoder (spectral here)
    _, clips, _ = prepare(sound_data, "classify", encoder=enc, seed=0, quiet=True, dt_ms=info.neuron_cfg.dt_ms)
    assert block["per_event_n"] == len(clips)
    right = 0
    for smp in clips:
        x = smp.spikes.to_dense().unsqueeze(1)
        v = net(x).voltages[-1].detach()[:, 0]
        right += int(int(v.max(dim=0).values.argmax()) == int(smp.target))
    assert block["per_event_accuracy"] == pytest.approx(right / len(clips))


def test_per_event_is_refused_for_a_classifier(sound_data, capsys, tmp_path):
    out = tmp_path / "cls"
    code, _, err = _run(
        ["train", "--data", sound_data, "--task", "classify", "--epochs", "1", "--hidden", "8", "--out", str(out)],
        capsys,
    )
    assert code == 0, err
    code, _, err = _run(["eval", str(out), "--data", sound_data, "--per-event"], capsys)
    assert code == 2 and "--per-event is for detection models" in err


def test_tdp1_spikes_and_a_single_layer_network_from_the_command_line(sound_data, capsys, tmp_path):
    out = tmp_path / "tdp1"
    argv = ["train", "--data", sound_data, "--task", "detect", "--objective", "tdp1", "--tdp1-spikes", "3"]
    code, _, err = _run(
        [*argv, "--hidden", "0", "--epochs", "1", "--streams", "8", "--test-streams", "4", "--out", str(out)], capsys
    )
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sizes"][1:] == [3] and cfg["train"]["tdp1_spikes"] == 3 and cfg["train"]["hidden"] == []
    code, _, err = _run(
        [
            "train",
            "--data",
            sound_data,
            "--task",
            "detect",
            "--tdp1-spikes",
            "3",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "x"),
        ],
        capsys,
    )
    assert code == 2 and "tdp1_spikes" in err  # only for objective tdp1
    code, _, err = _run(
        ["train", "--data", sound_data, "--task", "detect", "--hidden", "0", "16", "--out", str(tmp_path / "y")], capsys
    )
    assert code == 2 and "only allowed alone" in err
