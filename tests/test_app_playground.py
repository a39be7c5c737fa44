"""Neuron playground page through AppTest: widgets, the loss's k point, and an STCA update that moves V."""

import json

import numpy as np
from conftest import REPO
from streamlit.testing.v1 import AppTest

PAGE = str(REPO / "app" / "pages" / "4_Neuron_playground.py")


def _run():
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_widgets_and_first_view():
    at = _run()
    labels = {s.label for s in at.slider}
    for want in (
        "τ_m membrane time constant (ms)",
        "τ_s synaptic time constant (ms)",
        "ϑ threshold",
        "T_in cluster interval (ms)",
        "input rate (Hz)",
        "mean weight",
        "desired number of clusters N_d",
    ):
        assert want in labels
    assert at.number_input(key="pg_seed").value == 0
    view = at.session_state["playground_view"]
    assert view["v_after"] is None and view["v"].ndim == 1
    assert len(at.get("plotly_chart")) == 2  # the neuron's traces, and what the update changes
    # the metric shows the cluster count the loss saw
    assert [m.value for m in at.metric][1] == str(view["n_clusters"])


def test_update_button_moves_v_toward_the_desired_count():
    at = _run()
    before = at.session_state["playground_view"]
    assert before["sign"] != 0  # default setting: the neuron does not yet fire N_d clusters
    at.button(key="pg_update").click().run()
    assert not at.exception
    after = at.session_state["playground_view"]
    assert after["updates"] == 1
    assert after["v_after"] is not None
    diff = after["v_after"] - after["v"]
    assert np.abs(diff).max() > 1e-3
    # V before the first output spike depends on the weights only through M − S; with the default input the
    # k⁻ update lowers the weights that drive it, so V there goes down everywhere (a k⁺ update would raise it)
    first = int(np.argmax(before["v"] >= 1.0))
    early = diff[: max(first, 1)]
    assert np.all(np.sign(early[np.abs(early) > 1e-12]) == after["sign"])
    # what the update changed: ∂L/∂V over time, and per afferent the Δw it applied, explained in a sentence
    assert "k⁻" in after["why"] or "k⁺" in after["why"]
    assert np.abs(after["dV"]).max() > 0 and int(np.flatnonzero(after["dV"])[-1]) <= before["k_star"]
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    bars = next(t for t in spec["data"] if t["type"] == "bar")
    lr = at.select_slider(key="pg_lr").value
    np.testing.assert_allclose(_array(bars["x"]), -lr * before["grad"], rtol=1e-6, atol=1e-12)
    # a few more updates reach the desired count (the loss then stops asking)
    for _ in range(8):
        if at.session_state["playground_view"]["sign"] == 0:
            break
        at.button(key="pg_update").click().run()
    assert at.session_state["playground_view"]["n_clusters"] == at.slider(key="pg_desired").value


def _array(v):
    if isinstance(v, dict) and "bdata" in v:
        import base64

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v, dtype=np.float64)


def test_invalid_constants_show_an_error_not_a_traceback():
    at = _run()
    at.slider(key="pg_tau_m").set_value(10.0)
    at.slider(key="pg_tau_s").set_value(20.0).run()
    assert not at.exception
    assert any("tau_s" in e.value for e in at.error)
