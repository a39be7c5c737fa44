"""Shared fixtures: a real Streamlit server and a headless Chromium page driving it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# `streamlit run app/Home.py` puts app/ (the main script's folder) on sys.path for every page; AppTest runs
# a page file on its own, so the tests do what Streamlit does
if str(REPO / "app") not in sys.path:
    sys.path.insert(0, str(REPO / "app"))
CHROMIUM = os.environ.get("STCA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """`streamlit run app/Home.py` headless on a free local port; stopped with the fixture."""

    def __init__(self, env: dict[str, str] | None = None, log_path: Path | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO / "app" / "Home.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(self.port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ]
        full_env = {**os.environ, **(env or {})}
        # as `make app` starts it: glibc reads the arena cap at process start (kernels.cpu.limit_heap_arenas)
        from stca_engine.kernels.cpu import DEFAULT_MALLOC_ARENAS, ENV_MALLOC_ARENAS

        full_env.setdefault("MALLOC_ARENA_MAX", full_env.get(ENV_MALLOC_ARENAS, str(DEFAULT_MALLOC_ARENAS)))
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        self.first_ready_s = self._wait_healthy()

    def _wait_healthy(self, timeout: float = 90.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early with code {self.proc.returncode}; log: {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                time.sleep(0.25)
        raise RuntimeError(f"streamlit did not become healthy within {timeout}s; log: {self.log_path}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self._log is not subprocess.DEVNULL:
            self._log.close()


@pytest.fixture(scope="session")
def streamlit_server(tmp_path_factory):
    server = StreamlitServer(
        env={"STCA_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))},
        log_path=tmp_path_factory.mktemp("streamlit") / "server.log",
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium through Playwright. Missing browser is an error, never a skip."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} not found: install it with `apt-get install -y chromium` (make test does this as root)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


def wait_for_app(page, timeout_ms: int = 180_000, quiet_ms: int = 1500):
    """Wait until Streamlit's script run is over and has stayed over for ``quiet_ms``.

    Streamlit 1.67 shows a 'Stop' control (older versions 'Running...') while a script runs, and the
    indicator can appear a moment after the first elements, hence the quiet period.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    busy_js = """() => { const s = document.querySelector('[data-testid="stStatusWidget"]');
                         return !!s && (s.innerText.includes('Stop') || s.innerText.includes('Running')); }"""
    waited, quiet = 0, 0
    while quiet < quiet_ms:
        if waited > timeout_ms:
            raise TimeoutError(f"the app kept running for more than {timeout_ms} ms")
        quiet = 0 if page.evaluate(busy_js) else quiet + 250
        page.wait_for_timeout(250)
        waited += 250


def in_triton_interpreter(code: str, timeout: int = 300) -> dict:
    """Run ``code`` in a fresh Python with Triton's CPU interpreter on (it must be set before Triton is
    imported) and return the JSON object it prints last. Skips when Triton is not installed."""
    import json

    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
