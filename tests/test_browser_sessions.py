"""A real browser tab closed mid-training: the server stops that tab's run (issue #14 item C).

The Train page hands its worker ``components.session_alive_check()`` (Streamlit's
``Runtime.is_active_session`` for the page's own session); this drives it through a real server and
Chromium and reads the server's log, where the worker says why it stopped."""

from __future__ import annotations

import time

import pytest
from conftest import StreamlitServer, wait_for_app
from playwright.sync_api import expect


@pytest.mark.browser
def test_closing_the_tab_stops_its_training_run(chromium, tmp_path):
    log_path = tmp_path / "server.log"
    server = StreamlitServer(
        env={
            "STCA_CACHE_DIR": str(tmp_path / "cache"),
            "STCA_TAB_CLOSED_S": "2",
            "STCA_RUNS_DIR": str(tmp_path / "runs"),
        },
        log_path=log_path,
    )
    try:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(f"{server.url}/Train?preset=classroom-fast&epochs=500")
        wait_for_app(page)
        page.get_by_role("button", name="Start").click()
        # the run is under way (Pause enabled: preparing its data or training) when the tab goes
        expect(page.get_by_role("button", name="Pause")).to_be_enabled(timeout=120_000)
        context.close()
        t0 = time.monotonic()
        text = ""
        while time.monotonic() - t0 < 240:
            text = log_path.read_text(errors="replace")
            if "stopped: the browser tab was closed" in text:
                break
            time.sleep(0.5)
        assert "training run stca-train stopped: the browser tab was closed (its session was gone for 2 s)" in text, (
            text[-3000:]
        )
        assert "stopped polling" not in text
    finally:
        server.stop()


@pytest.mark.browser
def test_closing_the_tab_removes_its_upload_folder_on_a_quiet_server(chromium, tmp_path):
    """The last tab of a quiet server closes: no other disconnect ever flushes Streamlit's session
    store, so only the session reaper (``components.sessions``) can remove its upload folder."""
    import glob
    import os
    import tempfile

    import numpy as np
    import soundfile as sf

    wavs, sr = [], 16000
    t = np.arange(int(0.4 * sr)) / sr
    for name, f0 in (("bell", 880.0), ("horn", 220.0)):
        for i in (1, 2):
            p = tmp_path / f"{name}_{i:02d}.wav"
            sf.write(
                str(p), (0.5 * np.sin(2 * np.pi * f0 * (1 + 0.01 * i) * t) * np.hanning(t.size)).astype(np.float32), sr
            )
            wavs.append(str(p))
    log_path = tmp_path / "server.log"
    server = StreamlitServer(
        env={
            "STCA_CACHE_DIR": str(tmp_path / "cache"),
            "STCA_TAB_CLOSED_S": "2",
            "STCA_RUNS_DIR": str(tmp_path / "runs"),
        },
        log_path=log_path,
    )
    mine = os.path.join(tempfile.gettempdir(), f"stca_uploads_{server.proc.pid}_*")
    try:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(f"{server.url}/Data")
        wait_for_app(page)
        page.get_by_text("Upload files").first.click()
        page.locator('input[type="file"]').first.set_input_files(wavs)
        expect(page.get_by_text("bell_01.wav").first).to_be_visible(timeout=120_000)
        wait_for_app(page)
        assert glob.glob(mine), "the upload set was not stored in a session folder"
        context.close()
        t0 = time.monotonic()
        while glob.glob(mine) and time.monotonic() - t0 < 60:
            time.sleep(0.5)
        assert not glob.glob(mine), f"upload folder still there {time.monotonic() - t0:.0f} s after the tab closed"
        # the server is still fine for the next visitor
        context = chromium.new_context()
        page = context.new_page()
        page.goto(f"{server.url}/Data")
        wait_for_app(page)
        context.close()
    finally:
        server.stop()
