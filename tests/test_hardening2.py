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
        w[a:a + n] += rng.standard_normal(n) * 0.5 * np.hanning(n)
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
        trains[chunk] = encode_recording(wave, SR, enc, progress=lambda d, t, m: calls.append((d, t)))
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
    model = save_model(tmp_path / "m", _onset_detector(enc.n_units), NeuronConfig(), class_names=["onset"],
                       encoder_settings=enc.settings(), task="detect", objective="stca")
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
    wave[int(2.6 * SR):int(2.8 * SR)] += 0.4
    enc = make_encoder("spikegram", spikes_per_second=300, chunk_seconds=1.5)
    out = {}
    for chunk in ("1", "1000"):
        monkeypatch.setenv("STCA_CHUNK_SECONDS", chunk)
        out[chunk] = encode_recording(wave, SR, enc)
    assert out["1000"].n_spikes > 0
    np.testing.assert_array_equal(out["1"].times, out["1000"].times)
    np.testing.assert_array_equal(out["1"].units, out["1000"].units)
