"""Learning on real sound this project did not make, at the CLI's defaults (issue: the demo is a smoke test).

A tiny subset of the real-sound suite (benchmarks/real_sounds.py): four words spoken by espeak-ng in
random accents, voice variants, pitches and speeds, with pink noise at 10-30 dB SNR, in the RWCP layout.
``stca train`` with no tuning flags must beat a silent network clearly at detection and chance clearly
at classification. Needs Debian's espeak-ng (``make test`` installs it as root).
"""

import json
import shutil
import sys
from pathlib import Path

import pytest

from stca_engine import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_sounds  # noqa: E402

WORDS = ["zero", "one", "six", "nine"]


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    assert shutil.which("espeak-ng"), "espeak-ng is missing: apt-get install -y espeak-ng (make test does it as root)"
    root = tmp_path_factory.mktemp("real")
    return real_sounds.build_source("speech", root, per_class=24, classes=WORDS, festival=False)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))


def _train(tmp_path, capsys, *argv):
    out = tmp_path / "model"
    rc = cli.main(["--quiet", "train", *argv, "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    return json.loads((out / "metrics.json").read_text())["test"]


def test_builder_writes_the_rwcp_layout_with_varied_takes(speech):
    manifest = json.loads((speech / "manifest.json").read_text())
    assert manifest["counts"] == {w: 24 for w in WORDS}
    raws = sorted((speech / "nospeech" / "drysrc" / "real" / "zero" / "48khz").glob("*.raw"))
    assert len(raws) == 24 and len({p.read_bytes() for p in raws}) == 24
    clips = json.loads((speech / "clips.json").read_text())
    assert len({c["voice"] for c in clips}) > 20 and all(10 <= c["snr_db"] <= 30 for c in clips)


def test_builder_is_deterministic(speech, tmp_path):
    again = real_sounds.build_source("speech", tmp_path, per_class=24, classes=WORDS, festival=False)
    a = sorted(p.relative_to(speech) for p in speech.rglob("*.raw"))
    assert a == sorted(p.relative_to(again) for p in again.rglob("*.raw"))
    assert all((speech / p).read_bytes() == (again / p).read_bytes() for p in a[:10])


def test_default_classification_beats_chance_clearly(speech, tmp_path, capsys):
    test = _train(tmp_path, capsys, "--data", f"rwcp:{speech}", "--task", "classify")
    assert test["accuracy_floor"] == pytest.approx(0.25)
    assert test["accuracy"] >= 0.5, test


def test_default_detection_beats_the_silent_network_clearly(speech, tmp_path, capsys):
    test = _train(
        tmp_path,
        capsys,
        "--data",
        f"rwcp:{speech}",
        "--task",
        "detect",
        "--streams",
        "400",
        "--test-streams",
        "60",
        "--events",
        "3",
    )
    assert test["count_accuracy"] >= test["count_accuracy_floor"] + 0.1, test
    assert test["event_f1"] >= 0.4, test
