"""MedleyDB loader on a fixture tree in the real layout (metadata YAML, stems, activation files)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from stca_engine.data.medleydb import PAPER_INSTRUMENTS, active_pieces, load_medleydb
from stca_engine.errors import DatasetError

SR = 16000
HOP = 0.05  # the fixture's activation hop (real files: ~46 ms); the loader reads it from the file
DUR = 9.0


def stem_wave(active, freq, seed):
    """A stem that sounds (a tone plus a little noise) only in the ``active`` (start, end) spans."""
    n = int(DUR * SR)
    t = np.arange(n) / SR
    x = np.zeros(n)
    for a, b in active:
        m = (t >= a) & (t < b)
        x[m] = 0.5 * np.sin(2 * np.pi * freq * t[m])
    return x + 1e-4 * np.random.default_rng(seed).standard_normal(n)


def write_track(root, name, stems, activation=None, yaml_text=None):
    """``stems``: {"S01": (instrument, active spans)}; ``activation``: {"S01": spans} or None."""
    tdir = root / "Audio" / name
    (tdir / f"{name}_STEMS").mkdir(parents=True)
    lines = [f"artist: test\ntitle: {name}\nstems:"]
    for k, (sid, (inst, spans)) in enumerate(sorted(stems.items())):
        fname = f"{name}_STEM_{sid[1:]}.wav"
        inst_yaml = f"[{', '.join(inst)}]" if isinstance(inst, list) else inst
        lines.append(f"  {sid}:\n    component: ''\n    filename: {fname}\n    instrument: {inst_yaml}")
        if spans is not None:
            sf.write(tdir / f"{name}_STEMS" / fname, stem_wave(spans, 300 + 100 * k, k), SR, subtype="PCM_16")
    (tdir / f"{name}_METADATA.yaml").write_text(yaml_text if yaml_text is not None else "\n".join(lines) + "\n")
    if activation is not None:
        adir = root / "Annotations" / "Instrument_Activations" / "ACTIVATION_CONF"
        adir.mkdir(parents=True, exist_ok=True)
        ids = sorted(activation)
        rows = ["time," + ",".join(ids)]
        for i in range(int(DUR / HOP)):
            t = round(i * HOP, 4)
            vals = [0.9 if any(a <= t < b for a, b in activation[s]) else 0.1 for s in ids]
            rows.append(f"{t}," + ",".join(f"{v:.3f}" for v in vals))
        (adir / f"{name}_ACTIVATION_CONF.lab").write_text("\n".join(rows) + "\n")


@pytest.fixture
def medley(tmp_path):
    root = tmp_path / "MedleyDB"
    write_track(
        root,
        "T1",
        {"S01": ("violin", [(1.0, 5.6)]), "S02": ("flute", [(0.0, 3.1)]), "S03": (["violin", "flute"], [(0, 9)])},
        activation={"S01": [(1.0, 5.6)], "S02": [(0.0, 3.1)], "S03": [(0, 9)]},
    )
    write_track(
        root,
        "T2",
        {"S01": ("violin", [(0.5, 8.0)]), "S02": ("flute", [(2.0, 6.6)])},
        activation={"S01": [(0.5, 8.0)], "S02": [(2.0, 6.6)]},
    )
    # no activation file: the energy threshold finds the sounding span
    write_track(root, "T3", {"S01": ("violin", [(0.5, 3.7)]), "S02": ("piano", [(1.0, 2.6)])})
    write_track(
        root,
        "T4",
        {"S01": ("violin", [(0.0, 4.6)]), "S02": ("flute", [(0.0, 4.6)])},
        activation={"S01": [(0.0, 4.6)], "S02": [(0.0, 4.6)]},
    )
    write_track(root, "T5", {}, yaml_text="stems: {S01: [unclosed\n")
    write_track(root, "T6", {"S01": ("flute", None)})  # stem listed but its file is missing
    return root


def test_pieces_lie_in_active_spans_and_the_split_is_by_track(medley):
    cs = load_medleydb(medley, min_pieces=3, seed=0)
    assert cs.class_names == ["flute", "violin"]  # piano has a single piece; the mixed stem S03 is not used
    train_tracks = {cs.clips[i].group for i in cs.train_idx}
    test_tracks = {cs.clips[i].group for i in cs.test_idx}
    assert train_tracks and test_tracks and not train_tracks & test_tracks
    spans = {
        ("T1", "violin"): [(1.0, 5.6)],
        ("T1", "flute"): [(0.0, 3.1)],
        ("T2", "violin"): [(0.5, 8.0)],
        ("T2", "flute"): [(2.0, 6.6)],
        ("T3", "violin"): [(0.5, 3.7)],
        ("T4", "violin"): [(0.0, 4.6)],
        ("T4", "flute"): [(0.0, 4.6)],
    }
    tol = {"T3": 0.05}  # energy frames are ~46 ms
    for c in cs.clips:
        assert c.end_s - c.start_s == pytest.approx(1.5)
        assert any(
            a - tol.get(c.group, 1e-6) <= c.start_s and c.end_s <= b + tol.get(c.group, 1e-6)
            for a, b in spans[(c.group, c.class_name)]
        ), c
    # every piece from the activation tracks: floor(active length / 1.5) per stem
    pieces = cs.info["pieces"]
    assert pieces["violin"]["found_train"] + pieces["violin"]["found_test"] == 3 + 5 + 2 + 3
    assert pieces["flute"]["found_train"] + pieces["flute"]["found_test"] == 2 + 3 + 3
    for c, p in pieces.items():
        n_c = sum(1 for x in cs.clips if x.class_name == c)
        assert p["train"] + p["test"] == n_c


def test_caps_per_class_and_determinism(medley):
    a = load_medleydb(medley, min_pieces=3, n_train=2, n_test=1, seed=4)
    b = load_medleydb(medley, min_pieces=3, n_train=2, n_test=1, seed=4)
    assert a.counts() == {"flute": (2, 1), "violin": (2, 1)}
    assert a.clips == b.clips and a.train_idx == b.train_idx and a.test_idx == b.test_idx


def test_bad_yaml_and_missing_stems_are_listed(medley):
    cs = load_medleydb(medley, min_pieces=3)
    reasons = {p.split("/")[-1]: r for p, r in cs.skipped}
    assert "bad YAML" in reasons["T5_METADATA.yaml"]
    assert "missing" in reasons["T6_STEM_01.wav"]


def test_piece_audio_is_the_stem_segment(medley):
    cs = load_medleydb(medley, classes=["violin"], min_pieces=3)
    clip = next(c for c in cs.clips if c.group == "T2")
    wave = clip.load()
    assert wave.shape == (24000,)
    raw, sr = sf.read(clip.path, dtype="float64")
    seg = raw[int(round(clip.start_s * sr)) : int(round(clip.end_s * sr))]
    np.testing.assert_allclose(wave, seg / np.abs(seg).max(), atol=1e-5)


def test_default_min_pieces_and_explicit_classes(medley):
    with pytest.raises(DatasetError, match="at least 20 active"):
        load_medleydb(medley)  # the fixture is small: no instrument reaches 20 pieces
    with pytest.raises(DatasetError) as e:
        load_medleydb(medley, classes=["violin", "erhu"])
    assert "erhu" in str(e.value) and "violin" in str(e.value) and "piano" in str(e.value)
    cs = load_medleydb(medley, classes="violin", min_pieces=1)
    assert cs.class_names == ["violin"]


def test_one_track_instrument_cannot_be_split(medley):
    cs = load_medleydb(medley, classes=["violin", "piano"], min_pieces=1)
    assert cs.class_names == ["violin"]
    assert any("piano" in r and "one track" in r for _, r in cs.skipped)


def test_paper_set_maps_labels(tmp_path):
    assert PAPER_INSTRUMENTS["guitar"] == ["acoustic guitar", "clean electric guitar", "distorted electric guitar"]
    root = tmp_path / "m"
    write_track(root, "A", {"S01": ("clean electric guitar", [(0, 3.1)])}, activation={"S01": [(0, 3.1)]})
    with pytest.raises(DatasetError, match="violin"):
        load_medleydb(root, classes="paper")


def test_nothing_usable_and_bad_roots(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_medleydb(tmp_path / "none")
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match="no Audio/ folder"):
        load_medleydb(tmp_path / "x")
    root = tmp_path / "m"
    write_track(root, "B", {}, yaml_text=": : :\n")
    with pytest.raises(DatasetError) as e:
        load_medleydb(root, min_pieces=1)
    assert str(root) in str(e.value)


def test_bad_activation_file_falls_back_to_energy(tmp_path):
    root = tmp_path / "m"
    write_track(root, "A", {"S01": ("violin", [(0.5, 3.7)])}, activation={"S01": [(0.5, 3.7)]})
    write_track(root, "B", {"S01": ("violin", [(0.5, 3.7)])})
    lab = root / "Annotations/Instrument_Activations/ACTIVATION_CONF/A_ACTIVATION_CONF.lab"
    lab.write_text("time,S01\n0.0,abc\n")
    cs = load_medleydb(root, min_pieces=1)
    assert len(cs.clips) == 4 and any("A_ACTIVATION_CONF.lab" in n for n in cs.info["notes"])


def test_active_pieces_cuts_whole_pieces_only():
    times = np.arange(0, 6, 0.5)
    act = np.array([0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0], bool)  # runs [0.5, 3.5) and [4.0, 5.5)
    assert active_pieces(times, act, 6.0) == [(0.5, 2.0), (2.0, 3.5), (4.0, 5.5)]
    assert active_pieces(times, act, 5.0) == [(0.5, 2.0), (2.0, 3.5)]  # clipped to the stem's end


class _PeakEncoder:
    name, n_units, dt_ms = "peak", 2, 3.0

    def settings(self):
        return {"encoder": "peak"}

    def encode(self, wave):
        n = wave.size // 48
        t = np.flatnonzero(np.abs(wave[: n * 48]).reshape(n, 48).max(axis=1) > 0.1)
        from stca_engine.data.types import SpikeTrain

        return SpikeTrain(t, t % 2, 2, n, 3.0), {}


def test_pieces_become_classification_samples(medley, tmp_path):
    from stca_engine.data.sources import default_encoder, prepare_datasets

    cs = load_medleydb(medley, min_pieces=3, n_train=2, n_test=1, seed=0)
    assert cs.info["encoder_preset"] == "medleydb"
    assert default_encoder("sound", 3.0, preset=cs.info["encoder_preset"]).n_units == 384  # 128 kernels x 3 bins
    train, test, info = prepare_datasets(cs, "classify", encoder=_PeakEncoder(), cache=tmp_path / "c", workers=1)
    assert (len(train), len(test)) == (4, 2)
    for s in train.samples + test.samples:
        assert s.spikes.n_steps == 500  # 1.5 s at 3 ms
        assert s.spikes.n_spikes > 400  # the pieces lie where the stem sounds
    assert sorted(s.target for s in test.samples) == [0, 1]


def _paper_tree(root):
    """Two tracks, each with one stem of every paper instrument (MedleyDB labels)."""
    labels = [labs[0] for labs in PAPER_INSTRUMENTS.values()]
    for t in ("P1", "P2"):
        stems = {f"S{k + 1:02d}": (lab, [(0.0, 3.1)]) for k, lab in enumerate(labels)}
        write_track(root, t, stems, activation={sid: spans for sid, (_, spans) in stems.items()})
    return root


@pytest.mark.parametrize("argv_classes", ["paper", "Paper"])
def test_cli_classes_paper_selects_the_paper_instruments(tmp_path, argv_classes):
    """``--classes paper`` reaches the loader as ['paper'] (split on commas): it must still mean the preset."""
    from stca_engine import cli
    from stca_engine.data.sources import load_clipset

    root = _paper_tree(tmp_path / "m")
    args = cli.build_parser().parse_args(
        ["train", "--data", f"medleydb:{root}", "--task", "classify", "--classes", argv_classes]
    )
    cs = load_clipset(args.data, **cli._data_kwargs(args))
    assert cs.class_names == list(PAPER_INSTRUMENTS)
    assert load_medleydb(root, classes=["paper"]).class_names == list(PAPER_INSTRUMENTS)


def test_authors_list_is_refused_by_name_for_medleydb(tmp_path):
    root = _paper_tree(tmp_path / "m")
    with pytest.raises(DatasetError, match="no 'authors' instrument list"):
        load_medleydb(root, classes=["authors"])


def test_bare_spikegram_encoder_keeps_the_medleydb_preset(tmp_path, monkeypatch):
    """The documented command passes ``--encoder spikegram``: it must not drop the 384-afferent preset."""
    import json

    from stca_engine import cli
    from stca_engine.encoders import make_encoder

    monkeypatch.delenv("STCA_DATA_ROOTS", raising=False)
    root = tmp_path / "m"
    for t in ("A", "B"):  # one 1.5 s piece per instrument and track
        write_track(
            root,
            t,
            {"S01": ("violin", [(0.0, 1.6)]), "S02": ("flute", [(0.0, 1.6)])},
            activation={"S01": [(0.0, 1.6)], "S02": [(0.0, 1.6)]},
        )
    out = tmp_path / "model"
    code = cli.main(
        [
            "--quiet",
            "train",
            "--data",
            f"medleydb:{root}",
            "--task",
            "classify",
            "--classes",
            "violin,flute",
            "--encoder",
            "spikegram",
            "--epochs",
            "0",
            "--hidden",
            "4",
            "--no-cache",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sizes"][0] == 384  # 128 kernels x 3 amplitude bins
    from stca_engine.data.sources import encoder_by_name

    cs = load_medleydb(root, classes="violin,flute")
    assert encoder_by_name("spikegram", cs).n_units == 384
    # explicit settings still win: an encoder object is used as given
    from stca_engine.data.sources import prepare_datasets

    explicit = make_encoder("spikegram", n_kernels=8)
    train, _, _ = prepare_datasets(cs, "classify", encoder=explicit, cache=False, workers=1)
    assert train.n_inputs == explicit.n_units != 384


def test_random_split_is_the_papers_protocol_beside_the_track_split(medley):
    """Issue #11 item 2: ``split="random"`` draws each instrument's pieces at random (tracks may sit on
    both sides, as in the paper); ``split="track"`` never shares a track."""
    by_track = load_medleydb(medley, min_pieces=3, seed=0, split="track")
    rnd = load_medleydb(medley, min_pieces=3, seed=0, split="random", n_train=4, n_test=2)
    assert rnd.info["split"] == "random" and by_track.info["split"] == "track"
    assert rnd.class_names == by_track.class_names == ["flute", "violin"]
    for c in rnd.class_names:
        tr = [rnd.clips[i] for i in rnd.train_idx if rnd.clips[i].class_name == c]
        te = [rnd.clips[i] for i in rnd.test_idx if rnd.clips[i].class_name == c]
        assert (len(tr), len(te)) == (4, 2)
        assert not {(p.path, p.start_s) for p in tr} & {(p.path, p.start_s) for p in te}  # no piece twice
        assert rnd.info["pieces"][c]["train"] == 4 and "tracks_on_both_sides" in rnd.info["pieces"][c]
    shared = sum(r["tracks_on_both_sides"] for r in rnd.info["pieces"].values())
    assert shared > 0  # with a few tracks, random pieces do share recordings: what the track split avoids
    again = load_medleydb(medley, min_pieces=3, seed=0, split="random", n_train=4, n_test=2)
    assert [(c.path, c.start_s) for c in again.clips] == [(c.path, c.start_s) for c in rnd.clips]
    one_track = load_medleydb(medley, classes=["piano", "violin"], min_pieces=1, split="random")
    assert one_track.class_names == ["violin"]
    assert any("'piano' left out: one piece" in r for _, r in one_track.skipped)  # one piece: no split
    with pytest.raises(DatasetError, match="split must be one of"):
        load_medleydb(medley, split="tracks")


def test_split_option_reaches_the_loader_from_the_cli_and_is_refused_elsewhere(medley, tmp_path):
    from stca_engine.cli import _data_kwargs, build_parser
    from stca_engine.data.sources import load_clipset
    from stca_engine.errors import ConfigError

    args = build_parser().parse_args(
        ["train", "--data", f"medleydb:{medley}", "--task", "classify", "--split", "random"]
    )
    kw = _data_kwargs(args)
    assert kw == {"split": "random"}
    cs = load_clipset(f"medleydb:{medley}", min_pieces=3, **kw)
    assert cs.info["split"] == "random"
    with pytest.raises(ConfigError, match="split"):
        load_clipset("demo", **kw)


def test_medleydb_preset_trains_the_papers_384_700_c_network(medley, tmp_path, capsys):
    """``stca train --preset medleydb``: the source's 384-afferent spikegram, 700 hidden, the margin readout."""
    from stca_engine import cli
    from stca_engine.checkpoint import load_model

    out = tmp_path / "m"
    argv = ["--quiet", "train", "--preset", "medleydb", "--data", f"medleydb:{medley}", "--epochs", "0"]
    code = cli.main([*argv, "--out", str(out), "--classes", "violin,flute", "--no-cache", "--workers", "1"])
    assert code == 0, capsys.readouterr().err
    net, info = load_model(out, device="cpu")
    assert net.sizes[:2] == [384, 700] and not net.output_spiking and info.train_config.objective == "margin"
