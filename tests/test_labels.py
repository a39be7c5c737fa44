"""Label I/O (Audacity label tracks, CSV) and event scoring (stca_engine.labels)."""

from __future__ import annotations

import csv
import io

import pytest

from stca_engine.errors import DatasetError, StcaError
from stca_engine.labels import (
    format_score,
    merge_scores,
    parse_audacity,
    parse_label_bytes,
    read_labels,
    score_events,
    to_audacity,
    to_csv,
)

DET = [
    {"class": "bell", "start_s": 0.5, "end_s": 0.62, "n_spikes": 3, "peak_v": 1.25},
    {"class": "horn", "start_s": 1.7123456, "end_s": 1.9, "n_spikes": 1},
]


def test_audacity_export_is_tab_separated_with_six_decimals():
    text = to_audacity(DET)
    assert text == "0.500000\t0.620000\tbell\n1.712346\t1.900000\thorn\n"
    # a class name with a tab or line break stays one field on one line
    odd = to_audacity([{"class": "door\tbell\nloud", "start_s": 0, "end_s": 1}])
    assert odd == "0.000000\t1.000000\tdoor bell loud\n"


def test_audacity_round_trip():
    back = parse_audacity(to_audacity(DET))
    assert [(e["class"], e["start_s"], e["end_s"]) for e in back] == [("bell", 0.5, 0.62), ("horn", 1.712346, 1.9)]


def test_csv_export_has_header_and_rows():
    rows = list(csv.reader(io.StringIO(to_csv(DET, file="rec.wav"))))
    assert rows[0] == ["file", "class", "start_s", "end_s", "n_spikes", "peak_v"]
    assert rows[1] == ["rec.wav", "bell", "0.500000", "0.620000", "3", "1.2500"]
    assert rows[2] == ["rec.wav", "horn", "1.712346", "1.900000", "1", ""]


def test_parse_skips_blanks_comments_and_frequency_lines():
    text = (
        "# my annotations\n"
        "\n"
        "1.5\t2.25\tdoor bell\n"
        "\\\t200.000000\t4000.000000\n"  # Audacity's spectral-selection line under a label
        "   \n"
        "0.1 0.4 horn blast\n"  # typed by hand with spaces
        "3.0\t3.0\tclick\r\n"
    )  # a point label, Windows line ending
    ev = parse_audacity(text)
    assert ev == [
        {"class": "horn blast", "start_s": 0.1, "end_s": 0.4},
        {"class": "door bell", "start_s": 1.5, "end_s": 2.25},
        {"class": "click", "start_s": 3.0, "end_s": 3.0},
    ]
    # UTF-8 with a BOM, as some editors save
    assert parse_label_bytes("\ufeff0\t1\tbell\n".encode("utf-8"))[0]["class"] == "bell"


@pytest.mark.parametrize(
    "line, problem",
    [
        ("abc\t1.0\tbell", "line 2: start time 'abc' is not a number"),
        ("1.0\txyz\tbell", "line 2: end time 'xyz' is not a number"),
        ("1.0\t2.0", "line 2: expected start<TAB>end<TAB>label"),
        ("1.0\t2.0\t  ", "line 2: expected start<TAB>end<TAB>label"),
        ("2.0\t1.0\tbell", "line 2: end 1 s is before start 2 s"),
        ("-1\t1.0\tbell", "line 2: start time '-1' must be a finite number"),
        ("nan\t1.0\tbell", "line 2: start time 'nan' must be a finite number"),
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path, line, problem):
    p = tmp_path / "truth.txt"
    p.write_text("0\t1\tbell\n" + line + "\n")
    with pytest.raises(DatasetError) as info:
        read_labels(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}: ") and problem in msg and "\n" not in msg


def test_missing_or_binary_label_files_are_clear_errors(tmp_path):
    with pytest.raises(StcaError, match="no such label file"):
        read_labels(tmp_path / "nope.txt")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02")
    with pytest.raises(StcaError, match="binary"):
        read_labels(tmp_path / "bin.txt")


def _ev(c, a, b):
    return {"class": c, "start_s": a, "end_s": b}


def test_scoring_hits_misses_false_alarms():
    truth = [_ev("bell", 1.0, 1.5), _ev("horn", 3.0, 3.4), _ev("bell", 5.0, 5.2)]
    det = [
        _ev("bell", 1.1, 1.3),  # hit
        _ev("bell", 1.35, 1.45),  # second detection inside an already matched event: false alarm
        _ev("bell", 3.0, 3.4),  # right time, wrong class: false alarm (and horn is missed)
        _ev("bell", 5.25, 5.3),  # 50 ms after the event ends: within the 0.1 s tolerance -> hit
        _ev("ring", 8.0, 8.1),  # nothing there: false alarm
    ]
    s = score_events(det, truth, tolerance_s=0.1)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 3, 1)
    assert s["precision"] == pytest.approx(2 / 5) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3))
    assert s["hits"] == [det[0], det[3]]
    assert s["false_alarms"] == [det[1], det[2], det[4]]
    assert s["misses"] == [truth[1]]
    assert s["pairs"] == [(0, 0), (3, 2)]
    assert s["per_class"]["bell"] == {
        "tp": 2,
        "fp": 2,
        "fn": 0,
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
    }
    assert s["per_class"]["horn"]["fn"] == 1 and s["per_class"]["ring"]["fp"] == 1
    # without the tolerance the late detection no longer overlaps
    s0 = score_events(det, truth, tolerance_s=0.0)
    assert (s0["tp"], s0["fp"], s0["fn"]) == (1, 4, 2)
    assert "F1 0.500" in format_score(s) and "misses 1" in format_score(s)


def test_each_detection_matches_one_event_and_the_best_overlap_wins():
    truth = [_ev("bell", 0.0, 1.0), _ev("bell", 1.05, 2.0)]
    # one long detection overlapping both events: it can only hit one (the one it overlaps most)
    s = score_events([_ev("bell", 0.9, 1.9)], truth, tolerance_s=0.0)
    assert s["pairs"] == [(0, 1)] and s["fn"] == 1
    # a point label is hit by a detection around it
    s = score_events([_ev("click", 2.9, 3.1)], [_ev("click", 3.0, 3.0)], tolerance_s=0.0)
    assert s["tp"] == 1


def test_empty_cases_and_merged_totals():
    assert score_events([], [])["f1"] == 1.0
    s = score_events([], [_ev("bell", 0, 1)], class_names=["bell", "horn"])
    assert (s["tp"], s["fn"], s["f1"]) == (0, 1, 0.0) and set(s["per_class"]) == {"bell", "horn"}
    a = score_events([_ev("bell", 0, 1)], [_ev("bell", 0, 1)])
    total = merge_scores([a, s])
    assert (total["tp"], total["fp"], total["fn"]) == (1, 0, 1) and total["recall"] == 0.5
    with pytest.raises(StcaError):
        score_events([], [], tolerance_s=-1)
