"""Atomic file writes: readers (other sessions, other processes) see the old file or the new one,
never a half-written one.

Every file the engine and the CLI write (checkpoints, ``--out`` files, the encoded-clip cache, the
demo set, uploads) goes through :func:`write_atomic` / :func:`write_atomic_with`:

* the target must be a regular file or not exist yet: a device node (``/dev/full``, ``/dev/null``),
  a folder, a FIFO or a socket is refused with a ``ConfigError`` naming the path the caller gave
  (the CLI turns it into one ``stca: error:`` line, exit 2) — ``os.replace`` would otherwise swap the
  node for a regular file;
* a symlink to a regular file is written through (the link stays, its target is replaced);
* the data goes to a temporary file beside the target, which is removed whatever goes wrong;
* a failed write (disk full, permission denied, ...) is a ``ConfigError`` naming the target, not
  the temporary file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import ConfigError

__all__ = ["check_target", "write_atomic", "write_atomic_with"]


def _what(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_target(path: str | os.PathLike) -> Path:
    """The real path to write ``path`` to; ``ConfigError`` (naming ``path``) when it exists and is not a
    regular file, or when its folder cannot hold it."""
    given = Path(path)
    real = Path(os.path.realpath(given))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ConfigError(f"cannot write here ({exc.strerror or exc})", given) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ConfigError(
            f"is {_what(st.st_mode)}, not a regular file; refusing to replace it (choose a file name)", given
        )
    parent = real.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"cannot write here: {parent} is not a folder", given)
    return real


def write_atomic_with(path: str | os.PathLike, write: Callable[[BinaryIO], object], fsync: bool = False) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then ``os.replace`` it into place.
    ``fsync`` also makes it durable across a power cut (checkpoints). Returns ``path``."""
    given = Path(path)
    real = check_target(given)
    tmp = None
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{real.name}.", suffix=".tmp", dir=real.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        check_target(given)  # it may have become a device / folder while we wrote
        os.replace(tmp, real)
        tmp = None
    except OSError as exc:
        raise ConfigError(f"cannot write the file ({exc.strerror or exc})", given) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return given


def write_atomic(path: str | os.PathLike, data: bytes, fsync: bool = False) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then ``os.replace`` it into place."""
    return write_atomic_with(path, lambda f: f.write(data), fsync=fsync)
