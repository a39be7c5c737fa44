"""Issue #13 item 3 in a real Chromium: a .zip of class folders uploaded on the Data page, its clips
browsed, trained on the Train page (no server path typed), then events detected with that model on
the Detect page, all in one browser session."""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, wait_for_app

ARTIFACTS = REPO / "tests" / "artifacts"
SR = 16000
CLASSES = (("clap", 1600.0), ("hum", 180.0))


def _sound(f0: float, seconds: float = 0.35, k: int = 0) -> np.ndarray:
    """A take of a class: a harmonic tone on ``f0`` (hum) or a decaying noise burst above it (clap), a
    little different per take ``k`` (pitch, level, noise)."""
    rng = np.random.default_rng(1000 * int(f0) + k)
    t = np.arange(int(seconds * SR)) / SR
    if f0 < 1000:
        x = sum(np.sin(2 * np.pi * h * f0 * (1 + 0.02 * k) * t) / h for h in range(1, 8))
        x = x * np.hanning(t.size)
    else:
        x = np.diff(rng.normal(size=t.size + 1)) * np.exp(-t / 0.06)  # high-passed noise, fast decay
    x = x + 0.01 * rng.normal(size=t.size)
    return (0.5 * (0.8 + 0.1 * k) * x / np.abs(x).max()).astype(np.float32)


def _files(tmp_path):
    import io

    archive = tmp_path / "my_sounds.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for c, f0 in CLASSES:
            for i in range(4):
                buf = io.BytesIO()
                sf.write(buf, _sound(f0, k=i), SR, format="WAV")
                z.writestr(f"my sounds/{c}/take {i}.wav", buf.getvalue())
    gap = np.zeros(int(0.5 * SR), np.float32)
    stream = np.concatenate([gap, _sound(180.0, k=1), gap, _sound(1600.0, k=2), gap])
    recording = tmp_path / "my_recording.wav"
    sf.write(str(recording), stream, SR)
    truth = tmp_path / "my_recording.txt"  # an Audacity label track of what really is in the recording
    half, ev = len(gap) / SR, 0.35
    truth.write_text(f"{half:.6f}\t{half + ev:.6f}\thum\n{2 * half + ev:.6f}\t{2 * half + 2 * ev:.6f}\tclap\n")
    return archive, recording, truth


@pytest.mark.browser
def test_zip_of_class_folders_to_training_to_detection(streamlit_server, page, tmp_path):
    archive, recording, truth = _files(tmp_path)
    page.goto(f"{streamlit_server.url}/Data")
    wait_for_app(page)
    page.get_by_text("Upload files").first.click()
    page.locator('input[type="file"]').first.set_input_files(str(archive))
    page.get_by_text(re.compile(r"uploads.*2 classes, 4 train / 4 test clips")).first.wait_for(timeout=120_000)
    wait_for_app(page)
    assert page.get_by_role("button", name="Train on these sounds").count() == 1
    page.get_by_role("button", name="Train on these sounds").click()
    page.get_by_text("Train on my sounds (8 clips, 2 classes)").first.wait_for(timeout=60_000)
    wait_for_app(page)
    assert "data=uploads" in page.url
    page.get_by_role("button", name="Start").click()
    t0 = time.monotonic()
    while "Status: finished" not in page.inner_text("body") and time.monotonic() - t0 < 300:
        page.wait_for_timeout(1000)
    assert "Status: finished" in page.inner_text("body"), page.inner_text("body")[-2000:]
    wait_for_app(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    # the sidebar link keeps this browser session (and its model) while the page changes
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Detect").click()
    page.get_by_text("Detect sound events").first.wait_for(timeout=60_000)
    wait_for_app(page)
    page.get_by_text("clap, hum").first.wait_for(timeout=30_000)  # this session's model, its classes
    page.get_by_text("Upload a recording").first.click()
    wait_for_app(page)
    page.locator('input[type="file"]').first.set_input_files(str(recording))
    wait_for_app(page)
    page.locator('input[type="file"]').nth(1).set_input_files(str(truth))  # labels in: the ground truth
    page.get_by_text("2 labelled event(s) from").first.wait_for(timeout=30_000)
    wait_for_app(page)
    page.get_by_role("button", name="Find events").click()
    page.get_by_text("Download detections (CSV)").first.wait_for(timeout=180_000)
    wait_for_app(page)
    found = re.search(r"Found (\d+) event", page.inner_text("body"))
    assert found, "no detection summary on the page"
    # a hum, then a clap: the model trained on the user's takes finds both (seeded run: measured 2 of 2)
    assert int(found.group(1)) == 2, page.inner_text("body")[-1500:]
    body = page.inner_text("body")
    assert "Scored against my_recording.txt" in body and re.search(r"F1\s+1\.000", body), body[-2000:]
    # labels out: the Audacity track downloads with the two detections
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download labels (Audacity)").click()
    lines = Path(dl.value.path()).read_text().strip().splitlines()
    assert [ln.split("\t")[2] for ln in lines] == ["hum", "clap"]
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.inner_text("body")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 2000})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "own_sounds_detect.png"))
