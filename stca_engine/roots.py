"""Where dataset folders may be read from.

A classroom server must not expose arbitrary files: the operator lists allowed roots in
``STCA_DATA_ROOTS`` (``os.pathsep``-separated); by default the user's home and the repo's ``assets/``.
Paths are resolved (``..`` and symlinks followed) before the check, so ``../../etc`` and a symlink
that points out of a root are both refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import PathNotAllowedError

REPO_ASSETS = Path(__file__).resolve().parents[1] / "assets"


def allowed_roots() -> list[Path]:
    raw = os.environ.get("STCA_DATA_ROOTS", "").strip()
    if raw:
        roots = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    else:
        roots = [Path.home(), REPO_ASSETS]
    return [r.resolve() for r in roots]


def is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def confine(path: str | os.PathLike, roots: list[Path] | None = None) -> Path:
    """The resolved path if it lies inside an allowed root, else PathNotAllowedError."""
    roots = allowed_roots() if roots is None else [Path(r).resolve() for r in roots]
    try:
        resolved = Path(path).expanduser().resolve()
    except (ValueError, RuntimeError, OSError) as exc:  # NUL byte, unknown ~user, ...
        raise PathNotAllowedError(f"not a usable path ({exc})", repr(str(path))[1:-1]) from None
    if not any(is_inside(resolved, r) for r in roots):
        shown = ", ".join(str(r) for r in roots)
        raise PathNotAllowedError(
            f"outside the allowed data folders ({shown}); the operator can allow more with STCA_DATA_ROOTS", path
        )
    return resolved
