"""Speed of the Train page as a user sees it, in a real headless Chromium (the browser tests' setup).

Measures and prints:

* **first paint** — a fresh server is up (health check answers); time from ``page.goto(/Train)`` until
  the Start button is visible (cold: the first session pays the imports) and again in a new browser
  context (warm). Goal ≤ 3 s.
* **data preparation** — Start pressed until "Epoch 1 / N" is on screen (demo clips encoded with the
  spectral encoder, streams spliced, networks built; the encoded-clip cache is empty unless ``--warm-cache``).
* **epoch + redraw** — with the classroom preset, the time between successive epoch counters appearing
  on screen (worker trains one epoch, the fragment polls, every figure redraws), and the worker's own
  epoch time read from the status line, so the difference is the UI's share. Goal ≤ 2 s per epoch.

Run: ``.venv/bin/python benchmarks/app.py [--epochs 8] [--compare] [--warm-cache]``
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import CHROMIUM, CHROMIUM_ARGS, StreamlitServer, wait_for_app  # noqa: E402

COUNTER = re.compile(r"Epoch (\d+) / (\d+)")
EPOCH_S = re.compile(r"last epoch took ([\d.]+) s")


def first_paint(browser, url: str, path: str = "/Train", ready: str = "Start") -> float:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(f"{url}{path}")
    if path == "/Train":
        page.get_by_role("button", name=ready).wait_for(timeout=120_000)
    else:
        page.get_by_text(ready).first.wait_for(timeout=120_000)
    dt = time.perf_counter() - t0
    ctx.close()
    return dt


def train_run(browser, url: str, epochs: int, compare: bool) -> dict:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    query = f"?preset=classroom-fast&epochs={epochs}" + ("&compare=1" if compare else "")
    page.goto(f"{url}/Train{query}")
    wait_for_app(page)
    page.get_by_role("button", name="Start").click()
    t_start = time.perf_counter()
    seen: dict[int, float] = {}
    worker_s: dict[int, float] = {}
    while time.perf_counter() - t_start < 900:
        text = page.inner_text("body")
        m = COUNTER.search(text)
        if m:
            e = int(m.group(1))
            if e not in seen and e > 0:
                seen[e] = time.perf_counter()
            w = EPOCH_S.search(text)
            if w and e > 0:
                worker_s.setdefault(e, float(w.group(1)))
            if e >= epochs:
                break
        page.wait_for_timeout(50)
    ctx.close()
    if not seen:
        raise RuntimeError("no epoch ever appeared on screen")
    ep = sorted(seen)
    first, last = ep[0], ep[-1]
    # the page polls twice a second, so several fast epochs can land in one redraw: per-epoch screen
    # time is (time the last epoch showed - time the first showed) / epochs in between
    per_epoch = (seen[last] - seen[first]) / (last - first) if last > first else None
    return {
        "prep_s": seen[first] - t_start,
        "first_epoch": first,
        "last_epoch": last,
        "per_epoch": per_epoch,
        "worker": sorted(worker_s.values()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--compare", action="store_true", help="also train TDP1 side by side")
    ap.add_argument("--warm-cache", action="store_true", help="use the default encoded-clip cache")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    env = {"STCA_HEARTBEAT_S": "300"}
    tmp = None
    if not args.warm_cache:
        tmp = tempfile.TemporaryDirectory()
        env["STCA_CACHE_DIR"] = tmp.name
    t0 = time.perf_counter()
    server = StreamlitServer(env=env, log_path=Path(tempfile.gettempdir()) / "stca_bench_app.log")
    import os

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"server healthy after {time.perf_counter() - t0:.2f} s")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            cold = first_paint(browser, server.url)
            warm = first_paint(browser, server.url)
            home = first_paint(browser, server.url, "/", "STCA Studio")
            print(f"first paint of the Train page: cold {cold:.2f} s, warm {warm:.2f} s   (goal <= 3 s)")
            print(f"  baseline, warm first paint of the Home page (Streamlit's own floor): {home:.2f} s")
            r = train_run(browser, server.url, args.epochs, args.compare)
            browser.close()
    finally:
        server.stop()
        if tmp is not None:
            tmp.cleanup()
    print(
        f"data preparation (Start -> first epoch on screen, epoch {r['first_epoch']}): {r['prep_s']:.1f} s"
        f" ({'warm' if args.warm_cache else 'empty'} encoded-clip cache)"
    )
    if r["per_epoch"] is not None:
        print(
            f"epoch + redraw on screen, epochs {r['first_epoch']}..{r['last_epoch']}: {r['per_epoch']:.2f} s per epoch"
            f"   (goal <= 2 s)"
        )
    else:
        print(
            f"all {r['last_epoch']} epochs landed in one redraw, {r['prep_s']:.1f} s after Start   (goal <= 2 s per epoch)"
        )
    if r["worker"]:
        print(
            f"  of which training (worker's epoch time incl. test evaluation): median "
            f"{statistics.median(r['worker']):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
