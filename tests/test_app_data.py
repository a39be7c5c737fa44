"""Data page through AppTest: the demo source loads, a clip is shown and encoded, settings re-encode live,
and bad folders give messages instead of tracebacks."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from conftest import REPO
from streamlit.testing.v1 import AppTest

PAGE = str(REPO / "app" / "pages" / "1_Data.py")


def _run():
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_demo_clip_browser_and_live_reencode():
    at = _run()
    assert at.radio(key="data.source").value == "Built-in demo"
    from stca_engine.data.demo import CLASSES

    assert sorted(at.selectbox(key="data.class").options) == sorted(CLASSES)
    enc = at.session_state["data.encoded"]
    assert enc["settings"]["name"] == "spectral"
    # spectral afferents = frequency bands × loudness levels
    assert enc["n_units"] == enc["settings"]["n_bands"] * enc["settings"]["n_levels"]
    assert enc["n_spikes"] > 0
    charts_before = len(at.get("plotly_chart"))
    assert charts_before >= 5  # waveform, spectrogram, raster, stream waveform, stream raster
    assert len(at.get("audio")) == 1

    at.slider(key="data.enc.spectral.n_levels").set_value(2).run()
    assert not at.exception and not at.error
    enc2 = at.session_state["data.encoded"]
    assert enc2["n_units"] == enc["settings"]["n_bands"] * 2

    at.selectbox(key="data.encoder").set_value("spikegram").run()
    assert not at.exception and not at.error
    enc3 = at.session_state["data.encoded"]
    assert enc3["n_units"] == enc3["settings"]["n_kernels"] * enc3["settings"]["n_bins"]
    assert "snr_db" in enc3["report"]
    budget = enc3["n_spikes"]
    at.slider(key="data.enc.spikegram.spikes_per_second").set_value(200.0).run()
    assert at.session_state["data.encoded"]["n_spikes"] < budget
    assert any("reconstruction SNR" in c.value for c in at.caption)


def test_other_class_and_clip():
    at = _run()
    at.selectbox(key="data.class").set_value("horn").run()
    assert not at.exception and not at.error
    clip_box = at.selectbox(key="data.clip")
    assert len(clip_box.options) >= 2 and all("(train)" in o or "(test)" in o for o in clip_box.options)


def test_folder_outside_allowed_roots_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("STCA_DATA_ROOTS", str(tmp_path / "allowed"))
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    at.radio(key="data.source").set_value("RWCP folder").run()
    at.text_input(key="data.path").input("/etc").run()
    assert not at.exception
    assert any("outside the allowed data folders" in e.value for e in at.error)


def test_generic_folder_source(monkeypatch, tmp_path):
    monkeypatch.setenv("STCA_DATA_ROOTS", str(tmp_path))
    sr = 16000
    for cls, f in (("low", 300.0), ("high", 2000.0)):
        (tmp_path / "set" / cls).mkdir(parents=True)
        for k in range(2):
            t = np.arange(int(0.4 * sr)) / sr
            sf.write(
                tmp_path / "set" / cls / f"{cls}{k}.wav",
                (0.5 * np.sin(2 * np.pi * f * (1 + 0.1 * k) * t)).astype(np.float32),
                sr,
            )
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    at.radio(key="data.source").set_value("Folder of class sub-folders").run()
    at.text_input(key="data.path").input(str(tmp_path / "set")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert set(at.selectbox(key="data.class").options) == {"low", "high"}
    assert at.session_state["data.encoded"]["n_spikes"] > 0


def test_uploads_source():
    sr = 16000
    files = []
    for name, f in (("bell_1.wav", 900.0), ("bell_2.wav", 950.0), ("horn_1.wav", 200.0), ("horn_2.wav", 220.0)):
        t = np.arange(int(0.3 * sr)) / sr
        buf = io.BytesIO()
        sf.write(buf, (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr, format="WAV")
        files.append((name, buf.getvalue(), "audio/wav"))
    at = _run()
    at.radio(key="data.source").set_value("Upload files").run()
    at.file_uploader(key="data.uploads").set_value(files).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert set(at.selectbox(key="data.class").options) == {"bell", "horn"}


def test_user_errors_show_messages_never_tracebacks():
    script = f"""
import sys
sys.path.insert(0, {str(REPO / "app")!r})
import streamlit as st
from components import user_errors
from stca_engine.errors import DatasetError
with user_errors("loading"):
    raise DatasetError("no class folders found", "/data/rwcp")
with user_errors("plotting"):
    raise ZeroDivisionError("division by zero")
st.write("still rendering")
"""
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception
    assert at.error[0].value == "/data/rwcp: no class folders found"
    assert "while plotting" in at.error[1].value and "ZeroDivisionError" in at.error[1].value
    assert "Traceback" not in at.error[1].value
    assert at.markdown[-1].value == "still rendering"


def _take(f0: float, sr: int = 16000) -> bytes:
    t = np.arange(int(0.4 * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.5 * np.sin(2 * np.pi * f0 * t) * np.hanning(t.size)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def test_microphone_takes_with_a_class_each_become_a_browsable_set():
    """Issue #13 item 2: record in the browser (``st.audio_input``), name the class, add; two takes of a
    class make a set whose clips are browsed and encoded like uploads."""
    at = _run()
    at.radio(key="data.source").set_value("Record with the microphone").run()
    assert not at.exception and not at.error
    assert at.button(key="data.mic_add").disabled  # nothing recorded yet
    at.text_input(key="data.mic_label").set_value("clap").run()
    for f0 in (700.0, 760.0):
        at.audio_input(key="data.mic").set_value(("take.wav", _take(f0), "audio/wav")).run()
        at.button(key="data.mic_add").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
    assert [c for _, _, c in at.session_state["data.mic_takes"]] == ["clap", "clap"]
    assert at.selectbox(key="data.class").options == ["clap"]
    assert at.session_state["data.encoded"]["n_spikes"] > 0  # its spikegram was drawn
    at.button(key="data.mic_clear").click().run()
    assert not at.exception and at.session_state["data.mic_takes"] == []


def test_a_bad_microphone_take_is_a_message():
    at = _run()
    at.radio(key="data.source").set_value("Record with the microphone").run()
    at.text_input(key="data.mic_label").set_value("clap").run()
    at.audio_input(key="data.mic").set_value(("take.wav", b"RIFF-not-audio", "audio/wav")).run()
    at.button(key="data.mic_add").click().run()
    at.audio_input(key="data.mic").set_value(("take.wav", b"RIFF-not-audio-2", "audio/wav")).run()
    at.button(key="data.mic_add").click().run()
    assert not at.exception
    assert any(
        "no class with at least two usable uploads" in e.value and "not a readable audio file" in e.value
        for e in at.error
    ), [e.value for e in at.error]


def _zip_of_class_folders(classes=(("bell", 900.0), ("horn", 200.0)), n=3) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for c, f0 in classes:
            for i in range(n):
                z.writestr(f"my sounds/{c}/take {i}.wav", _take(f0 + 25 * i))
    return buf.getvalue()


def test_a_zip_of_class_folders_is_a_browsable_set_and_goes_to_the_train_page():
    """Issue #13 item 3: upload a .zip of class folders, see its clips, hand it to the Train page."""
    at = AppTest.from_file(str(REPO / "app" / "Home.py"), default_timeout=300).run()
    at.switch_page("pages/1_Data.py").run()  # from the app's entry point, so the page can switch on
    at.radio(key="data.source").set_value("Upload files").run()
    at.file_uploader(key="data.uploads").set_value([("sounds.zip", _zip_of_class_folders(), "application/zip")]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert set(at.selectbox(key="data.class").options) == {"bell", "horn"}
    held = at.session_state["data.upload_set"][1]
    assert len(held.clips) == 6 and held.source == "uploads"
    at.button(key="data.train_on_uploads").click().run()
    assert not at.exception, at.exception
    assert at.session_state["train.settings"].data == "uploads"
    assert any("Train on my sounds (6 clips, 2 classes)" == t.label for t in at.toggle)  # now on the Train page
    assert at.toggle(key="train.use_uploads").value is True
