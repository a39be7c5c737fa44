"""Audio loading: formats, mono/resampling/normalisation, RWCP raw byte order, every bad-input message."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stca_engine.audio import (
    detect_pcm16_byteorder,
    load_audio,
    load_audio_bytes,
    read_raw_pcm16,
)
from stca_engine.errors import AudioError, StcaError


def tone(freq, seconds, sr, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def dominant_hz(x, sr=16000):
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return np.argmax(spec) * sr / x.size


@pytest.mark.parametrize(
    "ext,fmt,subtype",
    [
        ("wav", "WAV", "PCM_16"),
        ("wav", "WAV", "FLOAT"),
        ("flac", "FLAC", "PCM_24"),
        ("ogg", "OGG", "VORBIS"),
        ("mp3", "MP3", "MPEG_LAYER_III"),
    ],
)
def test_formats_rates_channels(tmp_path, ext, fmt, subtype):
    sr = 44100
    left = tone(440, 0.5, sr, 0.4)
    stereo = np.stack([left, 0.5 * left], axis=1)
    path = tmp_path / f"clip.{ext}"
    sf.write(path, stereo, sr, format=fmt, subtype=subtype)
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(x.size - 8000) <= 1200  # mp3/ogg encoders add a little padding
    assert np.max(np.abs(x)) == pytest.approx(1.0, abs=1e-6)
    assert dominant_hz(x) == pytest.approx(440, abs=5)
    # same through the upload path
    y = load_audio_bytes(path.read_bytes(), f"upload.{ext}")
    np.testing.assert_allclose(x, y, atol=1e-6)


def test_resampling_and_mono_mix_are_right(tmp_path):
    sr = 48000
    a, b = tone(300, 1.0, sr, 0.3), tone(2000, 1.0, sr, 0.3)
    sf.write(tmp_path / "s.wav", np.stack([a, b], 1), sr, subtype="FLOAT")
    x = load_audio(tmp_path / "s.wav")
    assert x.size == 16000
    # mono = (a + b) / 2, then peak 1: compare with the same mix at 16 kHz
    t = np.arange(16000) / 16000
    ref = 0.15 * np.sin(2 * np.pi * 300 * t) + 0.15 * np.sin(2 * np.pi * 2000 * t)
    ref /= np.max(np.abs(ref))
    np.testing.assert_allclose(x[200:-200], ref[200:-200], atol=2e-3)


def test_max_seconds_is_checked_before_decoding(tmp_path):
    sf.write(tmp_path / "long.wav", tone(100, 3.0, 8000), 8000)
    with pytest.raises(AudioError, match=r"long\.wav: too long: 3\.00 s \(the limit is 2 s\)"):
        load_audio(tmp_path / "long.wav", max_seconds=2)
    assert load_audio(tmp_path / "long.wav", max_seconds=3.5).size == 48000


def _write_nan_wav(path):
    x = tone(200, 0.2, 16000).astype(np.float32)
    x[100] = np.nan
    x[200] = np.inf
    sf.write(path, x, 16000, subtype="FLOAT")


@pytest.mark.parametrize(
    "name,make,message",
    [
        ("text.wav", lambda p: p.write_text("this is not audio\n" * 10), "not a readable audio file"),
        ("empty.wav", lambda p: p.write_bytes(b""), r"empty file \(0 bytes\)"),
        ("noframes.wav", lambda p: sf.write(p, np.zeros((0, 1)), 16000), "no audio samples"),
        ("zeros.wav", lambda p: sf.write(p, np.zeros(16000), 16000), "silent"),
        ("tiny.wav", lambda p: sf.write(p, np.full(16000, 1e-6), 16000, subtype="FLOAT"), "silent"),
        ("short.flac", lambda p: sf.write(p, tone(440, 0.02, 16000), 16000), r"too short: 20\.0 ms"),
        ("nan.wav", _write_nan_wav, r"2 NaN/inf samples"),
        ("garbage.mp3", lambda p: p.write_bytes(bytes(range(256)) * 40), "not a readable audio file"),
    ],
)
def test_bad_files_name_file_and_problem(tmp_path, name, make, message):
    p = tmp_path / name
    make(p)
    with pytest.raises(AudioError, match=message) as e:
        load_audio(p)
    assert str(p) in str(e.value) and e.value.path == str(p)
    if p.stat().st_size:  # the upload path reports the same problem under the upload's name
        with pytest.raises(AudioError, match=message) as e2:
            load_audio_bytes(p.read_bytes(), f"my {name}")
        assert str(e2.value).startswith(f"my {name}: ")


def test_missing_file_and_empty_upload(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match=r"up\.wav: empty upload"):
        load_audio_bytes(b"", "up.wav")


# ----------------------------------------------------------------------------- RWCP raw
def rwcp_like(seconds=1.0, sr=48000, seed=0):
    """A struck-object sound: silence with faint noise, then a decaying harmonic ring."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = rng.normal(0, 3, n)  # a few LSBs of room noise
    on = n // 5
    tt = t[: n - on]
    x[on:] += 9000 * np.exp(-6 * tt) * (np.sin(2 * np.pi * 1200 * tt) + 0.5 * np.sin(2 * np.pi * 3100 * tt))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("order", ["little", "big"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_raw_byteorder_detected_both_ways(tmp_path, order, seed):
    pcm = rwcp_like(seed=seed)
    p = tmp_path / "001.raw"
    p.write_bytes(pcm.astype("<i2" if order == "little" else ">i2").tobytes())
    assert detect_pcm16_byteorder(p.read_bytes())[0] == order
    x, used = read_raw_pcm16(p, return_byteorder=True)
    assert used == order
    assert x.dtype == np.float32 and x.size == 16000
    assert dominant_hz(x[4000:]) == pytest.approx(1200, abs=10)
    # the other reading is the near full-scale noise the detector rejects
    other = np.frombuffer(p.read_bytes(), dtype=">i2" if order == "little" else "<i2").astype(float)
    assert np.mean(np.abs(other)) > 10 * np.mean(np.abs(pcm.astype(float)))
    forced = read_raw_pcm16(p, byteorder=order)
    np.testing.assert_array_equal(forced, x)


def test_raw_bad_inputs(tmp_path):
    odd = tmp_path / "odd.raw"
    odd.write_bytes(b"\x01\x02\x03")
    with pytest.raises(AudioError, match=r"odd\.raw: odd number of bytes \(3\)"):
        read_raw_pcm16(odd)
    empty = tmp_path / "e.raw"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        read_raw_pcm16(empty)
    silent = tmp_path / "s.raw"
    silent.write_bytes(np.zeros(48000, "<i2").tobytes())
    with pytest.raises(AudioError, match="silent"):
        read_raw_pcm16(silent)
    short = tmp_path / "short.raw"
    short.write_bytes(rwcp_like(0.01).tobytes())
    with pytest.raises(AudioError, match="too short"):
        read_raw_pcm16(short)
    with pytest.raises(AudioError, match="byteorder"):
        read_raw_pcm16(short, byteorder="middle")
    long = tmp_path / "long.raw"
    long.write_bytes(rwcp_like(1.0).tobytes())
    with pytest.raises(AudioError, match="too long"):
        read_raw_pcm16(long, max_seconds=0.5)


# ----------------------------------------------------------------------------- properties
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rate=st.sampled_from([8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000]),
    channels=st.integers(1, 4),
    seconds=st.one_of(st.just(0.0), st.floats(0.0, 0.06), st.floats(0.06, 0.6), st.floats(0.06, 0.6)),
    amp=st.sampled_from([0.0, 1e-6, 1e-3, 0.5, 1.0]),
    fmt=st.sampled_from([("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_16")]),
    seed=st.integers(0, 2**16),
    as_upload=st.booleans(),
)
def test_load_audio_property(tmp_path, rate, channels, seconds, amp, fmt, seed, as_upload):
    ext, subtype = fmt
    frames = int(seconds * rate)
    rng = np.random.default_rng(seed)
    data = amp * rng.uniform(-1, 1, (frames, channels))
    path = tmp_path / f"p_{rate}_{channels}_{frames}.{ext}"
    sf.write(path, data, rate, subtype=subtype)
    try:
        x = load_audio_bytes(path.read_bytes(), path.name) if as_upload else load_audio(path)
    except AudioError as e:
        assert str(e).startswith(f"{path.name if as_upload else path}: ")
        seconds = frames / rate
        assert frames == 0 or seconds < 0.05 or amp <= 1e-6 or "silent" in str(e), str(e)
        event(f"AudioError: {e.problem.split(' ')[0]}")
        return
    except StcaError as e:  # pragma: no cover - any other StcaError would be the wrong class
        pytest.fail(f"wrong error class {type(e).__name__}: {e}")
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(x.size - frames * 16000 / rate) <= 1
    assert np.max(np.abs(x)) == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.isfinite(x))
    event("loaded")


def test_bytesio_upload_of_wav_matches_file(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, tone(1000, 0.3, 22050), 22050, format="WAV")
    x = load_audio_bytes(buf.getvalue(), "u.wav")
    assert x.size == 4800 and dominant_hz(x) == pytest.approx(1000, abs=5)


@pytest.mark.parametrize("order", ["little", "big"])
def test_byteorder_of_faint_noise_and_of_loud_clipped_sound(order):
    rng = np.random.default_rng(3)
    faint = np.round(rng.normal(0, 2, 48000)).astype(np.int16)  # white room noise, a few LSBs
    loud = np.clip(40000 * np.sin(2 * np.pi * 300 * np.arange(48000) / 48000), -32768, 32767).astype(np.int16)
    for pcm in (faint, loud):
        raw = pcm.astype("<i2" if order == "little" else ">i2").tobytes()
        got, conf = detect_pcm16_byteorder(raw)
        assert got == order and conf > 0.9
