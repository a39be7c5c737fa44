"""The entry page renders: through AppTest and in a real headless Chromium."""

import pytest
from conftest import REPO, wait_for_app
from streamlit.testing.v1 import AppTest

import stca_engine as se


def test_home_apptest_shows_version_and_device():
    at = AppTest.from_file(str(REPO / "app" / "Home.py"), default_timeout=60).run()
    assert not at.exception
    text = " ".join(c.value for c in at.caption) + " ".join(m.value for m in at.sidebar.markdown)
    assert se.__version__ in text
    assert se.describe_device() in text


@pytest.mark.browser
def test_home_in_chromium(streamlit_server, page, tmp_path):
    page.goto(streamlit_server.url)
    wait_for_app(page)
    page.get_by_text("STCA Studio").first.wait_for(timeout=30_000)
    page.get_by_text(f"stca_engine {se.__version__}").first.wait_for(timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert se.__version__ in page.inner_text("body")
    shot = tmp_path / "home.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
