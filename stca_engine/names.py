"""The names every part of the engine, the CLI and the app agree on, defined once.

``Literal`` types for annotations and the tuples of their values for checks and choices. Kept free
of heavy imports so that ``stca --help`` stays fast (``config.DTYPES`` maps the dtype names to torch).
"""

from __future__ import annotations

from typing import Literal, get_args

Task = Literal["detect", "classify"]
Objective = Literal["stca", "tdp1", "margin"]
Optimizer = Literal["sgd", "adam"]
Selection = Literal["last", "best-val"]
DTypeName = Literal["float32", "float64"]
GapMode = Literal["random", "paper"]  # how detection streams splice their events (data.streams.gap_settings)
SplitMode = Literal["track", "random"]  # MedleyDB: no recording on both sides, or the paper's random pieces

TASKS: tuple[str, ...] = get_args(Task)
OBJECTIVES: tuple[str, ...] = get_args(Objective)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SELECTIONS: tuple[str, ...] = get_args(Selection)
DTYPE_NAMES: tuple[str, ...] = get_args(DTypeName)
GAP_MODES: tuple[str, ...] = get_args(GapMode)
SPLITS: tuple[str, ...] = get_args(SplitMode)
