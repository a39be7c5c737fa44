"""Data, Detect and Neuron playground pages in a real headless Chromium: they render without an exception,
their main figures appear, and a full-page screenshot of each is kept under tests/artifacts/ for a human look."""
from __future__ import annotations

import pytest

from conftest import REPO, wait_for_app

ARTIFACTS = REPO / "tests" / "artifacts"


def _settle(page, timeout_ms: int = 180_000):
    """Wait until the script run is over: this Streamlit shows a 'Stop' control (not 'Running') meanwhile."""
    wait_for_app(page, timeout_ms=timeout_ms)
    page.wait_for_function(
        """() => { const s = document.querySelector('[data-testid="stStatusWidget"]');
                   return !s || !(s.innerText.includes('Stop') || s.innerText.includes('Running')); }""",
        timeout=timeout_ms,
    )


def _open(page, server, path: str, heading: str):
    page.goto(f"{server.url}/{path}")
    page.locator('[data-testid="stMain"]').get_by_text(heading).first.wait_for(timeout=120_000)
    _settle(page)


def _shot(page, name: str):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    # Streamlit scrolls inside its main container, so grow the viewport to the content to see it all
    height = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
                                      return m ? m.scrollHeight : document.body.scrollHeight; }""")
    page.set_viewport_size({"width": 1400, "height": min(max(int(height) + 40, 1000), 6000)})
    page.wait_for_timeout(1500)  # let Plotly redraw at the new size
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    return shot


def _no_exception(page):
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.inner_text("body")


@pytest.mark.browser
def test_home_links_to_every_page(streamlit_server, page):
    _open(page, streamlit_server, "", "STCA in one minute")
    _no_exception(page)
    for name in ("Data", "Detect", "Neuron playground"):
        assert page.get_by_text(name).count() > 0
    _shot(page, "home_overview")


@pytest.mark.browser
def test_playground_in_chromium(streamlit_server, page):
    _open(page, streamlit_server, "Neuron_playground", "Neuron playground")
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    _no_exception(page)
    _shot(page, "playground")
    page.get_by_role("button", name="Apply one STCA update").click()
    _settle(page)
    page.get_by_text("V after update").first.wait_for(timeout=60_000)
    _no_exception(page)
    _shot(page, "playground_after_update")


@pytest.mark.browser
def test_data_page_in_chromium(streamlit_server, page):
    _open(page, streamlit_server, "Data", "Sounds and spikes")
    page.get_by_text("Encode into spikes").first.wait_for(timeout=180_000)
    _settle(page)
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=120_000)
    _no_exception(page)
    _shot(page, "data")


@pytest.mark.browser
def test_detect_page_in_chromium(streamlit_server, page):
    _open(page, streamlit_server, "Detect", "Detect sound events")
    _no_exception(page)
    _shot(page, "detect_empty")
