"""Checkpoints: exact round trips (folder and zip), and a clear CheckpointError for every defect."""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from stca_engine.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_model,
    model_from_zip_bytes,
    model_to_zip_bytes,
    save_model,
)
from stca_engine.config import NeuronConfig, TrainConfig
from stca_engine.errors import CheckpointError
from stca_engine.network import SNN

CFG = NeuronConfig(dt_ms=2.0, tau_m_ms=20.0, tau_s_ms=5.0, theta=1.0, alpha=2.0, t_in_ms=60.0)


def _net(dtype=torch.float32, output_spiking=True, sizes=(12, 7, 3), seed=3):
    net = SNN(list(sizes), CFG, dtype=dtype, device="cpu", output_spiking=output_spiking, seed=seed)
    with torch.no_grad():  # larger weights so the network actually spikes
        for w in net.weights:
            w.mul_(60.0)
    return net


def _x(T=80, B=3, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g) < 0.15).float()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_identical_outputs(tmp_path, dtype):
    net = _net(dtype)
    tc = TrainConfig(task="classify", objective="stca", hidden=[7], epochs=3, seed=5, device="cpu")
    save_model(
        tmp_path / "m",
        net,
        CFG,
        train_cfg=tc,
        class_names=["a", "b", "c"],
        encoder_settings={"name": "spikegram", "n_kernels": 32, "snr": np.float32(11.5)},
        extra={"test_accuracy": 0.75, "nan_metric": float("nan")},
    )
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    net2, info = load_model(tmp_path / "m", device="cpu")
    x = _x()
    r1, r2 = net(x), net2(x)
    assert r1.spikes[-1].sum() > 0, "test network should spike"
    for a, b in zip(r1.voltages + r1.spikes, r2.voltages + r2.spikes):
        assert torch.equal(a, b)
    for a, b in zip(net.weights, net2.weights):
        assert a.dtype == b.dtype == dtype and torch.equal(a, b)
    assert info.sizes == [12, 7, 3] and info.neuron_cfg == CFG and info.output_spiking
    assert info.class_names == ["a", "b", "c"] and info.task == "classify" and info.objective == "stca"
    assert info.train_config == tc
    assert info.encoder_settings == {"name": "spikegram", "n_kernels": 32, "snr": 11.5}
    assert info.extra == {"test_accuracy": 0.75, "nan_metric": None}
    assert info.dtype == str(dtype).replace("torch.", "")


def test_config_from_a_gpu_machine_loads_anywhere(saved):
    cfg = json.loads((saved / CONFIG_NAME).read_text())
    cfg["train"] = {**TrainConfig().to_dict(), "device": "cuda:1"}
    (saved / CONFIG_NAME).write_text(json.dumps(cfg))
    _, info = load_model(saved, device="cpu")
    assert info.train_config.device == "cuda:1"


def test_non_spiking_output_and_file_paths(tmp_path):
    net = _net(output_spiking=False)
    save_model(tmp_path, net, CFG, objective="margin", task="classify")
    for src in (tmp_path / CONFIG_NAME, tmp_path / WEIGHTS_NAME, (tmp_path / WEIGHTS_NAME, tmp_path / CONFIG_NAME)):
        net2, info = load_model(src, device="cpu")
        assert not net2.output_spiking and info.objective == "margin"
        x = _x()
        assert torch.equal(net(x).voltages[-1], net2(x).voltages[-1])


def test_zip_round_trip_and_deterministic_bytes(tmp_path):
    net = _net()
    data = model_to_zip_bytes(net, CFG, class_names=["x", "y", "z"])
    assert data == model_to_zip_bytes(net, CFG, class_names=["x", "y", "z"])
    net2, info = model_from_zip_bytes(data, device="cpu")
    assert info.class_names == ["x", "y", "z"]
    assert all(torch.equal(a, b) for a, b in zip(net.weights, net2.weights))
    # a user who zipped the model folder itself: files one level down
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for name in src.namelist():
            dst.writestr(f"my_model/{name}", src.read(name))
    net3, _ = model_from_zip_bytes(buf.getvalue(), device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(net.weights, net3.weights))
    # the .zip path works with load_model too
    (tmp_path / "m.zip").write_bytes(data)
    net4, _ = load_model(tmp_path / "m.zip", device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(net.weights, net4.weights))


# ---- corruption cases ---------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    d = tmp_path / "model"
    save_model(d, _net(), CFG, class_names=["a", "b", "c"])
    return d


def _edit_config(d, **changes):
    cfg = json.loads((d / CONFIG_NAME).read_text())
    cfg.update(changes)
    (d / CONFIG_NAME).write_text(json.dumps(cfg))


def _replace_weights(d, tensors):
    """Write new weights and re-sign them in config.json, so only the defect under test remains."""
    data = st_save(tensors)
    (d / WEIGHTS_NAME).write_bytes(data)
    _edit_config(d, weights_sha256=hashlib.sha256(data).hexdigest())


def _error(src, *needles):
    with pytest.raises(CheckpointError) as e:
        load_model(src, device="cpu")
    msg = str(e.value)
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


def test_missing_files(saved, tmp_path):
    (saved / WEIGHTS_NAME).unlink()
    _error(saved, WEIGHTS_NAME, "missing")
    _error(tmp_path / "nowhere", "nowhere", "no such model")
    (saved / CONFIG_NAME).unlink()
    _error(saved, CONFIG_NAME, "missing")


def test_truncated_and_garbage_weights(saved):
    data = (saved / WEIGHTS_NAME).read_bytes()
    (saved / WEIGHTS_NAME).write_bytes(data[: len(data) - 17])
    _error(saved, WEIGHTS_NAME, "corrupt or truncated")
    (saved / WEIGHTS_NAME).write_bytes(b"\x00" * 3)
    _error(saved, WEIGHTS_NAME, "corrupt or truncated")
    (saved / WEIGHTS_NAME).write_bytes(b"")
    _error(saved, WEIGHTS_NAME, "empty")


def test_wrong_shapes_and_layers(saved):
    _edit_config(saved, sizes=[12, 6, 3])
    _error(saved, WEIGHTS_NAME, "weights.0", "[7, 12]", "[6, 12]")
    _edit_config(saved, sizes=[12, 7, 3, 2], class_names=None)
    _error(saved, WEIGHTS_NAME, "missing ['weights.2']")


def test_wrong_dtype_nan_and_checksum(saved, tmp_path):
    good = {"weights.0": torch.zeros(7, 12), "weights.1": torch.zeros(3, 7)}
    _replace_weights(saved, {k: v.double() for k, v in good.items()})
    _error(saved, WEIGHTS_NAME, "float64", "float32")
    bad = dict(good)
    bad["weights.1"] = good["weights.1"].clone()
    bad["weights.1"][1, 2] = float("nan")
    _replace_weights(saved, bad)
    _error(saved, WEIGHTS_NAME, "weights.1", "NaN")
    # weights of another save of the same architecture
    other = tmp_path / "other"
    save_model(other, _net(seed=99), CFG)
    (saved / WEIGHTS_NAME).write_bytes((other / WEIGHTS_NAME).read_bytes())
    _error(saved, WEIGHTS_NAME, "SHA-256")


@pytest.mark.parametrize(
    "changes, needles",
    [
        ({"format_version": 99}, ["version 99", "newer"]),
        ({"format_version": 0}, ["unknown format version 0"]),
        ({"format": "something-else"}, ["not an STCA Studio model"]),
        ({"neuron": {**CFG.to_dict(), "tau_s_ms": 50.0}}, ["neuron settings out of range", "tau_s_ms"]),
        ({"neuron": {**CFG.to_dict(), "theta": -1.0}}, ["neuron settings out of range", "theta"]),
        ({"neuron": {**CFG.to_dict(), "bogus": 1}}, ["unknown setting", "bogus"]),
        ({"sizes": [12, 0, 3]}, ["'sizes'"]),
        ({"dtype": "int8"}, ["'dtype'"]),
        ({"class_names": ["a"]}, ["'class_names' has 1 names", "3 neurons"]),
        ({"objective": "margin"}, ["non-spiking output"]),
        ({"task": "segment"}, ["'task'"]),
        ({"train": {"epochs": -1}}, ["training settings out of range", "epochs"]),
        ({"weights_sha256": "xyz"}, ["weights_sha256"]),
    ],
)
def test_config_out_of_range(saved, changes, needles):
    _edit_config(saved, **changes)
    _error(saved, CONFIG_NAME, *needles)


def test_config_not_json_or_missing_keys(saved):
    (saved / CONFIG_NAME).write_text('{"format": "stca-studio-model", ')
    _error(saved, CONFIG_NAME, "not valid JSON")
    (saved / CONFIG_NAME).write_bytes(b"\xff\xfe\x00garbage")
    _error(saved, CONFIG_NAME, "not UTF-8")
    (saved / CONFIG_NAME).write_text(json.dumps({"format": "stca-studio-model", "format_version": 1}))
    _error(saved, CONFIG_NAME, "missing key", "sizes")
    (saved / CONFIG_NAME).write_text("[1, 2]")
    _error(saved, CONFIG_NAME, "JSON object")


def test_zip_defects():
    with pytest.raises(CheckpointError, match="up.zip: is not a zip archive"):
        model_from_zip_bytes(b"PK\x03\x04 not really", name="up.zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(CONFIG_NAME, "{}")
    with pytest.raises(CheckpointError, match="does not contain model.safetensors"):
        model_from_zip_bytes(buf.getvalue(), name="up.zip")
    # corrupt member inside a valid zip: the message names the archive and the member
    data = model_to_zip_bytes(_net(), CFG)
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(CONFIG_NAME, src.read(CONFIG_NAME))
        z.writestr(WEIGHTS_NAME, src.read(WEIGHTS_NAME)[:40])
    with pytest.raises(CheckpointError, match=r"up.zip:model.safetensors: is not a readable safetensors"):
        model_from_zip_bytes(buf.getvalue(), name="up.zip")


def test_save_refuses_broken_model(tmp_path):
    net = _net()
    with torch.no_grad():
        net.weights[0][0, 0] = float("inf")
    with pytest.raises(CheckpointError, match="NaN or inf"):
        save_model(tmp_path / "m", net, CFG)
    assert not (tmp_path / "m" / CONFIG_NAME).exists()
    with pytest.raises(CheckpointError, match="2 class names for 3"):
        save_model(tmp_path / "m", _net(), CFG, class_names=["a", "b"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        save_model(tmp_path / "file", _net(), CFG)


def test_describe_is_json_and_unavailable_device_is_reported(saved):
    net, info = load_model(saved, device="cpu")
    d = json.loads(json.dumps(info.describe()))
    assert d["sizes"] == [12, 7, 3] and d["neuron"] == CFG.to_dict() and d["class_names"] == ["a", "b", "c"]
    if not torch.cuda.is_available():
        _error_dev = pytest.raises(CheckpointError, match="cannot place the network on device 'cuda'")
        with _error_dev:
            load_model(saved, device="cuda")
