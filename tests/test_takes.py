"""New takes of the training clips (``takes.py``): the sound changed before the encoder, so the network
trains on atoms another recording would give, never on the validation or test clips."""

import numpy as np
import pytest
import soundfile as sf

from stca_engine.data.clips import AudioClip
from stca_engine.data.sources import prepare_datasets
from stca_engine.errors import ConfigError
from stca_engine.takes import RATE_RANGE, make_take, pink_noise


def _tone(n=8000, sr=16000):
    t = np.arange(n) / sr
    return (np.sin(2 * np.pi * 440 * t) * np.hanning(n)).astype(np.float32)


def test_a_take_is_repeatable_peak_one_and_a_different_sound():
    x = _tone()
    a, b, c = make_take(x, 16000, [1, 2]), make_take(x, 16000, [1, 2]), make_take(x, 16000, [1, 3])
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and np.isclose(np.max(np.abs(a)), 1.0)
    for y in (a, c):  # the playback rate moves the length by at most RATE_RANGE
        assert abs(y.size / x.size - 1) <= RATE_RANGE / (1 - RATE_RANGE) + 1e-3
    # same sound: the take is still mostly the tone (correlation on the common length after rate change)
    spec_x = np.abs(np.fft.rfft(x, 16384))
    spec_a = np.abs(np.fft.rfft(a, 16384))
    f = np.fft.rfftfreq(16384, 1 / 16000)
    assert 400 < f[np.argmax(spec_a)] < 480 and f[np.argmax(spec_x)] == pytest.approx(440, abs=1)


def test_pink_noise_has_unit_rms_and_falls_with_frequency():
    n = pink_noise(1 << 15, np.random.default_rng(0))
    assert np.sqrt(np.mean(n**2)) == pytest.approx(1.0, rel=1e-6)
    p = np.abs(np.fft.rfft(n)) ** 2
    assert p[10:100].mean() > 10 * p[1000:10000].mean()


def test_a_clip_take_has_its_own_name_key_and_sound(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(str(path), _tone(), 16000)
    rec, take = AudioClip(str(path), "a"), AudioClip(str(path), "a", take=2)
    assert take.name == "a.wav~take2" and rec.name == "a.wav"
    assert take.content_key() != rec.content_key() != AudioClip(str(path), "a", take=3).content_key()
    assert not np.array_equal(take.load(), rec.load()) and np.array_equal(take.load(), take.load())
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="take"):
            AudioClip(str(path), "a", take=bad)


def test_takes_join_the_training_clips_only():
    kw = dict(seed=0, val_fraction=0.25, cache=False, classes=["bells", "horn"], n_per_class=8)
    train, test, info = prepare_datasets("demo", "classify", takes=2, **kw)
    plain, plain_test, plain_info = prepare_datasets("demo", "classify", **kw)
    names = lambda ds: [s.name for s in ds.samples]  # noqa: E731
    assert len(train) == 3 * len(plain) and info["n_train_takes"] == 2 * len(plain) and info["n_takes"] == 2
    recordings = [n for n in names(train) if "~take" not in n]
    assert sorted(recordings) == sorted(names(plain))
    assert sorted(n.split("~take")[0] for n in names(train) if "~take" in n) == sorted(2 * names(plain))
    assert names(test) == names(plain_test) and names(info["val"]) == names(plain_info["val"])
    assert not any("~take" in n for n in names(test) + names(info["val"]))
    for s in train.samples:  # each take keeps its recording's class
        if "~take" in s.name:
            twin = next(p for p in plain.samples if p.name == s.name.split("~take")[0])
            assert s.target == twin.target


def test_takes_are_checked_and_refused_for_images():
    with pytest.raises(ConfigError, match="takes"):
        prepare_datasets("demo", "classify", takes=-1, cache=False, classes=["bells", "horn"], n_per_class=4)
    with pytest.raises(ConfigError, match="for sound"):
        prepare_datasets("digits", "classify", takes=2)


def write_two_tone_folder(root, per_class: int) -> str:
    """A ``folder:`` tree of two classes (a low and a high tone, each clip a little detuned); its spec."""
    rng = np.random.default_rng(0)
    for c, f0 in (("low", 300.0), ("high", 2000.0)):
        (root / "data" / c).mkdir(parents=True)
        for k in range(per_class):
            t = np.arange(4000) / 16000
            wave = np.sin(2 * np.pi * f0 * (1 + 0.05 * k) * t) * np.hanning(t.size) + 0.01 * rng.standard_normal(t.size)
            sf.write(str(root / "data" / c / f"{k}.wav"), wave.astype(np.float32), 16000)
    return f"folder:{root / 'data'}"


def test_cli_trains_on_the_default_takes_and_takes_zero_turns_them_off(tmp_path, capsys, monkeypatch):
    from stca_engine import cli
    from stca_engine.defaults import REGULARISATION

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    data = write_two_tone_folder(tmp_path, 5)
    base = ["train", "--data", data, "--task", "classify", "--epochs", "1", "--hidden", "8"]
    assert cli.main([*base, "--out", str(tmp_path / "m1")]) == 0
    out = "".join(capsys.readouterr())
    n = REGULARISATION["takes"]
    assert n > 0 and f"({n} per training clip) join the training clips" in out
    assert cli.main([*base, "--takes", "0", "--out", str(tmp_path / "m0")]) == 0
    assert "new takes" not in "".join(capsys.readouterr())
    assert cli.main(["train", "--data", "digits", "--task", "classify", "--takes", "2", "--epochs", "1"]) != 0
    assert "for sound" in capsys.readouterr().err
