"""Speed of the Train page as a user sees it, in a real headless Chromium (the browser tests' setup).

Measures and prints:

* **first paint** — a fresh server is up (health check answers); time from ``page.goto(/Train)`` until
  the Start button is visible (cold: the first session pays the imports) and again in a new browser
  context (warm). Goal ≤ 3 s.
* **data preparation** — Start pressed until "Epoch 1 / N" is on screen (demo clips encoded with the
  spectral encoder, streams spliced, networks built; the encoded-clip cache is empty unless ``--warm-cache``).
* **epoch + redraw** — with the classroom preset, the time between successive epoch counters appearing
  on screen (worker trains one epoch, the fragment polls, every figure redraws), and the worker's own
  epoch time read from the status line, so the difference is the UI's share.
* **screen lag** — for every epoch, the seconds from the worker publishing it (the server appends the wall
  clock to ``$STCA_EPOCH_LOG``) to the browser showing it (a script in the page notes, every 20 ms, when each
  epoch counter and each epoch of the live view's figures first appears; an epoch that a later one replaces
  before it was drawn counts as shown when the later one is). Goal: the figures ≤ 0.5 s after the epoch.

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
VIEW = re.compile(r"· epoch (\d+) ·")


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


# Runs in the page before Streamlit's own scripts: every 20 ms, note the wall-clock time (ms) at which each
# epoch counter and each epoch of the live view ("STCA · epoch N · output neurons on ...") first shows.
SEEN_JS = """
window.__stcaSeen = {counter: {}, view: {}, busy_ms: 0};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__stcaSeen.busy_ms += e.duration;
}).observe({type: "longtask", buffered: true});
setInterval(() => {
  const t = Date.now(), text = document.body ? document.body.textContent : "";
  for (const m of text.matchAll(/Epoch (\\d+) \\/ \\d+/g)) window.__stcaSeen.counter[m[1]] ??= t;
  for (const m of text.matchAll(/\u00b7 epoch (\\d+) \u00b7/g)) window.__stcaSeen.view[m[1]] ??= t;
}, 20);
"""


def train_run(browser, url: str, epochs: int, compare: bool, epoch_log: Path) -> dict:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.add_init_script(SEEN_JS)
    page = ctx.new_page()
    query = f"?preset=classroom-fast&epochs={epochs}" + ("&compare=1" if compare else "")
    page.goto(f"{url}/Train{query}")
    wait_for_app(page)
    page.get_by_role("button", name="Start").click()
    t_start = time.perf_counter()
    wall_start = time.time()
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
            if e >= epochs and VIEW.search(text) and int(VIEW.search(text).group(1)) >= epochs:
                break
        page.wait_for_timeout(50)
    page.wait_for_timeout(200)
    browser_seen = page.evaluate("window.__stcaSeen")
    ctx.close()
    if not seen:
        raise RuntimeError("no epoch ever appeared on screen")
    ep = sorted(seen)
    first, last = ep[0], ep[-1]
    # the page polls, so several fast epochs can land in one redraw: per-epoch screen time is
    # (time the last epoch showed - time the first showed) / epochs in between
    per_epoch = (seen[last] - seen[first]) / (last - first) if last > first else None
    return {
        "prep_s": seen[first] - t_start,
        "first_epoch": first,
        "last_epoch": last,
        "per_epoch": per_epoch,
        "worker": sorted(worker_s.values()),
        "lag": screen_lag(epoch_log, browser_seen, wall_start),
        "browser_busy_s": browser_seen.get("busy_ms", 0) / 1000.0,
        "run_s": time.perf_counter() - t_start,
    }


def screen_lag(epoch_log: Path, browser_seen: dict, wall_start: float) -> dict:
    """Per epoch: seconds from the worker publishing it (``STCA_EPOCH_LOG``) to the browser showing it (or a
    later epoch, which replaces it), for the counter and for the live view's figures."""
    finished = {}
    for line in epoch_log.read_text().splitlines() if epoch_log.exists() else []:
        e, t = line.split("\t")
        if float(t) >= wall_start:
            finished[int(e)] = float(t)
    out = {
        "finished": finished,
        "shown": {w: {int(k): v / 1000.0 for k, v in browser_seen.get(w, {}).items()} for w in ("counter", "view")},
    }
    for what in ("counter", "view"):
        shown = {int(k): v / 1000.0 for k, v in browser_seen.get(what, {}).items()}
        lags = []
        for e, t_done in sorted(finished.items()):
            later = [t for k, t in shown.items() if k >= e]
            if later:
                lags.append(min(later) - t_done)
        out[what] = lags
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--compare", action="store_true", help="also train TDP1 side by side")
    ap.add_argument("--warm-cache", action="store_true", help="use the default encoded-clip cache")
    ap.add_argument("--debug", action="store_true", help="print when each epoch finished and showed")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    epoch_log = Path(tempfile.mkdtemp(prefix="stca_bench_epochs_")) / "epochs.tsv"
    env = {"STCA_HEARTBEAT_S": "300", "STCA_EPOCH_LOG": str(epoch_log)}
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
            r = train_run(browser, server.url, args.epochs, args.compare, epoch_log)
            browser.close()
    finally:
        server.stop()
        if tmp is not None:
            tmp.cleanup()
        import shutil

        shutil.rmtree(epoch_log.parent, ignore_errors=True)
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
    if "--debug" in sys.argv:
        t0 = min(r["lag"]["finished"].values())
        print("finished", {e: round(t - t0, 2) for e, t in r["lag"]["finished"].items()})
        for w in ("counter", "view"):
            print(w, {e: round(t - t0, 2) for e, t in sorted(r["lag"]["shown"][w].items())})
    for what, name in (("view", "figures of the live view"), ("counter", "epoch counter")):
        lags = r["lag"][what]
        if lags:
            print(
                f"epoch finished -> {name} on screen: median {statistics.median(lags):.2f} s,"
                f" max {max(lags):.2f} s over {len(lags)} epochs" + ("   (goal <= 0.5 s)" if what == "view" else "")
            )
    print(
        f"  the browser's main thread spent {r['browser_busy_s']:.1f} s of the run's {r['run_s']:.1f} s"
        " in long tasks (> 50 ms: rendering the page)"
    )
    if r["worker"]:
        print(
            f"  of which training (worker's epoch time incl. test evaluation): median "
            f"{statistics.median(r['worker']):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
