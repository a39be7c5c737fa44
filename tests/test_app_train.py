"""The Train page: settings/URL codec and presets (pure), model save/load, and the page through AppTest
(widgets, presets, query params, classroom mode, a few real epochs through the worker, reset)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import fields, replace

import numpy as np
import pytest
import torch
from conftest import REPO
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(REPO / "app"))

import models_ui  # noqa: E402
import state  # noqa: E402

import stca_engine as se  # noqa: E402
from stca_engine.errors import CheckpointError, ConfigError  # noqa: E402

PAGE = str(REPO / "app" / "pages" / "2_Train.py")


# ---- settings, presets, URL ------------------------------------------------------------------------


def test_presets_exist_validate_and_classroom_comes_first():
    presets = state.load_presets()
    assert list(presets)[:2] == ["classroom-fast", "paper"]
    for name, p in presets.items():
        raw = json.loads((REPO / "assets" / "presets" / f"{name}.json").read_text())
        assert p.settings.preset == name
        for k, v in raw["settings"].items():  # every value in the file made it into the settings
            got = getattr(p.settings, k)
            assert (got == v) or (k == "hidden" and got == str(v)), (name, k, got, v)
        assert p.label and p.description
    paper = presets["paper"].settings
    assert (paper.hidden_sizes(), paper.encoder, paper.events_per_stream) == ([300], "spikegram", 5)
    assert paper.neuron_dict() == se.NeuronConfig.paper().to_dict()
    fast = presets["classroom-fast"].settings
    assert fast.encoder == "spectral" and fast.hidden_sizes()[0] <= 128 and fast.n_train <= 100


def test_query_roundtrip_is_exact_and_short():
    base = state.preset_settings("classroom-fast")
    assert state.settings_to_query(base) == {"preset": "classroom-fast"}
    changed = replace(base, lr=0.0123, hidden="32,16", compare=True, seed=7, tau_m_ms=20.0, classes="horn, bells")
    q = state.settings_to_query(changed)
    assert set(q) == {"preset", "lr", "hidden", "compare", "seed", "tau_m_ms", "classes"}
    assert q["compare"] == "1" and q["hidden"] == "32,16" and q["seed"] == "7"
    back, problems = state.settings_from_query(q)
    assert problems == []
    assert back == replace(changed, classes="horn,bells")
    # every field survives the trip
    for f in fields(state.TrainSettings):
        assert getattr(back, f.name) == getattr(state.settings_from_query(state.settings_to_query(back))[0], f.name)


def test_bad_query_values_are_reported_and_keep_the_preset_value():
    q = {
        "preset": "paper",
        "lr": "fast",
        "epochs": "0",
        "hidden": "64,x",
        "task": "dance",
        "seed": "3",
        "compare": "maybe",
        "unknown_thing": "1",
    }
    s, problems = state.settings_from_query(q)
    paper = state.preset_settings("paper")
    assert (s.lr, s.epochs, s.hidden, s.task, s.compare) == (
        paper.lr,
        paper.epochs,
        paper.hidden,
        paper.task,
        paper.compare,
    )
    assert s.seed == 3
    text = " | ".join(problems)
    for name in ("lr", "epochs", "hidden", "task", "compare"):
        assert f"{name}:" in text
    s2, problems2 = state.settings_from_query({"preset": "nope"})
    assert s2 == state.default_settings() and "unknown preset 'nope'" in problems2[0]


@pytest.mark.parametrize(
    "name,raw,expected",
    [
        ("epochs", "12", 12),
        ("epochs", "12.0", 12),
        ("lr", "1e-3", 0.001),
        ("compare", "true", True),
        ("compare", "0", False),
        ("hidden", " 300 , 100 ", "300,100"),
        ("hidden", "", ""),
        ("task", "Classify", "classify"),
    ],
)
def test_coerce_field_accepts(name, raw, expected):
    assert state.coerce_field(name, raw) == expected


@pytest.mark.parametrize(
    "name,raw,msg",
    [
        ("epochs", "1.5", "whole number"),
        ("epochs", "-1", "outside"),
        ("lr", "nan", "finite"),
        ("lr", "inf", "finite"),
        ("hidden", "0", "outside"),
        ("hidden", "1,2,3,4,5", "at most 4"),
        ("objective", "sgd", "not one of"),
        ("seed", True, "not a number"),
        ("nope", "1", "unknown setting"),
    ],
)
def test_coerce_field_refuses_with_the_setting_named(name, raw, msg):
    with pytest.raises(ConfigError) as e:
        state.coerce_field(name, raw)
    assert msg in str(e.value) and str(e.value).startswith(f"{name}:")


def test_classroom_flag_from_query():
    assert state.classroom_from_query({"classroom": "1"}) is True
    assert state.classroom_from_query({"classroom": ["0", "true"]}) is True
    assert state.classroom_from_query({}) is False


# ---- models: disk and zip ----------------------------------------------------------------------------


def _model(objective="stca"):
    cfg = se.NeuronConfig()
    net = se.SNN([6, 5, 3], cfg, seed=3, init_std=0.2)
    return models_ui.make_model(
        net, cfg, ["a", "b", "c"], {"name": "spectral", "n_channels": 2}, "detect", objective, epochs_trained=4
    )


def test_save_load_roundtrip_on_disk(tmp_path):
    m = _model()
    folder = models_ui.save_to_disk(m, "run-1", root=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert models_ui.list_saved(tmp_path) == ["run-1"]
    back = models_ui.load_from_disk("run-1", root=tmp_path)
    assert set(models_ui.MODEL_KEYS) <= set(back)
    for a, b in zip(m["net"].weights, back["net"].weights):
        assert torch.equal(a.detach(), b.detach())
    assert back["class_names"] == ["a", "b", "c"] and back["task"] == "detect" and back["objective"] == "stca"
    assert back["encoder_settings"] == {"name": "spectral", "n_channels": 2}
    assert back["neuron_cfg"] == m["neuron_cfg"] and back["epochs_trained"] == 4
    with pytest.raises(CheckpointError, match="exists"):
        models_ui.save_to_disk(m, "run-1", root=tmp_path)
    models_ui.save_to_disk(_model("tdp1"), "run-1", root=tmp_path, overwrite=True)
    assert models_ui.load_from_disk("run-1", root=tmp_path)["objective"] == "tdp1"


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", " ", "..", ".hidden", "x" * 65, "a b"])
def test_run_names_cannot_escape_the_runs_folder(bad, tmp_path):
    with pytest.raises(ConfigError):
        models_ui.save_to_disk(_model(), bad, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_zip_roundtrip_and_bad_uploads(monkeypatch):
    m = _model()
    data = models_ui.to_zip_bytes(m)
    back = models_ui.from_zip_bytes(data, "m.zip")
    assert [list(w.shape) for w in back["net"].weights] == [[5, 6], [3, 5]]
    assert torch.equal(back["net"].weights[1].detach(), m["net"].weights[1].detach())
    with pytest.raises(CheckpointError, match="m.zip: is not a zip"):
        models_ui.from_zip_bytes(b"not a zip at all", "m.zip")
    with pytest.raises(CheckpointError, match="empty upload"):
        models_ui.from_zip_bytes(b"", "m.zip")
    monkeypatch.setenv("STCA_MAX_UPLOAD_MB", "0.0001")
    with pytest.raises(CheckpointError, match="too large"):
        models_ui.from_zip_bytes(data, "m.zip")
    assert "6-5-3 network" in models_ui.describe(m)


# ---- the page through AppTest --------------------------------------------------------------------------


def _page(query=None, env=None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def _text(at) -> str:
    return " ".join(m.value for m in at.markdown)


def test_page_shows_controls_device_and_default_preset():
    at = _page()
    assert not at.exception
    labels = [b.label for b in at.button]
    for want in ("Start", "Pause", "Step", "Reset"):
        assert want in labels
    assert at.selectbox(key=state.widget_key("preset")).value == "classroom-fast"
    assert at.number_input(key=state.widget_key("epochs")).value == state.preset_settings("classroom-fast").epochs
    assert any("**Device:**" in m.value and se.describe_device() in m.value for m in at.sidebar.markdown)
    assert dict(at.query_params).get("preset") in ("classroom-fast", ["classroom-fast"])
    for key in ("hidden", "tau_m_ms", "lr", "batch_size", "encoder"):
        assert at.get_by_key(state.widget_key(key)) is not None


def test_choosing_a_preset_fills_the_settings():
    at = _page()
    at.selectbox(key=state.widget_key("preset")).select("paper").run()
    paper = state.preset_settings("paper")
    assert at.text_input(key=state.widget_key("hidden")).value == paper.hidden
    assert at.number_input(key=state.widget_key("epochs")).value == paper.epochs
    assert at.selectbox(key=state.widget_key("encoder")).value == paper.encoder
    assert at.number_input(key=state.widget_key("lr")).value == pytest.approx(paper.lr)
    assert not at.exception


def test_query_params_open_the_same_run_settings():
    at = _page({"preset": "paper", "hidden": "48", "seed": "5", "lr": "0.002", "classroom": "0"})
    assert at.selectbox(key=state.widget_key("preset")).value == "paper"
    assert at.text_input(key=state.widget_key("hidden")).value == "48"
    assert at.number_input(key=state.widget_key("seed")).value == 5
    assert at.number_input(key=state.widget_key("lr")).value == pytest.approx(0.002)
    # changing a widget writes the URL back
    at.number_input(key=state.widget_key("seed")).set_value(9).run()
    q = {k: at.query_params[k] for k in at.query_params}
    flat = {k: (v[-1] if isinstance(v, list) else v) for k, v in q.items()}
    assert flat["seed"] == "9" and flat["hidden"] == "48" and flat["preset"] == "paper"


def test_bad_link_values_are_warned_about():
    at = _page({"lr": "banana"})
    assert any("lr" in w.value and "banana" in w.value for w in at.warning)
    assert not at.exception


def test_classroom_mode_hides_the_advanced_controls():
    at = _page({"classroom": "1"})
    assert at.toggle(key=state.widget_key("classroom")).value is True
    keys = {w.key for w in at.sidebar.number_input} | {w.key for w in at.sidebar.text_input}
    assert state.widget_key("tau_m_ms") not in keys and state.widget_key("hidden") not in keys
    assert state.widget_key("epochs") in keys
    at.toggle(key=state.widget_key("classroom")).set_value(False).run()
    keys = {w.key for w in at.sidebar.number_input}
    assert state.widget_key("tau_m_ms") in keys


SMALL_RUN = {
    "classes": "bells,horn",
    "n_train": "8",
    "n_test": "4",
    "events_per_stream": "2",
    "hidden": "16",
    "epochs": "3",
    "batch_size": "4",
    "seed": "1",
}


def _epoch_counter(at):
    import re

    for m in at.markdown:
        found = re.search(r"Epoch (\d+) / (\d+)", m.value)
        if found:
            return int(found.group(1)), int(found.group(2))
    return None


def _wait(at, pred, timeout=240.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        at.run()
        assert not at.exception, at.exception
        if pred(at):
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out; counter={_epoch_counter(at)}, errors={[e.value for e in at.error]}")


def _chart_specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _credit_maps(at) -> dict:
    """Run label → the z array ``[N, T]`` of its hidden-layer credit heatmap on the page."""
    out = {}
    for spec in _chart_specs(at):
        rev = spec["layout"].get("uirevision", "")
        if rev.startswith("train.credit.hidden."):
            heat = next(t for t in spec["data"] if t["type"] == "heatmap")
            out[rev.rsplit(".", 1)[1]] = _plotly_array(heat["z"])
    return out


def _plotly_array(v) -> np.ndarray:
    """A figure array as the browser receives it: a list, or Plotly's typed array (base64 ``bdata``)."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        shape = [int(n) for n in str(v.get("shape", a.size)).split(",")]
        return a.reshape(shape).astype(np.float64)
    return np.asarray(v, dtype=np.float64)


def _heatmap_titles(at) -> list[str]:
    return [
        s["layout"]["title"]["text"]
        for s in _chart_specs(at)
        if s["layout"].get("uirevision", "").startswith("train.credit.dw.") and s["layout"].get("title")
    ]


def test_epochs_run_through_the_worker_then_reset_clears():
    at = _page({**SMALL_RUN, "compare": "1"})  # STCA and TDP1 side by side
    assert _epoch_counter(at) is None  # nothing before Start
    at.button(key="train.btn_start").click().run()
    assert not at.exception
    worker = at.session_state["train.run"]["worker"]
    assert worker.alive or worker.snapshot().finished
    other = _page(SMALL_RUN)  # another browser session: its own state
    assert _epoch_counter(other) is None and "train.run" not in other.session_state
    seen = set()

    def advanced(a):
        c = _epoch_counter(a)
        if c:
            seen.add(c[0])
        return c is not None and c[0] == 3 and worker.snapshot().finished

    _wait(at, advanced)
    assert _epoch_counter(at) == (3, 3)
    assert worker.snapshot().status == "done" and not at.error
    assert len(seen) >= 2  # the counter advanced while we polled
    assert len(at.get("plotly_chart")) >= 5  # curves, traces ×2, raster, weights
    snap = worker.snapshot()
    assert snap.labels == ("stca", "tdp1") and all(len(snap.reports[lb]) == 3 for lb in snap.labels)
    r_stca, r_tdp1 = worker.runner("stca"), worker.runner("tdp1")
    assert r_stca.trainer.train is r_tdp1.trainer.train  # the same data for both objectives
    assert r_tdp1.trainer.cfg.objective == "tdp1" and r_tdp1.trainer.cfg.seed == r_stca.trainer.cfg.seed
    model = at.session_state["trained_model"]
    assert set(models_ui.MODEL_KEYS) <= set(model)
    assert model["class_names"] == ["bells", "horn"] and model["task"] == "detect" and model["objective"] == "stca"
    assert list(model["net"].sizes) == [128, 16, 2] and model["encoder_settings"]
    # the published net is a copy holding the last epoch's weights
    final = worker.model("stca")
    assert all(torch.equal(a.detach(), b) for a, b in zip(model["net"].weights, final))
    # the credit view: both objectives' error maps, and they hold the engine's own numbers
    idx = at.selectbox(key="train.probe_index").value
    maps = _credit_maps(at)
    assert set(maps) >= {"stca", "tdp1"}
    for lb in ("stca", "tdp1"):
        cm = worker.runner(lb).credit_at(3, idx)
        np.testing.assert_allclose(maps[lb], cm.dV[0].T)
        assert any(
            f"**{'STCA' if lb == 'stca' else 'TDP1'}** · epoch 3 · loss of this sample" in m.value for m in at.markdown
        )
    dw = _heatmap_titles(at)
    assert any(t.startswith("ΔW input → hidden 1 in epoch 3 (STCA") for t in dw), dw
    at.selectbox(key="train.credit_layer").set_value(1).run()
    assert any(t.startswith("ΔW hidden 1 → output in epoch 3") for t in _heatmap_titles(at))
    # replay: the slider goes back to epoch 1 and the traces and the credit map follow
    assert at.toggle(key="train.follow").value is True
    at.toggle(key="train.follow").set_value(False).run()
    at.slider(key="train.epoch_view").set_value(1).run()
    assert any("**STCA** · epoch 1 ·" in m.value for m in at.markdown)
    assert not any("**STCA** · epoch 3 ·" in m.value for m in at.markdown)
    early = _credit_maps(at)
    np.testing.assert_allclose(early["stca"], worker.runner("stca").credit_at(1, idx).dV[0].T)
    assert np.abs(early["stca"]).max() > 0 and not np.array_equal(early["stca"], maps["stca"])
    at.toggle(key="train.show_credit").set_value(False).run()  # the maps can be switched off
    assert not _credit_maps(at) and not _heatmap_titles(at)
    at.button(key="train.btn_reset").click().run()
    assert _epoch_counter(at) is None and "train.run" not in at.session_state
    assert not worker.alive


def test_a_bad_data_folder_is_an_error_message_not_a_traceback(tmp_path):
    at = _page({**SMALL_RUN, "data": f"rwcp:{tmp_path / 'missing'}"})
    at.button(key="train.btn_start").click().run()
    _wait(at, lambda a: a.session_state["train.run"]["worker"].snapshot().finished, timeout=60)
    assert at.error and not at.exception
    assert str(tmp_path / "missing") in at.error[0].value


def test_step_trains_one_epoch_then_pauses():
    at = _page({**SMALL_RUN, "seed": "2"})
    at.button(key="train.btn_step").click().run()
    worker = at.session_state["train.run"]["worker"]
    _wait(at, lambda a: worker.snapshot().status == "paused" and worker.snapshot().epoch == 1)
    time.sleep(0.5)
    at.run()
    assert _epoch_counter(at) == (1, 3) and worker.snapshot().epoch == 1
    assert at.button(key="train.btn_start").label == "Resume" and at.button(key="train.btn_pause").disabled
    assert at.session_state["trained_model"]["epochs_trained"] == 1
    at.button(key="train.btn_reset").click().run()
    worker.join(10)
    assert not worker.alive and worker.snapshot().status == "stopped"


def test_a_trained_epoch_updates_the_model_line_and_the_panel_saves_and_loads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("STCA_RUNS_DIR", str(tmp_path))
    at = _page({**SMALL_RUN, "seed": "4"})
    assert any("No trained model yet" in i.value for i in at.info)
    at.button(key="train.btn_step").click().run()
    worker = at.session_state["train.run"]["worker"]
    _wait(at, lambda a: worker.snapshot().status == "paused" and worker.snapshot().epoch == 1)
    at.run()
    assert not any("No trained model yet" in i.value for i in at.info)
    (line,) = [m.value for m in at.success if m.value.startswith("Current model")]
    assert "1 epoch" in line and "Detect" in line
    at.text_input(key="models.save_name").set_value("panel-test").run()
    at.button(key="models.save").click().run()
    assert not at.exception and any("Saved to" in m.value and "panel-test" in m.value for m in at.success)
    assert (tmp_path / "panel-test").is_dir()
    at.selectbox(key="models.pick").select("panel-test").run()
    at.button(key="models.load").click().run()
    assert not at.exception and any(m.value.startswith("Loaded panel-test") for m in at.success)
    at.button(key="train.btn_reset").click().run()
    worker.join(10)


def test_settings_that_cannot_run_are_refused_at_start():
    at = _page({"data": "ftp://nowhere", "tau_s_ms": "40"})  # τs must be < τm (30 ms)
    at.button(key="train.btn_start").click().run()
    assert "train.run" not in at.session_state and not at.exception
    text = " ".join(e.value for e in at.error)
    assert "unknown data source" in text and "tau_s_ms" in text


def test_classification_with_the_margin_readout_next_to_stca():
    at = _page(
        {
            "task": "classify",
            "data": "digits",
            "classes": "0,1",
            "objective": "margin",
            "compare": "1",
            "compare_objective": "stca",
            "hidden": "8",
            "epochs": "1",
            "batch_size": "32",
        }
    )
    assert at.selectbox(key=state.widget_key("objective")).value == "margin"
    at.button(key="train.btn_start").click().run()
    worker = at.session_state["train.run"]["worker"]
    _wait(at, lambda a: worker.snapshot().finished, timeout=180)
    snap = worker.snapshot()
    assert snap.status == "done" and snap.labels == ("margin", "stca")
    assert worker.runner("margin").trainer.net.output_spiking is False
    assert worker.runner("stca").trainer.net.output_spiking is True
    assert all(0.0 <= snap.reports[lb][0].test_accuracy <= 1.0 for lb in snap.labels)
    assert at.session_state["trained_model"]["objective"] == "margin"
    assert not at.error and not at.exception
    # margin needs a classification task: switching to detection takes it off the list
    assert state.OBJECTIVES["margin"] in at.selectbox(key=state.widget_key("objective")).options
    at.radio(key=state.widget_key("task")).set_value("detect").run()
    options = at.selectbox(key=state.widget_key("objective")).options
    assert state.OBJECTIVES["stca"] in options and state.OBJECTIVES["margin"] not in options
    assert at.selectbox(key=state.widget_key("objective")).value == "stca"


def test_a_typo_in_a_setting_blocks_start_and_names_the_setting():
    at = _page()
    at.text_input(key=state.widget_key("hidden")).set_value("64,x").run()
    assert any("hidden" in e.value for e in at.error)
    at.button(key="train.btn_start").click().run()
    assert "train.run" not in at.session_state
    assert any("hidden: hidden layer size 'x' is not a whole number" in e.value for e in at.error)


def test_objective_help_names_tdp1_truly_and_tau_s_follows_tau_m():
    at = _page()
    help_text = at.selectbox(key=state.widget_key("objective")).help
    assert help_text == state.OBJECTIVE_HELP
    assert "spike-count rule like the authors' baseline code" in help_text
    assert "not the threshold-surface rule" in help_text
    # SPEC §2: τm given, τs = τm/4 (as in the engine and the CLI); τs typed afterwards is kept
    at.number_input(key=state.widget_key("tau_m_ms")).set_value(40.0).run()
    assert at.number_input(key=state.widget_key("tau_s_ms")).value == 10.0
    at.number_input(key=state.widget_key("tau_s_ms")).set_value(6.0).run()
    assert at.number_input(key=state.widget_key("tau_s_ms")).value == 6.0
    assert not at.exception


def test_a_silent_network_is_warned_about_on_the_page():
    at = _page({**SMALL_RUN, "init_std": "0.000001", "seed": "3"})
    at.button(key="train.btn_step").click().run()
    worker = at.session_state["train.run"]["worker"]
    _wait(at, lambda a: worker.snapshot().status == "paused" and worker.snapshot().epoch == 1)
    time.sleep(0.5)
    at.run()
    assert worker.snapshot().reports["stca"][0].silent_layers[:1] == ["hidden 1"]
    warnings = " ".join(w.value for w in at.warning)
    assert "silent hidden 1" in warnings and not at.exception
    at.button(key="train.btn_reset").click().run()
    worker.join(10)


def _upload_set(tmp_path):
    import io
    import zipfile

    import soundfile as sf

    from stca_engine.data.uploads import uploads_clipset

    sr, buf = 16000, io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for c, f0 in (("clap", 1500.0), ("hum", 180.0)):
            for i in range(4):
                t = np.arange(int(0.3 * sr)) / sr
                w = io.BytesIO()
                sf.write(
                    w,
                    (0.5 * np.sin(2 * np.pi * (f0 + 30 * i) * t) * np.hanning(t.size)).astype(np.float32),
                    sr,
                    format="WAV",
                )
                z.writestr(f"{c}/{i}.wav", w.getvalue())
    return uploads_clipset([(buf.getvalue(), "mine.zip")], dest=tmp_path / "up")


def test_training_on_the_sessions_uploaded_sounds(tmp_path):
    """Issue #13 item 3: the Data page's upload set trains on the Train page (no server path typed), and
    the trained model goes to the Detect page with the upload's classes."""
    cs = _upload_set(tmp_path)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["data.upload_set"] = (("test",), cs)
    for k, v in {**SMALL_RUN, "classes": "", "task": "classify"}.items():
        at.query_params[k] = v
    at.run()
    toggle = at.toggle(key="train.use_uploads")
    assert toggle.label == "Train on my sounds (8 clips, 2 classes)" and toggle.value is False
    toggle.set_value(True).run()
    assert at.session_state["train.settings"].data == "uploads" and at.query_params["data"] == "uploads"
    at.button(key="train.btn_step").click().run()
    worker = at.session_state["train.run"]["worker"]
    _wait(at, lambda a: worker.snapshot().status == "paused" and worker.snapshot().epoch == 1)
    assert worker.snapshot().info["class_names"] == ["clap", "hum"]
    assert at.session_state["trained_model"]["class_names"] == ["clap", "hum"]
    at.button(key="train.btn_reset").click().run()
    at.selectbox(key="train.preset").set_value("paper").run()  # a preset's class list is for its own data
    assert at.session_state["train.settings"].data == "uploads" and at.session_state["train.settings"].classes == ""
    # switched off: back to the data source it had before
    at.toggle(key="train.use_uploads").set_value(False).run()
    assert at.session_state["train.settings"].data == "demo"


def test_a_link_to_an_uploads_run_in_a_session_without_uploads_says_what_to_do():
    at = _page({**SMALL_RUN, "data": "uploads"})
    assert any("this session has none" in w.value for w in at.warning)
    at.button(key="train.btn_start").click().run()
    _wait(at, lambda a: a.session_state["train.run"]["worker"].snapshot().finished, timeout=60)
    assert not at.exception and any("Data page" in e.value for e in at.error)


def test_the_sidebar_is_built_from_field_spec():
    """Issue #12 item 3: every numeric widget's bounds are FIELD_SPEC's (the page writes no range itself),
    and every setting of TrainSettings but the preset has a widget with a label."""
    page_src = (REPO / "app" / "pages" / "2_Train.py").read_text()
    assert "min_value=" not in page_src and "max_value=" not in page_src
    at = _page()  # the expanders' contents are rendered whether they are open or not
    for name, (kind, spec) in state.FIELD_SPEC.items():
        if kind in ("int", "float"):
            w = at.number_input(key=state.widget_key(name))
            assert (w.min, w.max) == spec, name
            assert w.label == state.FIELD_UI[name].label
    assert set(state.FIELD_UI) == set(state.FIELD_SPEC) - {"preset"}
    grouped = [n for _, names in state.SIDEBAR_GROUPS for n in names]
    assert len(grouped) == len(set(grouped))
