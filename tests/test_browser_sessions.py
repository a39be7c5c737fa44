"""A real browser tab closed mid-training: the server stops that tab's run (issue #14 item C).

The Train page hands its worker ``components.session_alive_check()`` (Streamlit's
``Runtime.is_active_session`` for the page's own session); this drives it through a real server and
Chromium and reads the server's log, where the worker says why it stopped."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from conftest import StreamlitServer, wait_for_app


@pytest.mark.browser
def test_closing_the_tab_stops_its_training_run(chromium, tmp_path):
    log_path = tmp_path / "server.log"
    server = StreamlitServer(env={"STCA_CACHE_DIR": str(tmp_path / "cache"), "STCA_TAB_CLOSED_S": "2",
                                  "STCA_RUNS_DIR": str(tmp_path / "runs")}, log_path=log_path)
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
        assert "training run stca-train stopped: the browser tab was closed (its session was gone for 2 s)" in text, \
            text[-3000:]
        assert "stopped polling" not in text
    finally:
        server.stop()
