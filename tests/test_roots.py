"""Dataset folders are only read inside the roots the operator allows (SPEC §10, STCA_DATA_ROOTS).

Checks the engine's ``confine`` directly (traversal with ``..``, absolute paths, symlinks out of a
root, sibling folders sharing a name prefix) and that the CLI refuses such a folder with exit code 2
and a one-line message when STCA_DATA_ROOTS is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stca_engine import roots
from stca_engine.errors import PathNotAllowedError, StcaError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """``allowed/`` (the only root) with a dataset inside, and ``secret/`` next to it."""
    allowed = tmp_path / "allowed"
    (allowed / "data" / "sub").mkdir(parents=True)
    (allowed / "data" / "sub" / "x.wav").write_bytes(b"RIFF")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0\n")
    monkeypatch.setenv("STCA_DATA_ROOTS", str(allowed))
    return allowed, secret


def test_inside_root_is_allowed_and_resolved(tree):
    allowed, _ = tree
    got = roots.confine(allowed / "data" / "sub" / ".." / "sub")
    assert got == (allowed / "data" / "sub").resolve()
    assert roots.confine(allowed) == allowed.resolve()  # the root itself


@pytest.mark.parametrize(
    "rel",
    [
        "../secret",
        "data/../../secret",
        "data/sub/../../../secret/passwd",
        "../../../../../../../etc",
        "./../allowed/../secret",
    ],
)
def test_dotdot_traversal_is_refused(tree, monkeypatch, rel):
    allowed, _ = tree
    monkeypatch.chdir(allowed)
    with pytest.raises(PathNotAllowedError) as ei:
        roots.confine(rel)
    msg = str(ei.value)
    assert msg.startswith(f"{rel}: outside the allowed data folders")  # names the path as typed
    assert str(allowed.resolve()) in msg and "STCA_DATA_ROOTS" in msg
    assert "\n" not in msg


def test_absolute_path_outside_is_refused(tree):
    with pytest.raises(PathNotAllowedError, match=r"^/etc: outside the allowed data folders"):
        roots.confine("/etc")


def test_symlink_out_of_root_is_refused(tree):
    allowed, secret = tree
    (allowed / "data" / "escape").symlink_to(secret, target_is_directory=True)
    (allowed / "data" / "passwd_link").symlink_to(secret / "passwd")
    for p in (allowed / "data" / "escape", allowed / "data" / "escape" / "passwd", allowed / "data" / "passwd_link"):
        with pytest.raises(PathNotAllowedError, match="outside the allowed data folders"):
            roots.confine(p)


def test_symlink_that_stays_inside_root_is_allowed(tree):
    allowed, _ = tree
    (allowed / "alias").symlink_to(allowed / "data", target_is_directory=True)
    assert roots.confine(allowed / "alias" / "sub") == (allowed / "data" / "sub").resolve()


def test_symlinked_root_itself_still_confines(tmp_path, monkeypatch):
    """A root given through a symlink is resolved too, so paths through either spelling are inside."""
    real = tmp_path / "real"
    (real / "d").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    monkeypatch.setenv("STCA_DATA_ROOTS", str(link))
    assert roots.confine(real / "d") == (real / "d").resolve()
    assert roots.confine(link / "d") == (real / "d").resolve()
    with pytest.raises(PathNotAllowedError):
        roots.confine(tmp_path)


def test_sibling_with_common_prefix_is_not_inside(tmp_path, monkeypatch):
    """``/x/data`` must not allow ``/x/data2`` (a string-prefix check would)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data2").mkdir()
    monkeypatch.setenv("STCA_DATA_ROOTS", str(tmp_path / "data"))
    with pytest.raises(PathNotAllowedError):
        roots.confine(tmp_path / "data2")


def test_several_roots_separated_by_pathsep(tmp_path, monkeypatch):
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    monkeypatch.setenv("STCA_DATA_ROOTS", f"{a}{os.pathsep}{b}{os.pathsep}")
    assert roots.allowed_roots() == [a.resolve(), b.resolve()]
    assert roots.confine(a) == a.resolve() and roots.confine(b) == b.resolve()
    with pytest.raises(PathNotAllowedError):
        roots.confine(c)


def test_default_roots_are_home_and_assets(monkeypatch, tmp_path):
    monkeypatch.delenv("STCA_DATA_ROOTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert roots.allowed_roots() == [(tmp_path / "home").resolve(), (REPO / "assets").resolve()]
    assert roots.confine(REPO / "assets") == (REPO / "assets").resolve()
    with pytest.raises(PathNotAllowedError):
        roots.confine("/etc")


def test_error_is_a_user_facing_stca_error(tree):
    with pytest.raises(StcaError) as ei:
        roots.confine("/etc")
    assert isinstance(ei.value, PermissionError)
    assert ei.value.path == "/etc"


# ---- the CLI enforces the roots when STCA_DATA_ROOTS is set ----------------------------------------


def _cli(args, env_extra, cwd=None):
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "stca_engine", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or REPO,
        timeout=120,
    )


def _cli_encode_args(folder: Path, out: Path) -> list[str]:
    """The CLI command that reads a dataset folder (``stca encode``), in the CLI's spelling."""
    return ["encode", "--source", "rwcp", "--root", str(folder), "--out", str(out)]


@pytest.mark.parametrize("how", ["dotdot", "symlink", "absolute"])
def test_cli_refuses_dataset_folder_outside_roots(tree, tmp_path, how):
    allowed, secret = tree
    (secret / "bells5" / "48khz").mkdir(parents=True)
    if how == "dotdot":
        folder = allowed / "data" / ".." / ".." / "secret"
    elif how == "symlink":
        folder = allowed / "data" / "escape"
        folder.symlink_to(secret, target_is_directory=True)
    else:
        folder = secret
    r = _cli(_cli_encode_args(folder, tmp_path / "out.npz"), {"STCA_DATA_ROOTS": str(allowed)})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("stca: error: "), r.stderr
    assert "outside the allowed data folders" in lines[0] and "Traceback" not in r.stderr


# ---- every loader behind the app's data specs confines its folder -----------------------------------


@pytest.mark.parametrize("kind", ["rwcp", "medleydb", "folder", "mnist"])
@pytest.mark.parametrize("how", ["dotdot", "symlink"])
def test_data_spec_folders_are_confined(tree, kind, how):
    """``sources.load_clipset(..., restrict=True)`` is what the Train page uses for a typed data spec."""
    from stca_engine.data import sources

    allowed, secret = tree
    if how == "dotdot":
        folder = f"{allowed}/data/../../secret"
    else:
        (allowed / "link").symlink_to(secret, target_is_directory=True)
        folder = f"{allowed}/link"
    with pytest.raises(PathNotAllowedError, match="outside the allowed data folders"):
        sources.load_clipset(f"{kind}:{folder}", restrict=True)


def _raw(path: Path, freq: float, seconds=0.2):
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(48000 * seconds)) / 48000
    path.write_bytes((0.4 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes())
    return path


def _rwcp_with_file_symlink_out(allowed: Path, secret: Path) -> tuple[Path, Path]:
    """An RWCP tree inside the root whose ``bells5/48khz/009.raw`` is a symlink to a file outside it
    (any file read as PCM could be played back or downloaded as audio: a way to leak its bytes)."""
    root = allowed / "rwcp"
    for c, f0 in (("bells5", 500), ("horn", 900)):
        for i in range(3):
            _raw(root / c / "48khz" / f"{i:03d}.raw", f0 + 30 * i)
    target = _raw(secret / "private.raw", 1234)
    link = root / "bells5" / "48khz" / "009.raw"
    link.symlink_to(target)
    return root, link


def test_file_symlinked_out_of_a_root_is_not_read(tree):
    from stca_engine.data import sources

    allowed, secret = tree
    root, link = _rwcp_with_file_symlink_out(allowed, secret)
    cs = sources.load_clipset(f"rwcp:{root}", restrict=True)
    used = {Path(c.path).resolve() for c in cs.clips}
    assert (secret / "private.raw").resolve() not in used, "a file outside the allowed roots was used"
    assert any("009.raw" in p and "outside the allowed data folders" in r for p, r in cs.skipped), cs.skipped
    assert len(cs.clips) == 6


def test_app_data_page_skips_a_file_symlinked_out_of_the_root(tree, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    allowed, secret = tree
    root, link = _rwcp_with_file_symlink_out(allowed, secret)
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(REPO / "app" / "pages" / "1_Data.py"), default_timeout=120).run()
    at.radio(key="data.source").set_value("RWCP folder").run()
    at.text_input(key="data.path").input(str(root)).run()
    assert not at.exception
    skipped = [df for df in at.dataframe if "reason" in getattr(df.value, "columns", [])]
    assert skipped, "the Data page must list the skipped file"
    table = skipped[0].value
    rows = [(str(f), str(r)) for f, r in zip(table["file"], table["reason"])]
    assert any("009.raw" in f and "outside the allowed data folders" in r for f, r in rows), rows
    clip_options = [o for sb in at.selectbox if sb.key == "data.clip" for o in sb.options]
    assert not any("009.raw" in str(o) for o in clip_options)


@pytest.mark.parametrize("command", ["encode-file", "folder-spec", "rwcp-dotdot-spec"])
def test_cli_refuses_files_and_specs_outside_roots(tree, tmp_path, monkeypatch, capsys, command):
    """In-process ``stca`` with STCA_DATA_ROOTS set: audio files and data specs outside are refused."""
    from stca_engine import cli

    allowed, secret = tree
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    (secret / "clip.wav").write_bytes(b"RIFF....WAVE")
    argv = {
        "encode-file": ["encode", str(allowed / ".." / "secret" / "clip.wav"), "--out", str(tmp_path / "o.npz")],
        "folder-spec": ["train", "--data", f"folder:{secret}", "--task", "classify", "--out", str(tmp_path / "run")],
        "rwcp-dotdot-spec": [
            "train",
            "--data",
            f"rwcp:{allowed}/../secret",
            "--task",
            "classify",
            "--out",
            str(tmp_path / "run"),
        ],
    }[command]
    code = cli.main(["--quiet", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("stca: error: ")
    assert "outside the allowed data folders" in err[0]
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("typed", ["data\x00/../../etc", "~no_such_user_stca/x"])
def test_unusable_typed_paths_are_refused_cleanly(tree, typed):
    """Whatever a user types into a folder box is a PathNotAllowedError, never a ValueError/RuntimeError."""
    with pytest.raises(PathNotAllowedError) as ei:
        roots.confine(typed)
    assert "\n" not in str(ei.value)


def test_app_data_page_with_a_nul_byte_in_the_folder(tree, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STCA_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(str(REPO / "app" / "pages" / "1_Data.py"), default_timeout=120).run()
    at.radio(key="data.source").set_value("Folder of class sub-folders").run()
    at.text_input(key="data.path").input("/tmp/x\x00y").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and not any("Something went wrong" in e for e in errors), errors


@pytest.mark.parametrize("name", ["../../etc", "..", "a/b", "/abs", "x\x00y", " spaced out", ".hidden"])
def test_app_model_names_cannot_point_outside_runs(name, tmp_path, monkeypatch):
    """The Train page saves models under runs/<name>: a name is one plain folder name, never a path."""
    import sys

    sys.path.insert(0, str(REPO / "app"))
    import models_ui

    from stca_engine.errors import ConfigError

    with pytest.raises(ConfigError, match=r"use 1–64 letters, digits"):
        models_ui.check_run_name(name)
    monkeypatch.setenv("STCA_RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(StcaError):
        models_ui.load_from_disk(name)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
