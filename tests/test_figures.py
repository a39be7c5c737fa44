"""Figure functions: the right traces and shapes at the right places, checked on hand-built data."""

from __future__ import annotations

import sys

import numpy as np
import plotly.graph_objects as go
import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "app"))
from figures import (  # noqa: E402
    detection_timeline,
    hidden_raster,
    learning_curves,
    neuron_traces,
    output_traces,
    spectrogram,
    spike_raster,
    waveform,
    weight_histogram,
    weight_stats,
    weight_stats_record,
)
from figures.audio import envelope  # noqa: E402
from figures.credit import (  # noqa: E402
    credit_heatmap,
    neuron_credit,
    output_credit,
    pool_time,
    weight_change_heatmap,
    why_inputs_changed,
)
from figures.rasters import SVG_MAX_SPIKES  # noqa: E402

from stca_engine.data.types import Event  # noqa: E402

DT = 3.0


def _shapes(fig, name):
    return [s for s in fig.layout.shapes if s.name == name]


def _traces(fig, name):
    return [t for t in fig.data if t.name == name]


def _projector_ready(fig, uirevision):
    """Sizes as the browser resolves them: the figure's own value, else its template's."""
    tpl = fig.layout.template.layout
    assert fig.layout.uirevision == uirevision
    assert (fig.layout.font.size or tpl.font.size) >= 14
    for ax in [k for k in fig.layout if k.startswith(("xaxis", "yaxis"))]:
        assert (fig.layout[ax].tickfont.size or tpl[ax[:5]].tickfont.size) >= 14


@pytest.fixture
def out_data():
    T, N = 120, 3
    v = np.linspace(0, 0.9, T)[:, None] * np.array([1.0, 0.5, 0.2])
    s = np.zeros((T, N))
    s[[10, 12, 15, 40, 90], 0] = 1  # t_in = 10: clusters {10,12,15}, {40}, {90}
    s[[50, 59], 2] = 1  # one cluster {50, 59} (gap 9 < 10)
    v[[10, 12, 15, 40, 90], 0] = 1.2
    v[[50, 59], 2] = 1.1
    return v, s


def test_output_traces_rows_clusters_k_markers_and_events(out_data):
    v, s = out_data
    events = [Event(1, 20, 60), Event(0, 5, 30), Event(1, 80, 100)]
    fig = output_traces(
        v, s, 1.0, DT, 10, ["bell", "horn", "ring"], k_star=[40, 25, -1], sign=[-1, 1, 0], events=events, title="probe"
    )
    assert isinstance(fig, go.Figure)
    _projector_ready(fig, "output_traces")
    clusters = _shapes(fig, "spike cluster")
    assert len(clusters) == 3 + 1
    row1 = sorted((c.x0, c.x1) for c in clusters if c.xref == "x")
    assert len(row1) == 3
    assert row1[0] == pytest.approx(((10 - 0.5) * DT / 1000, (15 + 0.5) * DT / 1000))
    assert [c.xref for c in clusters].count("x3") == 1
    ev = _shapes(fig, "true event")
    assert sorted((e.xref, round(e.x0, 6), round(e.x1, 6)) for e in ev) == [
        ("x", 0.015, 0.09),
        ("x2", 0.06, 0.18),
        ("x2", 0.24, 0.3),
    ]
    (kp,) = _traces(fig, "k⁺")
    assert kp.xaxis == "x2" and kp.marker.symbol == "triangle-up"
    assert kp.x[0] == pytest.approx(25 * DT / 1000) and kp.y[0] == pytest.approx(v[25, 1])
    (km,) = _traces(fig, "k⁻")
    assert km.xaxis is None or km.xaxis == "x"
    assert km.marker.symbol == "triangle-down" and km.x[0] == pytest.approx(40 * DT / 1000)
    volts = _traces(fig, "V")
    assert len(volts) == 3 and np.allclose(volts[2].y, v[:, 2])
    spikes = _traces(fig, "spikes")
    assert sorted(len(t.x) for t in spikes) == [2, 5]
    thetas = _traces(fig, "ϑ threshold")
    assert len(thetas) == 3 and all(list(t.y) == [1.0, 1.0] for t in thetas)
    titles = [a.text for a in fig.layout.annotations]
    assert "<b>bell</b>" in titles and "<b>ring</b>" in titles


def test_output_traces_without_loss_info_and_torch_input(out_data):
    torch = pytest.importorskip("torch")
    v, s = out_data
    fig = output_traces(torch.tensor(v), torch.tensor(s), 1.0, DT, 100, ["a", "b", "c"])
    assert not _traces(fig, "k⁺") and not _traces(fig, "k⁻")
    # with T_in = 100 steps every neuron's spikes form a single cluster
    assert len(_shapes(fig, "spike cluster")) == 2


def test_neuron_traces_fig1_layout():
    T = 100
    rng = np.random.default_rng(0)
    m, s_, e = rng.random(T), rng.random(T) * 0.5, rng.random(T) * 0.2
    v = m - s_ - e
    o = np.zeros(T)
    o[[20, 22, 70]] = 1
    inputs = [np.array([3, 18]), np.array([]), np.array([60])]
    v_after = v + 0.1
    fig = neuron_traces(m, s_, e, v, o, 1.0, DT, 10, input_spike_times=inputs, k_plus=45, k_minus=70, v_after=v_after)
    _projector_ready(fig, "neuron_traces")
    (raster,) = _traces(fig, "input spikes")
    assert sorted(zip(np.round(np.asarray(raster.x) * 1000 / DT).astype(int), raster.y)) == [(3, 0), (18, 0), (60, 2)]
    assert np.allclose(_traces(fig, "M")[0].y, m)
    assert np.allclose(_traces(fig, "S")[0].y, s_)
    assert np.allclose(_traces(fig, "E (reset)")[0].y, e)
    assert np.allclose(_traces(fig, "V before update")[0].y, v)
    assert np.allclose(_traces(fig, "V after update")[0].y, v_after)
    assert len(_shapes(fig, "spike cluster")) == 2
    (kp,) = _traces(fig, "k⁺")
    (km,) = _traces(fig, "k⁻")
    assert kp.x[0] == pytest.approx(45 * DT / 1000) and kp.y[0] == pytest.approx(v[45])
    assert km.x[0] == pytest.approx(70 * DT / 1000)
    # V lives on the last (4th) row; the raster on the first
    assert kp.yaxis == "y4" and raster.yaxis in (None, "y")


def test_neuron_traces_without_inputs_has_three_rows():
    T = 50
    z = np.zeros(T)
    fig = neuron_traces(z, z, z, z, z, 1.0, DT, 10)
    assert len(fig.layout.annotations) == 3
    assert not _shapes(fig, "spike cluster") and not _traces(fig, "k⁺")


def test_spike_raster_uses_webgl_only_for_many_spikes():
    rng = np.random.default_rng(0)
    many = rng.integers(0, 1000, SVG_MAX_SPIKES + 1)
    (tr,) = spike_raster(many, many % 128, 128, DT).data
    assert isinstance(tr, go.Scattergl)
    (tr,) = spike_raster(many[:-1], many[:-1] % 128, 128, DT).data
    assert isinstance(tr, go.Scatter)


def test_spike_raster_places_spikes():
    times, units = np.array([0, 10, 333]), np.array([5, 0, 127])
    fig = spike_raster(times, units, 128, DT, title="clip", events=[Event(1, 10, 20)], class_names=["a", "b"])
    _projector_ready(fig, "spike_raster")
    (tr,) = fig.data
    assert isinstance(tr, go.Scatter)
    assert np.allclose(tr.x, times * DT / 1000) and list(tr.y) == [5, 0, 127]
    assert tuple(fig.layout.yaxis.range) == (-0.5, 127.5)
    (ev,) = _shapes(fig, "true event")
    assert (ev.x0, ev.x1) == pytest.approx((0.03, 0.06))
    assert any(a.text == "<b>b</b>" for a in fig.layout.annotations)
    assert "3 spikes" in fig.layout.title.text
    assert fig.layout.xaxis.range is None  # autoscaled without n_steps
    whole = spike_raster(times, units, 128, DT, n_steps=1000)
    assert tuple(whole.layout.xaxis.range) == pytest.approx((0.0, 3.0))


def test_hidden_raster_from_dense():
    s = np.zeros((40, 7))
    s[3, 2] = s[39, 6] = s[10, 0] = 1
    fig = hidden_raster(s, DT)
    (tr,) = fig.data
    assert sorted(zip(np.round(np.asarray(tr.x) * 1000 / DT).astype(int), tr.y)) == [(3, 2), (10, 0), (39, 6)]
    assert fig.layout.uirevision == "hidden_raster"
    assert tuple(fig.layout.xaxis.range) == pytest.approx((0.0, 40 * DT / 1000))


def test_learning_curves_overlays_runs():
    stca = [
        dict(epoch=e, train_loss=1 / e, test_loss=1.2 / e, train_accuracy=0.1 * e, test_accuracy=0.08 * e)
        for e in range(1, 4)
    ]
    tdp1 = [
        dict(epoch=e, train_loss=2 / e, test_loss=None, train_accuracy=0.05 * e, test_accuracy=float("nan"))
        for e in range(1, 3)
    ]
    fig = learning_curves(None, {"STCA": stca, "TDP1": tdp1})
    _projector_ready(fig, "learning_curves")
    names = sorted({t.name for t in fig.data})
    assert names == ["STCA · test", "STCA · train", "TDP1 · train"]
    assert len(fig.data) == 4 + 2  # STCA: 2 splits × 2 metrics; TDP1: train only
    test_loss = [t for t in fig.data if t.name == "STCA · test" and t.xaxis in (None, "x")][0]
    assert list(test_loss.x) == [1, 2, 3] and np.allclose(test_loss.y, [1.2, 0.6, 0.4])
    assert test_loss.line.dash == "dash"
    assert fig.layout.yaxis2.tickformat == ".0%"
    single = learning_curves(stca)
    assert {t.name for t in single.data} == {"run · train", "run · test"}


def test_weight_stats_record_and_figures():
    rng = np.random.default_rng(1)
    w1, w2 = rng.normal(0, 0.1, (30, 20)), rng.normal(0.5, 0.2, (4, 30))
    rec = weight_stats_record(3, [w1, w2], names=["hidden", "output"])
    assert rec["epoch"] == 3
    assert rec["layers"][1]["mean"] == pytest.approx(float(np.mean(w2)))
    assert rec["layers"][0]["std"] == pytest.approx(float(np.std(w1)))
    recs = [weight_stats_record(e, [w1 * e, w2]) for e in (1, 2)]
    fig = weight_stats(recs)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["layer 1", "layer 2"]
    assert np.allclose(lines[0].y, [np.mean(w1), 2 * np.mean(w1)])
    hist = weight_histogram([w1, w2])
    assert [len(t.x) for t in hist.data] == [600, 120]


def test_envelope_keeps_extremes_and_bounds_points():
    sr = 16000
    w = np.zeros(sr * 60, np.float32)
    w[123_457] = 0.9
    w[887_001] = -0.7
    t, y = envelope(w, sr)
    assert y.size <= 8000
    assert y.max() == pytest.approx(0.9) and y.min() == pytest.approx(-0.7)
    assert abs(t[np.argmax(y)] - 123_457 / sr) < 60 / 4000
    short = np.arange(100, dtype=np.float32)
    t2, y2 = envelope(short, sr)
    assert np.array_equal(y2, short)


def test_waveform_events_and_detections():
    sr = 16000
    w = np.sin(np.arange(sr * 2) * 0.01).astype(np.float32)
    fig = waveform(
        w,
        sr,
        events=[Event(0, 100, 200)],
        class_names=["bell", "horn"],
        detections=[{"class": "horn", "start_s": 0.5, "end_s": 0.9}],
        dt_ms=DT,
    )
    _projector_ready(fig, "waveform")
    (ev,) = _shapes(fig, "true event")
    assert (ev.x0, ev.x1) == pytest.approx((0.3, 0.6))
    (det,) = _shapes(fig, "detection")
    assert (det.x0, det.x1) == pytest.approx((0.5, 0.9)) and det.label.text == "horn"
    assert fig.layout.xaxis.range[1] == pytest.approx(2.0)


def test_spectrogram_tone_peaks_at_its_frequency():
    sr = 16000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
    fig = spectrogram(tone, sr)
    _projector_ready(fig, "spectrogram")
    (hm,) = fig.data
    z = np.asarray(hm.z)
    freqs = np.asarray(hm.customdata)[:, 0]
    assert z.shape[0] == 64 and z.max() == pytest.approx(0.0)
    peak_band = int(np.argmax(z[:, z.shape[1] // 2]))
    assert 850 < freqs[peak_band] < 1150
    assert np.asarray(hm.x)[1] - np.asarray(hm.x)[0] == pytest.approx(0.010)


def test_detection_timeline_shows_hits_misses_and_false_alarms():
    from figures.audio import FALSE_ALARM_COLOR, HIT_COLOR, MISS_COLOR

    from stca_engine.labels import score_events

    sr = 16000
    w = np.zeros(sr * 4, np.float32)
    truth = [{"class": "bell", "start_s": 0.2, "end_s": 0.7}, {"class": "horn", "start_s": 1.5, "end_s": 2.0}]
    dets = [
        {"class": "bell", "start_s": 0.3, "end_s": 0.5},
        {"class": "bell", "start_s": 0.55, "end_s": 0.65},
        {"class": "ring", "start_s": 3.0, "end_s": 3.2},
    ]
    score = score_events(dets, truth, tolerance_s=0.0)
    fig = detection_timeline(w, sr, dets, ["bell", "horn", "ring"], events=truth, score=score)
    by_name = {t.name: t for t in fig.data}
    hit, miss, fa = by_name["hit (1)"], by_name["missed event (1)"], by_name["false alarm (2)"]
    # one marker per outcome at the span's middle, in its class lane
    assert list(hit.x) == pytest.approx([0.4]) and list(hit.y) == ["bell"]
    assert list(miss.x) == pytest.approx([1.75]) and list(miss.y) == ["horn"]
    assert list(fa.x) == pytest.approx([0.6, 3.1]) and list(fa.y) == ["bell", "ring"]
    # distinct colours and marker shapes
    assert {hit.marker.color, miss.marker.color, fa.marker.color} == {HIT_COLOR, MISS_COLOR, FALSE_ALARM_COLOR}
    assert len({hit.marker.symbol, miss.marker.symbol, fa.marker.symbol}) == 3
    # the false alarms' bars are hatched too
    hatch = by_name["false alarm span"]
    assert list(hatch.base) == [0.55, 3.0] and hatch.marker.pattern.shape == "x"
    # no score: no outcome traces (the figure is as before)
    plain = detection_timeline(w, sr, dets, ["bell", "horn", "ring"], events=truth)
    assert not [t for t in plain.data if t.name and t.name.startswith(("hit", "missed", "false alarm"))]


def test_detection_timeline_lanes():
    sr = 16000
    w = np.zeros(sr * 3, np.float32)
    dets = [
        {"class": "bell", "start_s": 0.2, "end_s": 0.6},
        {"class": "ring", "start_s": 1.0, "end_s": 1.5},
        {"class": "bell", "start_s": 2.0, "end_s": 2.2},
    ]
    fig = detection_timeline(w, sr, dets, ["bell", "horn", "ring"], events=[Event(0, 50, 150)], dt_ms=DT)
    _projector_ready(fig, "detection_timeline")
    bars = {t.name: t for t in fig.data if isinstance(t, go.Bar)}
    assert set(bars) == {"bell", "ring", "true event"}
    assert list(bars["bell"].base) == [0.2, 2.0] and np.allclose(bars["bell"].x, [0.4, 0.2])
    assert list(bars["bell"].y) == ["bell", "bell"]
    assert bars["true event"].base[0] == pytest.approx(0.15)
    assert list(bars["true event"].customdata[0]) == pytest.approx([0.15, 0.45])
    assert list(fig.layout.yaxis2.categoryarray) == ["ring", "horn", "bell"]


def test_output_traces_window_keeps_absolute_times(out_data):
    v, s = out_data
    # the window [100, 220) of a longer recording: the cluster at local steps 10..15 is at absolute 110..115
    fig = output_traces(
        v,
        s,
        1.0,
        DT,
        10,
        ["a", "b", "c"],
        k_star=[-1, 125, -1],
        sign=[0, 1, 0],
        events=[Event(0, 0, 105), Event(0, 400, 500)],
        t0_steps=100,
    )
    first = min((c.x0, c.x1) for c in _shapes(fig, "spike cluster") if c.xref == "x")
    assert first == pytest.approx(((110 - 0.5) * DT / 1000, (115 + 0.5) * DT / 1000))
    (kp,) = _traces(fig, "k⁺")
    assert kp.x[0] == pytest.approx(125 * DT / 1000) and kp.y[0] == pytest.approx(v[25, 1])
    assert _traces(fig, "V")[0].x[0] == pytest.approx(100 * DT / 1000)
    assert len(_shapes(fig, "true event")) == 1  # the event at 400..500 lies outside the window


def _span(c, a, b):
    return {"class": c, "start_s": a, "end_s": b}


EVIL = '<a href="http://evil.example/phish">click</a><img src=x>'


def _all_text(fig: go.Figure) -> str:
    return fig.to_json()


@pytest.mark.parametrize(
    "build",
    [
        lambda: waveform(
            np.zeros(1600),
            16000,
            events=[_span(0, 0.01, 0.05)],
            class_names=[EVIL],
            detections=[_span(0, 0.02, 0.04)],
            title=EVIL,
        ),
        lambda: spike_raster(
            np.array([1, 2]), np.array([0, 1]), 4, 1.0, title=EVIL, events=[Event(0, 1, 3)], class_names=[EVIL]
        ),
        lambda: output_traces(
            np.zeros((20, 1)), np.zeros((20, 1)), 1.0, 1.0, 5, [EVIL], events=[Event(0, 2, 8)], title=EVIL
        ),
        lambda: detection_timeline(
            np.zeros(1600), 16000, [_span(0, 0.02, 0.04)], [EVIL], events=[_span(0, 0.01, 0.05)], title=EVIL
        ),
        lambda: spectrogram(
            np.random.default_rng(0).normal(size=4000),
            16000,
            detections=[_span(0, 0.02, 0.1)],
            class_names=[EVIL],
            title=EVIL,
        ),
        lambda: credit_heatmap(
            np.ones((20, 3)), 1.0, k_star=[5], sign=[1], class_names=[EVIL], events=[Event(0, 2, 8)], title=EVIL
        ),
        lambda: output_credit(np.zeros((20, 1)), np.ones((20, 1)), 1.0, 1.0, [EVIL], k_star=[4], sign=[-1]),
        lambda: weight_change_heatmap(np.ones((1, 2)), [EVIL, "b"], [EVIL], title=EVIL),
    ],
    ids=[
        "waveform",
        "spike_raster",
        "output_traces",
        "detection_timeline",
        "spectrogram",
        "credit_heatmap",
        "output_credit",
        "weight_change",
    ],
)
def test_user_text_in_figures_is_shown_literally_never_as_plotly_markup(build):
    """Class and file names reach titles, labels, legends and hovers, where Plotly reads <a href> and <b>."""
    js = _all_text(build())
    assert "evil.example" in js  # the text is there ...
    assert "<a href" not in js and "<img" not in js  # ... but only as entities (&lt;a href=...)
    assert "&lt;a href" in js


# ---- credit assignment ----------------------------------------------------------------------------


def test_credit_heatmap_is_time_by_neuron_with_k_points_events_and_spikes():
    T, N = 300, 12
    d = np.zeros((T, N))
    d[200:240, 4] = -np.linspace(0.1, 1.0, 40)  # error building up towards a k⁺ at step 240
    spikes = np.zeros((T, N), np.uint8)
    spikes[[205, 230], [4, 4]] = 1
    fig = credit_heatmap(
        d,
        3.0,
        k_star=[240, -1, 90],
        sign=[1, 0, -1],
        class_names=["dog", "cat", "bird"],
        events=[Event(0, 190, 245)],
        spikes=spikes,
        title="hidden 1",
    )
    heat = next(t for t in fig.data if t.type == "heatmap")
    z = np.asarray(heat.z)
    assert z.shape == (N, T)  # neurons along y, time along x
    assert np.allclose(z[4, 200:240], d[200:240, 4]) and heat.zmin == -heat.zmax == -1.0
    assert np.isclose(heat.x[0], 0.0) and np.isclose(heat.x[-1], (T - 1) * 0.003)
    marks = [t for t in fig.data if t.type == "scatter" and t.name != "spike"]
    assert sorted(t.name for t in marks) == ["k⁺", "k⁻"]  # the neuron without a loss gets none
    kplus = next(t for t in marks if t.name == "k⁺")
    assert np.isclose(kplus.x[0], 0.72) and kplus.marker.symbol == "triangle-up" and kplus.text == ("k⁺ of dog",)
    vlines = [sh for sh in fig.layout.shapes if sh.type == "line"]
    assert sorted(round(sh.x0, 3) for sh in vlines) == [0.27, 0.72]
    assert any(sh.type == "rect" and np.isclose(sh.x0, 0.57) for sh in fig.layout.shapes)  # the true event
    dots = next(t for t in fig.data if t.name == "spike")
    assert list(dots.y) == [4, 4]
    assert fig.layout.xaxis.title.text == "time (s)" and fig.layout.yaxis.title.text == "hidden neuron"
    assert fig.layout.title.text == "hidden 1"


def test_long_credit_maps_are_pooled_keeping_the_largest_error_and_its_sign():
    a = np.zeros((10_000, 40), np.float32)
    a[5003, 7] = -2.0
    a[5004, 7] = 1.0
    z, f = pool_time(a, max_cells=40_000)
    assert f == 10 and z.shape == (1000, 40)
    assert z[500, 7] == -2.0 and np.count_nonzero(z) == 1
    fig = credit_heatmap(a, 1.0, title="big")
    assert np.asarray(fig.data[0].z).size <= 160_000 and "per 3 ms" in fig.layout.title.text
    same, one = pool_time(a[:100], max_cells=40_000)
    assert one == 1 and np.array_equal(same, a[:100])


def test_output_credit_puts_dl_dv_under_the_voltages():
    T = 50
    v, d = np.zeros((T, 2)), np.zeros((T, 2))
    d[30, 0] = -1.0
    fig = output_credit(v, d, 1.0, 2.0, ["a", "b"], k_star=[30, -1], sign=[1, 0])
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 4 and {t.yaxis for t in lines} == {"y", "y2"}
    assert [np.asarray(t.y)[30] for t in lines if t.yaxis == "y2"] == [-1.0, 0.0]
    assert fig.layout.yaxis2.title.text == "∂L/∂V" and fig.layout.xaxis2.title.text == "time (s)"
    k = [t for t in fig.data if t.mode == "markers"]
    assert len(k) == 1 and np.isclose(k[0].x[0], 0.06) and k[0].name == "k⁺"
    with pytest.raises(ValueError):
        output_credit(v, d[:10], 1.0, 2.0)


def test_weight_change_heatmap_labels_afferents_and_keeps_the_neurons_that_changed_most():
    rng = np.random.default_rng(0)
    dw = rng.normal(scale=1e-4, size=(300, 8))
    dw[[7, 150, 299]] *= 1000
    names = [f"{hz} Hz · level 1/1" for hz in range(8)]
    fig = weight_change_heatmap(dw, names, title="ΔW input → hidden 1", max_rows=3)
    heat = fig.data[0]
    assert np.asarray(heat.z).shape == (3, 8)
    assert list(fig.layout.yaxis.ticktext) == ["neuron 7", "neuron 150", "neuron 299"]
    assert fig.layout.xaxis.title.text == "input afferent" and fig.layout.xaxis.ticktext[0] == "0 Hz · level 1/1"
    assert "3 of 300 neurons" in fig.layout.title.text
    out = weight_change_heatmap(np.ones((2, 3)), None, ["dog", "cat"])
    assert list(out.layout.yaxis.ticktext) == ["dog", "cat"] and out.layout.xaxis.ticktext[0] == "afferent 0"


def test_neuron_credit_shows_dv_the_raster_by_di_and_dw_per_afferent():
    T = 100
    dV, dI = np.zeros(T), np.zeros(T)
    dV[60] = -1.0
    dI[40:61] = -np.linspace(0.1, 1.0, 21)
    inputs = [np.array([10]), np.array([50, 58]), np.array([], np.int64)]
    g = np.array([0.0, -0.7, 0.0])
    fig = neuron_credit(dV, dI, g, inputs, 3.0, k_star=60, sign=1, lr=0.1)
    bars = next(t for t in fig.data if t.type == "bar")
    assert np.allclose(bars.x, [0.0, 0.07, 0.0]) and bars.orientation == "h"
    raster = [t for t in fig.data if t.type == "scatter" and t.mode == "markers"][0]
    assert list(raster.y) == [0, 1, 1] and np.allclose(raster.marker.color, [0.0, dI[50], dI[58]])
    assert any(sh.type == "line" and np.isclose(sh.x0, 0.18) for sh in fig.layout.shapes)
    why = why_inputs_changed(dI, g, inputs, 3.0, 60, 1)
    assert "raises V at k⁺" in why and "afferents 1 changed most" in why and "1 of 3 afferents" in why
    assert "leaves every weight" in why_inputs_changed(dI, np.zeros(3), inputs, 3.0, -1, 0)
    with pytest.raises(ValueError):
        neuron_credit(dV, dI, g[:2], inputs, 3.0)
