"""Detect page through AppTest: a known model on a known recording gives the events we can predict."""

from __future__ import annotations

import io
import sys

import numpy as np
import soundfile as sf
import torch
from conftest import REPO
from streamlit.testing.v1 import AppTest

import stca_engine as se

sys.path.insert(0, str(REPO / "app"))
from models_ui import make_model  # noqa: E402

PAGE = str(REPO / "app" / "pages" / "3_Detect.py")
SR = 16000
BURSTS_S = (0.5, 1.7)


def _burst_wav() -> bytes:
    """Three seconds with two 100 ms tone bursts (shorter than T_in, so each is one spike cluster)."""
    t = np.arange(int(0.1 * SR)) / SR
    burst = 0.8 * np.sin(2 * np.pi * 800 * t) * np.hanning(t.size)
    wave = np.zeros(3 * SR)
    for on in BURSTS_S:
        a = int(on * SR)
        wave[a : a + burst.size] = burst
    buf = io.BytesIO()
    sf.write(buf, wave.astype(np.float32), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _model(classes=("bell", "horn", "ring")):
    """Output 0 listens to every afferent with weight 0.5, the others to nothing: only 'bell' can fire."""
    from stca_engine.encoders import make_encoder

    enc = make_encoder("spectral")
    cfg = se.NeuronConfig()
    net = se.SNN([enc.n_units, len(classes)], cfg, seed=0, init_std=0.0)
    with torch.no_grad():
        net.weights[0][0, :] = 0.5
    return make_model(net, cfg, list(classes), enc.settings(), "detect", "stca")


def test_upload_detects_the_two_bursts_and_offers_csv():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["trained_model"] = _model()
    at.run()
    assert not at.exception
    assert at.radio(key="detect.model_src").value == "This session's model"
    at.radio(key="detect.audio_src").set_value("Upload a recording").run()
    at.file_uploader(key="detect.upload").set_value(("two_bursts.wav", _burst_wav(), "audio/wav")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="detect.run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    events = at.session_state["detect.output"]["result"].events
    assert [e["class"] for e in events] == ["bell", "bell"]
    for ev, onset in zip(events, BURSTS_S):
        assert onset - 0.01 <= ev["start_s"] <= onset + 0.1
    table = at.dataframe[0].value
    assert list(table["class"]) == ["bell", "bell"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"bell": "2", "horn": "0", "ring": "0"}
    labels = {b.proto.label for b in at.get("download_button")}
    assert labels == {"Download labels (Audacity)", "Download detections (CSV)"}


def test_demo_stream_runs_and_shows_true_events():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["trained_model"] = _model(("bells", "whistle", "horn"))
    at.run()
    at.slider(key="detect.demo_events").set_value(3).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="detect.run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    out = at.session_state["detect.output"]
    assert out["result"].n_steps > 0
    assert any("true events: 3" in s.value for s in at.success)
    assert len(at.get("plotly_chart")) >= 4  # timeline, spectrogram, voltages, waveform tabs


def test_bad_upload_is_a_message_not_a_traceback():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["trained_model"] = _model()
    at.run()
    at.radio(key="detect.audio_src").set_value("Upload a recording").run()
    at.file_uploader(key="detect.upload").set_value(("noise.wav", b"this is not audio", "audio/wav")).run()
    assert not at.exception
    assert any("noise.wav" in e.value for e in at.error)


def test_model_from_a_checkpoint_zip(tmp_path):
    from stca_engine.checkpoint import model_to_zip_bytes

    m = _model()
    data = model_to_zip_bytes(
        m["net"],
        m["neuron_cfg"],
        class_names=m["class_names"],
        encoder_settings=m["encoder_settings"],
        task="detect",
        objective="stca",
    )
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    at.radio(key="detect.model_src").set_value("Upload a model .zip").run()
    at.file_uploader(key="detect.model_zip").set_value(("m.zip", data, "application/zip")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("3 classes (bell, horn, ring)" in s.value for s in at.success)
    at.file_uploader(key="detect.model_zip").set_value(("broken.zip", data[:100], "application/zip")).run()
    assert not at.exception
    assert any("broken.zip" in e.value for e in at.error)


def test_long_recordings_are_encoded_in_pieces_like_one_piece(monkeypatch):
    """With 1 s pieces the chunked encoding of the two-burst recording has the same spikes as encoding
    it whole, on the same time axis."""
    from components.encoding import encoder_from_settings

    from stca_engine.detect import encode_recording
    from stca_engine.encoders import make_encoder

    wave, sr = sf.read(io.BytesIO(_burst_wav()), dtype="float32")
    enc = encoder_from_settings(make_encoder("spectral").settings())
    whole = encode_recording(wave, sr, enc, segment=False)
    monkeypatch.setenv("STCA_CHUNK_SECONDS", "1")
    calls = []
    pieces = encode_recording(wave, sr, enc, segment=False, progress=lambda d, t, m: calls.append((d, t)))
    assert calls == [(i, 6) for i in range(1, 7)]  # 3 pieces, two passes (level, then spikes)
    assert whole.n_steps == pieces.n_steps == 1000 and pieces.n_units == whole.n_units
    assert pieces.n_spikes == whole.n_spikes > 0
    np.testing.assert_array_equal(pieces.times, whole.times)
    np.testing.assert_array_equal(pieces.units, whole.units)
    # the spikes sit on the bursts (0.5 s and 1.7 s), nowhere else
    secs = pieces.times * 3.0 / 1000
    assert np.all(((secs > 0.45) & (secs < 0.65)) | ((secs > 1.65) & (secs < 1.85)))


def _timeline_traces(at) -> dict:
    import json

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {t.get("name"): t for t in spec["data"]}


def test_uploaded_truth_labels_are_scored_and_drawn():
    # truth: the first burst as a bell (hit), the second as a horn (missed; its bell detection is a false alarm)
    truth = (
        "# two bursts\n"
        f"{BURSTS_S[0]:.6f}\t{BURSTS_S[0] + 0.1:.6f}\tbell\n"
        "\\\t300.0\t1200.0\n"
        f"{BURSTS_S[1]:.6f}\t{BURSTS_S[1] + 0.1:.6f}\thorn\n"
    )
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["trained_model"] = _model()
    at.run()
    at.radio(key="detect.audio_src").set_value("Upload a recording").run()
    at.file_uploader(key="detect.upload").set_value(("two_bursts.wav", _burst_wav(), "audio/wav")).run()
    at.file_uploader(key="detect.truth").set_value(("two_bursts.txt", truth.encode(), "text/plain")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="detect.run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["hits"], metrics["false alarms"], metrics["misses"]) == ("1", "1", "1")
    assert (metrics["precision"], metrics["recall"], metrics["F1"]) == ("0.500", "0.500", "0.500")
    traces = _timeline_traces(at)
    assert traces["hit (1)"]["y"] == ["bell"]
    assert traces["missed event (1)"]["y"] == ["horn"]
    assert traces["false alarm (1)"]["y"] == ["bell"]
    assert traces["false alarm (1)"]["x"][0] > BURSTS_S[1]
    # a wider tolerance does not turn a wrong-class detection into a hit
    at.slider(key="detect.tolerance").set_value(0.5).run()
    assert {m.label: m.value for m in at.metric}["hits"] == "1"


def test_bad_truth_labels_are_a_message_naming_the_line():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["trained_model"] = _model()
    at.run()
    at.file_uploader(key="detect.truth").set_value(
        ("truth.txt", b"0.5\t0.6\tbell\n0.7 later bell\n", "text/plain")
    ).run()
    assert not at.exception
    assert any("truth.txt: line 2: end time 'later' is not a number" in e.value for e in at.error), [
        e.value for e in at.error
    ]


def test_demo_stream_is_scored_against_its_own_events():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["trained_model"] = _model(("bells", "whistle", "horn"))
    at.run()
    at.slider(key="detect.demo_events").set_value(3).run()
    at.button(key="detect.run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    out = at.session_state["detect.output"]["result"]
    assert int(metrics["hits"]) + int(metrics["misses"]) == 3
    assert int(metrics["hits"]) + int(metrics["false alarms"]) == len(out.events)
    names = set(_timeline_traces(at))
    assert {"true event", f"missed event ({metrics['misses']})", f"hit ({metrics['hits']})"} <= names


def test_ready_demo_model_is_shipped_small_and_selected_by_default(monkeypatch):
    import models_ui as mu

    from stca_engine.data.demo import CLASSES

    monkeypatch.delenv("STCA_READY_MODEL", raising=False)
    folder = mu.ready_model_dir()
    assert mu.has_ready_model(), f"{folder} should hold the model made by scripts/make_demo_model.py"
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 2 * 1024 * 1024
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.radio(key="detect.model_src").value == "Ready demo model"
    at.slider(key="detect.demo_events").set_value(5).run()
    at.button(key="detect.run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    model = at.session_state["detect.loaded"][("ready",)]
    assert model["task"] == "detect" and sorted(model["class_names"]) == sorted(CLASSES)
    metrics = {m.label: m.value for m in at.metric}
    # a trained model: it finds most events of a demo stream it never saw
    assert int(metrics["hits"]) >= 3, metrics


def test_without_a_ready_model_the_saved_models_are_the_default(monkeypatch):
    monkeypatch.setenv("STCA_READY_MODEL", "")
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    assert not at.exception
    radio = at.radio(key="detect.model_src")
    assert radio.value == "Saved model (runs/)" and "Ready demo model" not in radio.options


def test_microphone_recording_is_searched_like_an_upload():
    """Issue #13 item 2: ``st.audio_input`` on the Detect page; AppTest hands it a recorded WAV."""
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["trained_model"] = _model()
    at.run()
    at.radio(key="detect.audio_src").set_value("Record with the microphone").run()
    assert not at.exception and not at.error
    assert len(at.audio_input) == 1
    at.audio_input(key="detect.mic").set_value(("recording.wav", _burst_wav(), "audio/wav")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="detect.run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    events = at.session_state["detect.output"]["result"].events
    assert [e["class"] for e in events] == ["bell", "bell"]
    assert at.session_state["detect.upload_audio"]["name"] == "microphone recording"


def test_a_bad_microphone_recording_is_a_message_not_a_traceback():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["trained_model"] = _model()
    at.run()
    at.radio(key="detect.audio_src").set_value("Record with the microphone").run()
    at.audio_input(key="detect.mic").set_value(("recording.wav", b"RIFF....not a wav", "audio/wav")).run()
    assert not at.exception
    assert any("recording.wav: not a readable audio file" in e.value for e in at.error), [e.value for e in at.error]
