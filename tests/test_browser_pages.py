"""Data, Detect and Neuron playground pages in a real headless Chromium: they render without an exception,
their main figures appear, and a full-page screenshot of each is kept under tests/artifacts/ for a human look."""

from __future__ import annotations

import pytest
from conftest import REPO, StreamlitServer, wait_for_app

ARTIFACTS = REPO / "tests" / "artifacts"


def _settle(page, timeout_ms: int = 180_000):
    wait_for_app(page, timeout_ms=timeout_ms)


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


@pytest.fixture
def server_with_saved_model(tmp_path):
    """A server whose runs/ folder holds one detection model (output 0 hears every afferent), so the Detect
    page has something to run."""
    import torch

    import stca_engine as se
    from stca_engine.checkpoint import save_model
    from stca_engine.data.demo import CLASSES
    from stca_engine.encoders import make_encoder

    enc = make_encoder("spectral")
    cfg = se.NeuronConfig()
    net = se.SNN([enc.n_units, 4], cfg, seed=0, init_std=0.0)
    with torch.no_grad():
        net.weights[0][0, :] = 0.4
        net.weights[0][2, : enc.n_units // 2] = 0.6  # low bands only
    save_model(
        tmp_path / "runs" / "demo-detector",
        net,
        cfg,
        class_names=list(CLASSES[:4]),
        encoder_settings=enc.settings(),
        task="detect",
        objective="stca",
    )
    server = StreamlitServer(
        env={
            "STCA_RUNS_DIR": str(tmp_path / "runs"),
            "STCA_CACHE_DIR": str(tmp_path / "cache"),
            "STCA_READY_MODEL": "",
        },  # the saved model, not the shipped one, is the default
        log_path=tmp_path / "server.log",
    )
    yield server
    server.stop()


@pytest.mark.browser
def test_detect_results_in_chromium(server_with_saved_model, page):
    _open(page, server_with_saved_model, "Detect", "Detect sound events")
    page.get_by_text("128-4 network").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Find events").click()
    page.get_by_text("Download detections (CSV)").first.wait_for(timeout=180_000)
    _settle(page)
    _no_exception(page)
    assert page.locator(".js-plotly-plot").count() >= 1
    _shot(page, "detect_results")
    page.get_by_role("tab", name="Output voltages").click()
    _settle(page)
    _no_exception(page)
    _shot(page, "detect_voltages")
