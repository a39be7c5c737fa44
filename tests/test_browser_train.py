"""The Train page in a real headless Chromium: classroom preset, Start, the epoch counter advances
while the page stays responsive, and a screenshot lands in tests/artifacts/ for a human to look at."""

from __future__ import annotations

import re
import time

import pytest
from conftest import REPO, wait_for_app
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ARTIFACTS = REPO / "tests" / "artifacts"
COUNTER = re.compile(r"Epoch (\d+) / (\d+)")


def epoch_counter(page):
    m = COUNTER.search(page.inner_text("body"))
    return (int(m.group(1)), int(m.group(2))) if m else None


def open_train_page(page, server, query: str = ""):
    page.goto(f"{server.url}/Train{query}")
    wait_for_app(page)
    page.get_by_role("button", name="Start").wait_for(timeout=60_000)


@pytest.mark.browser
def test_classroom_preset_trains_live_in_chromium(streamlit_server, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    open_train_page(page, streamlit_server, "?classroom=1")
    # choose the classroom preset explicitly in the sidebar select box
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Preset").first.wait_for()
    select = sidebar.locator('[data-testid="stSelectbox"]').first
    select.click()
    page.get_by_role("option", name="Classroom (fast)").click()
    wait_for_app(page)
    assert "preset=classroom-fast" in page.url and "classroom=1" in page.url
    page.get_by_role("button", name="Start").click()
    page.get_by_text(COUNTER).first.wait_for(timeout=120_000)
    first_seen = epoch_counter(page)
    assert first_seen is not None and first_seen[1] >= 3
    # wait (polling the DOM, as a user watching) until at least 3 epochs are drawn
    t0 = time.monotonic()
    counts = []
    while time.monotonic() - t0 < 300:
        c = epoch_counter(page)
        if c and (not counts or counts[-1] != c[0]):
            counts.append(c[0])
        if c and c[0] >= 3:
            break
        time.sleep(0.5)
    assert counts and counts[-1] >= 3, f"epoch counter stuck at {counts}"
    assert len(counts) >= 2, "the counter should advance on screen while training runs"
    # responsive while training: the replay slider and the figures are there, no exception box
    page.get_by_text("Learning curves").first.wait_for(timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    # the per-epoch redraw replaces the charts; wait for them to be drawn again
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=30_000)
    assert page.locator(".js-plotly-plot").count() >= 3
    pause = page.get_by_role("button", name="Pause")
    try:
        pause.click(timeout=5_000)
    except PlaywrightTimeoutError:
        # on a fast machine the classroom run may already have finished all its epochs
        assert pause.is_disabled(), "Pause is enabled but could not be clicked"
    wait_for_app(page)
    # Streamlit scrolls inside its main container: a tall viewport shows the whole page in one shot
    page.set_viewport_size({"width": 1400, "height": 3400})
    page.wait_for_timeout(2500)
    page.screenshot(path=str(ARTIFACTS / "train_classroom.png"), full_page=True)
    assert (ARTIFACTS / "train_classroom.png").stat().st_size > 50_000


@pytest.mark.browser
def test_shared_link_opens_the_same_settings(streamlit_server, page):
    open_train_page(page, streamlit_server, "?preset=paper&hidden=48&seed=5")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("The paper's detection setup").first.wait_for(timeout=10_000)  # the preset's description
    sidebar.get_by_text("Network", exact=True).click()
    assert sidebar.get_by_role("textbox", name="Hidden layer sizes").input_value() == "48"
    assert sidebar.get_by_role("spinbutton", name="Seed").input_value() == "5"
    assert "hidden=48" in page.url and "seed=5" in page.url


CREDIT_JS = """() => {
  const flat = (z) => {
    if (z && z.bdata) {  // Plotly's typed-array form, as sent by the server
      const bin = atob(z.bdata), u = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
      return Array.from(new ({f4: Float32Array, f8: Float64Array}[z.dtype])(u.buffer));
    }
    return Array.from(z).flatMap(r => Array.from(r));
  };
  const out = {};
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const rev = (gd.layout && gd.layout.uirevision) || '';
    if (!rev.startsWith('train.credit.hidden.')) continue;
    const z = flat(gd.data.find(t => t.type === 'heatmap').z);
    let sum = 0, sig = 0;
    for (const v of z) { sum += Math.abs(v); sig = (sig * 31 + Math.round(v * 1e6)) % 1000000007; }
    out[rev.split('.').pop()] = {sum: sum, n: z.length, sig: sig};
  }
  return out;
}"""


def credit_maps(page, timeout_s: float = 60.0) -> dict:
    """The hidden-layer credit heatmaps as drawn by Plotly in the page: per run, |z| summed and a signature."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        maps = page.evaluate(CREDIT_JS)
        if maps:
            return maps
        page.wait_for_timeout(500)
    return {}


@pytest.mark.browser
def test_credit_map_appears_and_changes_between_two_epochs(streamlit_server, page):
    """Step one epoch, see where the error goes; step another: the map is redrawn with new numbers."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    open_train_page(page, streamlit_server, "?preset=classroom-fast&seed=3&compare=1")
    for want in (1, 2):
        page.get_by_role("button", name="Step").click()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 180 and (epoch_counter(page) or (0,))[0] < want:
            page.wait_for_timeout(500)
        assert (epoch_counter(page) or (0,))[0] == want
        wait_for_app(page)
        page.get_by_text("Where the error goes").first.wait_for(timeout=60_000)
        page.get_by_role("button", name="Step").wait_for(timeout=60_000)
        maps = credit_maps(page)
        assert set(maps) == {"stca", "tdp1"}, maps  # STCA and TDP1 side by side
        assert all(m["n"] > 0 and m["sum"] > 0 for m in maps.values()), maps
        if want == 1:
            first = maps
        # wait until Step is enabled again (paused after the epoch)
        t0 = time.monotonic()
        while page.get_by_role("button", name="Step").is_disabled() and time.monotonic() - t0 < 60:
            page.wait_for_timeout(300)
    assert maps["stca"]["sig"] != first["stca"]["sig"], "the credit map did not change between epochs"
    assert page.locator('[data-testid="stException"]').count() == 0
    page.get_by_text("Where the error goes").first.scroll_into_view_if_needed()
    page.set_viewport_size({"width": 1400, "height": 2700})
    page.wait_for_timeout(1500)
    page.get_by_text("Where the error goes").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "train_credit.png"))
