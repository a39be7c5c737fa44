"""The microphone on the Detect page in real Chromium (issue #13 item 2).

Chromium's fake capture device plays a WAV file as the microphone (``--use-file-for-fake-audio-capture``,
with ``--use-fake-ui-for-media-stream`` granting the permission): the test presses the audio input's
Record button, lets it record a demo whistle, presses Stop, and the shipped demo model finds the event in
what the browser recorded and sent to the server."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import CHROMIUM, CHROMIUM_ARGS, REPO, StreamlitServer, wait_for_app
from playwright.sync_api import expect, sync_playwright


def _fake_microphone_wav(path):
    from stca_engine.audio import read_raw_pcm16

    clip = sorted((REPO / "assets" / "demo" / "nospeech" / "drysrc" / "demo" / "whistle").rglob("*.raw"))[0]
    sr = 48000
    wave = read_raw_pcm16(clip, sr=sr)
    silence = np.zeros(int(0.6 * sr), np.float32)
    x = np.concatenate([silence, 0.8 * wave / max(1e-9, float(np.abs(wave).max())), silence, silence])
    sf.write(str(path), x.astype(np.float32), sr, subtype="PCM_16")


@pytest.mark.browser
def test_recording_with_the_microphone_finds_the_event_in_it(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install it with `apt-get install -y chromium`")
    wav = tmp_path / "mic.wav"
    _fake_microphone_wav(wav)
    server = StreamlitServer(env={"STCA_CACHE_DIR": str(tmp_path / "cache")}, log_path=tmp_path / "server.log")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS
                + [
                    "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-audio-capture={wav}",
                ],
            )
            page = browser.new_context(permissions=["microphone"]).new_page()
            page.goto(f"{server.url}/Detect")
            wait_for_app(page)
            page.get_by_text("Record with the microphone").click()
            wait_for_app(page)
            mic = page.locator('[data-testid="stAudioInput"]')
            mic.get_by_role("button", name="Record").click()
            time.sleep(3.0)
            mic.get_by_role("button", name="Stop recording").click()
            wait_for_app(page)
            find = page.get_by_role("button", name="Find events")
            expect(find).to_be_enabled(timeout=60_000)
            find.click()
            done = page.get_by_text(re.compile(r"Found \d+ event\(s\) in [0-9.]+ s of audio"))
            expect(done).to_be_visible(timeout=180_000)
            text = done.inner_text()
            n, secs = (float(v) for v in re.findall(r"[0-9.]+", text)[:2])
            assert secs >= 2.0, text  # the browser's recording reached the server
            assert n >= 1, f"{text}: the demo model found nothing in the recorded whistle"
            browser.close()
    finally:
        server.stop()
