"""Soak test of a shared classroom server: concurrent Chromium sessions train, upload and close tabs.

A fresh ``streamlit run app/Home.py`` is started (the browser tests' ``StreamlitServer``) and driven
with ``--sessions`` (default 5) headless Chromium sessions for ``--minutes`` (default 10). Each round
every session opens the Train page with the classroom preset and presses Start (all of them train
at once), lets it train ``--train-seconds``, opens the Data page in a second tab and uploads a small
set of WAVs (two classes, two files each), then closes its browser context (both tabs) without
pressing anything. Rounds repeat until the time is up.

Reported (and judged against the goals of issue #14):

* peak server RSS (``VmHWM``) and RSS sampled through the run;
* RSS at the end vs at the start (after a warm-up round, so imports and thread pools are counted in
  the start); goal: within 10 %;
* the server's threads at the start and at the end (OS threads from ``/proc/<pid>/task``); goal: no
  more at the end than at the start;
* leftover ``stca_uploads_<server pid>_*`` folders / files in the temp folder; goal: none.

The end is measured after every tab closed and a settle time: ``STCA_TAB_CLOSED_S`` (set to 5 s
here) for the training threads to stop and Streamlit's disconnected-session TTL (set to 5 s through
``STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL``) for the sessions (and their upload folders) to end.
Streamlit evicts expired sessions only when its session store next changes, so one more visitor
opens and closes a tab before the end is measured (on a real server other students do that). The web
server's request threads (AnyIO's pool, grown by concurrent requests) end only when a later request finds
them idle for 10 s, so the start and the end are each counted after one static-file request; the end is
also printed before it.

Run: ``.venv/bin/python benchmarks/soak.py [--minutes 10] [--sessions 5] [--train-seconds 20]``
(not part of the test suite: it needs minutes of CPU). Exit code 0 when every goal is met, 1 if not.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import CHROMIUM, CHROMIUM_ARGS, StreamlitServer, wait_for_app  # noqa: E402

TAB_CLOSED_S = 5
SESSION_TTL_S = 5


ANYIO_IDLE_S = 10  # anyio's WorkerThread.MAX_IDLE_TIME


def prune_idle_request_threads(url: str) -> None:
    """One request for a static file: AnyIO stops pool threads idle for more than ``ANYIO_IDLE_S`` when it
    next hands out a thread (``run_sync_in_worker_thread``), not on a timer."""
    import re
    import urllib.request

    html = urllib.request.urlopen(f"{url}/", timeout=30).read().decode()
    asset = re.search(r'src="\.?/?(static/[^"]+\.js)"', html)
    urllib.request.urlopen(f"{url}/{asset.group(1) if asset else ''}", timeout=30).read()
    time.sleep(1)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in KiB and the thread count of ``pid`` (Linux ``/proc``)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(rest.split()[0])
    return out


class Sampler(threading.Thread):
    """RSS of the server every 0.5 s (for the report's min / max)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.halt = pid, [], threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.samples.append(proc_status(self.pid)["VmRSS"])
            except OSError:
                return
            self.halt.wait(0.5)


def make_wavs(folder: Path) -> list[str]:
    """Four short WAVs, two classes (the Data page wants at least two files per class)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    sr, paths = 16000, []
    t = np.arange(int(0.4 * sr)) / sr
    for name, f0 in (("bell", 880.0), ("horn", 220.0)):
        for i in (1, 2):
            x = 0.5 * np.sin(2 * np.pi * f0 * (1 + 0.01 * i) * t) * np.hanning(t.size)
            p = folder / f"{name}_{i:02d}.wav"
            sf.write(str(p), x.astype(np.float32), sr)
            paths.append(str(p))
    return paths


def upload_files(pid: int) -> list[str]:
    """Everything under this server's upload folders."""
    out = []
    for d in glob.glob(os.path.join(tempfile.gettempdir(), f"stca_uploads_{pid}_*")):
        out.append(d)
        for root, _, files in os.walk(d):
            out += [os.path.join(root, f) for f in files]
    return out


STEP_TIMEOUT_MS = 120_000


def start_training(browser, url: str):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(STEP_TIMEOUT_MS)
    page = ctx.new_page()
    page.goto(f"{url}/Train?preset=classroom-fast&epochs=1000")
    page.get_by_role("button", name="Start").wait_for()
    page.get_by_role("button", name="Start").click()
    return ctx, page


def upload_in_new_tab(ctx, url: str, wavs: list[str]) -> bool:
    page = ctx.new_page()
    page.goto(f"{url}/Data")
    page.get_by_text("Upload files").first.click()
    page.locator('input[type="file"]').first.set_input_files(wavs)
    page.get_by_text("bell_01.wav").first.wait_for()  # the upload reached the server and was listed
    wait_for_app(page, timeout_ms=STEP_TIMEOUT_MS)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to keep the sessions going (default 10)")
    ap.add_argument("--sessions", type=int, default=5, help="concurrent browser sessions (default 5)")
    ap.add_argument(
        "--train-seconds",
        type=float,
        default=20.0,
        help="how long each round lets the sessions train before they upload and close (default 20)",
    )
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: install Debian's chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="stca_soak_"))
    wavs = make_wavs(work / "wavs")
    server = StreamlitServer(
        env={
            "STCA_CACHE_DIR": str(work / "cache"),
            "STCA_RUNS_DIR": str(work / "runs"),
            "STCA_TAB_CLOSED_S": str(TAB_CLOSED_S),
            "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(SESSION_TTL_S),
        },
        log_path=work / "server.log",
    )
    pid = server.proc.pid
    settle_s = TAB_CLOSED_S + SESSION_TTL_S + 20
    rounds, uploads_ok, problems = 0, 0, []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

            def one_round(n_sessions: int) -> None:
                nonlocal uploads_ok
                open_ = []
                t0 = time.monotonic()
                for _ in range(n_sessions):
                    try:
                        open_.append(start_training(browser, server.url))
                    except Exception as exc:  # noqa: BLE001 - a soak reports, it does not stop
                        problems.append(f"start: {type(exc).__name__}: {exc}")
                print(f"  {len(open_)} session(s) started training in {time.monotonic() - t0:.0f} s", flush=True)
                time.sleep(args.train_seconds)
                t0 = time.monotonic()
                for ctx, _ in open_:
                    try:
                        uploads_ok += bool(upload_in_new_tab(ctx, server.url, wavs))
                    except Exception as exc:  # noqa: BLE001
                        problems.append(f"upload: {type(exc).__name__}: {exc}")
                print(f"  uploads done in {time.monotonic() - t0:.0f} s", flush=True)
                for ctx, _ in open_:
                    ctx.close()  # the tabs go away without Reset

            print("warm-up round (1 session) ...", flush=True)
            one_round(1)
            time.sleep(settle_s)
            prune_idle_request_threads(server.url)  # counted the same way as the end
            start = proc_status(pid)
            print(f"start: RSS {start['VmRSS'] / 1024:.0f} MB, {start['Threads']} threads", flush=True)
            sampler = Sampler(pid)
            sampler.start()
            t_end = time.monotonic() + args.minutes * 60
            while time.monotonic() < t_end:
                rounds += 1
                print(f"round {rounds}: {args.sessions} sessions", flush=True)
                one_round(args.sessions)
            print(f"all tabs closed; settling {settle_s} s ...", flush=True)
            time.sleep(settle_s)
            # Streamlit drops a closed tab's session (its state, its upload folder) when its
            # disconnected-session store is next changed: one more visitor opens and closes a tab
            ctx = browser.new_context()
            ctx.new_page().goto(f"{server.url}/")
            time.sleep(3)
            ctx.close()
            time.sleep(max(SESSION_TTL_S + 5, ANYIO_IDLE_S + 2))
            browser.close()
        before_prune = proc_status(pid)
        # the web server's request threads (AnyIO's pool) end only when the next request finds them idle for
        # 10 s: one static-file request, as any later visitor makes, lets the idle ones go
        prune_idle_request_threads(server.url)
        end = proc_status(pid)
        sampler.halt.set()
        leftovers = upload_files(pid)
    finally:
        server.stop()
    peak_mb = end["VmHWM"] / 1024
    start_mb, end_mb = start["VmRSS"] / 1024, end["VmRSS"] / 1024
    growth = (end_mb - start_mb) / start_mb
    samples = [s / 1024 for s in sampler.samples] or [end_mb]
    print()
    print(f"rounds: {rounds} × {args.sessions} sessions ({uploads_ok} uploads accepted), {args.minutes:g} min")
    print(f"peak server RSS: {peak_mb:.0f} MB (sampled min {min(samples):.0f} / max {max(samples):.0f} MB)")
    print(f"RSS at start {start_mb:.0f} MB, at end {end_mb:.0f} MB ({growth:+.1%})")
    print(
        f"server threads at start {start['Threads']}, at end {end['Threads']}"
        f" ({before_prune['Threads']} before one more request let the web server's idle request threads end)"
    )
    print(f"leftover upload folders/files: {len(leftovers)}" + "".join(f"\n  {p}" for p in leftovers[:20]))
    for p in problems[:20]:
        print(f"problem: {p}")
    goals = {
        "memory within 10 % of start": growth <= 0.10,
        "no leftover threads": end["Threads"] <= start["Threads"],
        "no leftover upload files": not leftovers,
        "no session failed": not problems,
    }
    for name, ok in goals.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    print(f"server log: {work / 'server.log'}")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
