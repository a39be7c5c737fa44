"""``components.sessions.SessionReaper``: a closed tab's session is closed after the grace, a
reconnect within it keeps the session (issue #14: resources outlive the user)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

from components.sessions import SessionReaper  # noqa: E402


class FakeRuntime:
    def __init__(self):
        self.active: set[str] = set()
        self.closed: list[str] = []

    def is_active_session(self, sid):
        return sid in self.active

    def clear_user_info_for_session(self, sid):
        self.closed.append(sid)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_session_gone_longer_than_the_grace_is_closed_once():
    rt, clock = FakeRuntime(), Clock()
    reaper = SessionReaper(rt, grace_s=30, clock=clock)
    rt.active |= {"a", "b"}
    reaper.watch("a")
    reaper.watch("b")
    assert reaper.sweep() == []
    rt.active.discard("a")  # tab a closed
    clock.t = 1
    assert reaper.sweep() == []  # first seen gone now
    clock.t = 30
    assert reaper.sweep() == []  # 29 s gone: within the grace
    clock.t = 31.5
    assert reaper.sweep() == ["a"]
    assert rt.closed == ["a"] and reaper.watched == ["b"]
    clock.t = 100
    assert reaper.sweep() == [] and rt.closed == ["a"]


def test_a_reconnect_within_the_grace_keeps_the_session():
    rt, clock = FakeRuntime(), Clock()
    reaper = SessionReaper(rt, grace_s=10, clock=clock)
    reaper.watch("a")
    reaper.sweep()  # gone (never active here) since t=0
    clock.t = 9
    rt.active.add("a")  # reconnected
    assert reaper.sweep() == []
    rt.active.discard("a")
    clock.t = 15
    assert reaper.sweep() == []  # gone again since 15, not since 0
    clock.t = 24
    assert reaper.sweep() == []
    clock.t = 25
    assert reaper.sweep() == ["a"]


def test_one_failing_close_does_not_stop_the_others():
    class Flaky(FakeRuntime):
        def clear_user_info_for_session(self, sid):
            if sid == "bad":
                raise RuntimeError("event loop closed")
            super().clear_user_info_for_session(sid)

    rt, clock = Flaky(), Clock()
    reaper = SessionReaper(rt, grace_s=1, clock=clock)
    for sid in ("bad", "good"):
        reaper.watch(sid)
    reaper.sweep()
    clock.t = 2
    assert sorted(reaper.sweep()) == ["bad", "good"]
    assert rt.closed == ["good"]


def test_the_release_hook_runs_after_the_close_and_only_then():
    rt, clock, released = FakeRuntime(), Clock(), []
    reaper = SessionReaper(rt, grace_s=5, clock=clock)
    reaper.watch("a", release=lambda: released.append(list(rt.closed)))
    reaper.watch("a", release=lambda: released.append("second hook ignored"))
    reaper.sweep()
    clock.t = 4
    reaper.sweep()
    assert released == []
    clock.t = 6
    reaper.sweep()
    assert released == [["a"]]  # the session was closed before its state was emptied


def test_the_shared_caches_go_when_the_last_session_is_closed_and_not_before():
    rt, clock = FakeRuntime(), Clock()
    idle_calls = []
    reaper = SessionReaper(rt, grace_s=5, clock=clock, on_idle=lambda: idle_calls.append(clock.t))
    rt.active |= {"a", "b"}
    reaper.watch("a")
    reaper.watch("b")
    rt.active.discard("a")
    reaper.sweep()
    clock.t = 6
    assert reaper.sweep() == ["a"] and idle_calls == []  # b is still connected: its caches stay
    rt.active.discard("b")
    reaper.sweep()
    clock.t = 12
    assert reaper.sweep() == ["b"] and idle_calls == [12]
    clock.t = 40
    reaper.sweep()
    assert idle_calls == [12]  # once, not on every quiet sweep


def test_a_failing_idle_hook_does_not_stop_the_reaper():
    rt, clock = FakeRuntime(), Clock()

    def boom():
        raise RuntimeError("cache gone already")

    reaper = SessionReaper(rt, grace_s=1, clock=clock, on_idle=boom)
    reaper.watch("a")
    reaper.sweep()
    clock.t = 2
    assert reaper.sweep() == ["a"]
    reaper.watch("c")
    reaper.sweep()
    clock.t = 4
    assert reaper.sweep() == ["c"]
