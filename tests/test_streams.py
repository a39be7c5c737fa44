"""Stream splicing (paper §3.3): labels, event spans, determinism, train-only events, audio splicing."""

from __future__ import annotations

import numpy as np
import pytest

from stca_engine.data.streams import build_streams, plan_streams, stream_audio
from stca_engine.data.types import SpikeTrain
from stca_engine.errors import ConfigError

DT = 3.0
N_UNITS = 16


def event(uid, cls, n_steps=40, lead=3, tail=4):
    """An event whose spikes form a signature unique to ``uid``: afferent uid % 16 at every third
    step from ``lead`` to ``n_steps - tail``, plus afferent (uid * 7) % 16 at the last spike step."""
    ts = np.arange(lead, n_steps - tail, 3)
    t = np.concatenate([ts, [ts[-1]]])
    u = np.concatenate([np.full(ts.size, uid % N_UNITS), [(uid * 7 + 1) % N_UNITS]])
    return SpikeTrain(t, u, N_UNITS, n_steps, DT), cls


def pool(n_classes=4, per_class=5, offset=0):
    return [
        event(offset + c * per_class + k, c, n_steps=30 + 5 * k) for c in range(n_classes) for k in range(per_class)
    ]


def trimmed(tr):
    a, b = int(tr.times.min()), int(tr.times.max()) + 1
    return set(zip((tr.times - a).tolist(), tr.units.tolist())), b - a


def test_targets_count_events_and_events_are_inside_the_stream():
    enc = pool()
    streams = build_streams(enc, 50, events_per_stream=5, gap_s=(0.15, 0.5), seed=1, n_classes=4)
    assert len(streams) == 50
    for s in streams:
        assert len(s.events) == 5
        counts = np.zeros(4, np.int64)
        for e in s.events:
            counts[e.class_index] += 1
        np.testing.assert_array_equal(s.target, counts)
        assert s.target.dtype == np.int64 and s.target.shape == (4,)
        prev_off = 0
        for e in s.events:
            assert 0 <= e.onset_step < e.offset_step <= s.spikes.n_steps
            gap = e.onset_step - prev_off
            assert 50 <= gap <= 167  # 0.15..0.5 s at 3 ms, rounded
            prev_off = e.offset_step
        assert 50 <= s.spikes.n_steps - prev_off <= 167
        # no spike outside an event: gaps are silent
        inside = np.zeros(s.spikes.n_steps, bool)
        for e in s.events:
            inside[e.onset_step : e.offset_step] = True
        assert inside[s.spikes.times].all()


def test_each_event_span_holds_exactly_its_source_spikes():
    enc = pool()
    signatures = [trimmed(tr) for tr, _ in enc]
    streams = build_streams(enc, 20, events_per_stream=4, gap_s=(0.2, 0.3), seed=5, n_classes=4)
    for s in streams:
        for e in s.events:
            m = (s.spikes.times >= e.onset_step) & (s.spikes.times < e.offset_step)
            got = set(zip((s.spikes.times[m] - e.onset_step).tolist(), s.spikes.units[m].tolist()))
            matches = [i for i, sig in enumerate(signatures) if sig == (got, e.offset_step - e.onset_step)]
            assert len(matches) == 1
            assert enc[matches[0]][1] == e.class_index


def test_train_streams_use_only_train_events():
    train = pool(per_class=3, offset=0)
    test = pool(per_class=3, offset=100)
    train_sigs = {frozenset(trimmed(tr)[0]) for tr, _ in train}
    test_sigs = {frozenset(trimmed(tr)[0]) for tr, _ in test}
    assert not train_sigs & test_sigs
    for s in build_streams(train, 30, seed=2, n_classes=4):
        for e in s.events:
            m = (s.spikes.times >= e.onset_step) & (s.spikes.times < e.offset_step)
            sig = frozenset(zip((s.spikes.times[m] - e.onset_step).tolist(), s.spikes.units[m].tolist()))
            assert sig in train_sigs


def test_deterministic_for_a_seed_and_different_across_seeds():
    enc = pool()
    a = build_streams(enc, 10, seed=7, n_classes=4)
    b = build_streams(enc, 10, seed=7, n_classes=4)
    c = build_streams(enc, 10, seed=8, n_classes=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.spikes.times, y.spikes.times)
        np.testing.assert_array_equal(x.spikes.units, y.spikes.units)
        assert x.events == y.events and x.name == y.name
    assert [x.events for x in a] != [x.events for x in c]


def test_classes_drawn_with_replacement_roughly_uniform():
    enc = pool(n_classes=4, per_class=2)
    streams = build_streams(enc, 400, events_per_stream=5, seed=0, n_classes=4)
    total = np.sum([s.target for s in streams], axis=0)
    assert total.sum() == 2000
    assert np.all(np.abs(total - 500) < 100)
    assert any(s.target.max() >= 3 for s in streams)  # a class can occur several times in one stream


def test_event_range_and_untrimmed_spans():
    enc = pool()
    streams = build_streams(enc, 30, events_per_stream=(2, 6), seed=3, n_classes=4, trim=False)
    lens = {len(s.events) for s in streams}
    assert lens <= set(range(2, 7)) and len(lens) > 2
    full = {tr.n_steps for tr, _ in enc}
    for s in streams:
        assert all(e.offset_step - e.onset_step in full for e in s.events)


def test_n_classes_pads_targets_and_rejects_bad_input():
    enc = pool(n_classes=2)
    s = build_streams(enc, 3, seed=0, n_classes=5)
    assert all(x.target.shape == (5,) and x.target[2:].sum() == 0 for x in s)
    with pytest.raises(ConfigError):
        build_streams(enc, 3, gap_s=(0.5, 0.1))
    with pytest.raises(ConfigError):
        build_streams(enc, 3, events_per_stream=0)
    with pytest.raises(ConfigError):
        build_streams(enc, 3, n_classes=1)
    with pytest.raises(ConfigError):
        build_streams([], 3)
    other = SpikeTrain([1], [0], N_UNITS + 1, 10, DT)
    with pytest.raises(ConfigError, match="different settings"):
        build_streams(enc + [(other, 0)], 3)


def test_silent_events_are_not_used():
    enc = pool(n_classes=2) + [(SpikeTrain([], [], N_UNITS, 50, DT), 2)]
    for s in build_streams(enc, 40, seed=0, n_classes=3):
        assert s.target[2] == 0


def test_stream_audio_follows_the_same_plan():
    sr = 16000
    rng = np.random.default_rng(0)
    waves = []
    for c in range(3):
        for k in range(3):
            n = 1600 + 400 * k
            w = np.zeros(n + 400, np.float32)
            w[200 : 200 + n] = (0.2 + 0.1 * c) * np.sign(rng.standard_normal(n)) + 0.01
            waves.append((w, c))
    streams = stream_audio(waves, 5, events_per_stream=3, gap_s=(0.1, 0.2), seed=4, n_classes=3, sr=sr)
    plans = plan_streams([c for _, c in waves], 5, 3, (0.1, 0.2), 4)
    for s, (picked, gaps) in zip(streams, plans):
        assert [e.class_index for e in s.events] == [waves[i][1] for i in picked]
        expected_len = sum(int(round(g * sr)) for g in gaps) + sum(waves[i][0].size - 400 for i in picked)
        assert s.wave.size == expected_len  # events trimmed to their non-silent part
        for (_c, a, b), i in zip(s.spans_s, picked):
            seg = s.wave[int(round(a * sr)) : int(round(b * sr))]
            np.testing.assert_array_equal(seg, waves[i][0][200:-200])
        np.testing.assert_array_equal(s.target, np.bincount([waves[i][1] for i in picked], minlength=3))
        for e, (_c, a, b) in zip(s.events, s.spans_s):
            assert e.onset_step * 3e-3 <= a < (e.onset_step + 1) * 3e-3
            assert (e.offset_step - 1) * 3e-3 < b <= e.offset_step * 3e-3 + 1e-9


def test_paper_gaps_are_one_fixed_interval_and_keep_each_events_leading_silence():
    """Issue #11 item 6: ``--gaps paper`` (the authors' splicing) beside today's random gaps."""
    from stca_engine.data.streams import PAPER_GAP_S, gap_settings

    gap_s, trim = gap_settings("paper")
    assert gap_s == (PAPER_GAP_S, PAPER_GAP_S) and trim == "end"
    assert gap_settings("random")[1] == "both"
    enc = pool()  # each event: silence for its first 3 steps, spikes, then 4 silent steps
    streams = build_streams(enc, 20, events_per_stream=4, gap_s=gap_s, seed=1, n_classes=4, trim=trim)
    gap = int(round(PAPER_GAP_S * 1000 / DT))
    lengths = {tr.n_steps for tr, _ in enc}
    for s in streams:
        assert s.events[0].onset_step == gap  # one fixed interval before the first event ...
        for a, b in zip(s.events, s.events[1:]):
            assert b.onset_step - a.offset_step == gap  # ... and between every two
        for e in s.events:
            inside = s.spikes.times[(s.spikes.times >= e.onset_step) & (s.spikes.times < e.offset_step)]
            assert inside.max() == e.offset_step - 1  # cut right after the last spike ...
            assert inside.min() - e.onset_step == 3  # ... but the leading silence is kept
            assert e.offset_step - e.onset_step < max(lengths)
    with pytest.raises(ConfigError, match="gaps must be one of"):
        gap_settings("fixed")


def test_spike_lists_are_int32_and_say_when_a_value_does_not_fit():
    """8 bytes per spike, not 16: 12 000 rate-coded MNIST digits (the default subset) came to 2.35 GB of
    spike lists as int64 and tripped the default 2 GB run limit; the memory estimate counts the real bytes."""
    from stca_engine.data.types import Sample, SpikeDataset
    from stca_engine.memory import dataset_spike_bytes

    tr = SpikeTrain(np.array([0, 3, 3], np.int64), [5, 1, 2], 8, 10, 3.0)
    assert tr.times.dtype == np.int32 and tr.units.dtype == np.int32
    merged = SpikeTrain.merge([tr, tr.shifted(2, 10)], 10)
    assert merged.times.dtype == np.int32 and merged.times.tolist() == [0, 2, 3, 3, 5, 5]
    assert tr.to_dense().sum() == 3 and tr.to_dense()[3, 1] == 1
    ds = SpikeDataset([Sample(tr, 0, [], "a")], 8, ["a"], "classify", 3.0)
    assert dataset_spike_bytes(ds) == 3 * 8 + 200
    with pytest.raises(ValueError, match="spike times beyond the int32 range"):
        SpikeTrain(np.array([2**31]), [0], 8, 10, 3.0)
