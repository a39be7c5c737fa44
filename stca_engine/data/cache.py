"""On-disk cache of encoded clips, and the parallel encoder that fills it.

Encoding (matching pursuit) is the slow part of loading a sound dataset, so each clip's spike
train is stored once, keyed by the sha256 of the audio content (and span) plus the encoder's name
and settings: changing a setting or the file misses, moving the dataset still hits. Entries are
``.npz`` files without pickles, written to a temporary file and renamed into place, so concurrent
writers (several app sessions, worker processes) never leave a half-written entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import pickle
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..errors import StcaError
from .clips import AudioClip
from .types import SpikeTrain

CACHE_FORMAT = 1
ENV_DIR = "STCA_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$STCA_CACHE_DIR`` when set, else ``~/.cache/stca``."""
    env = os.environ.get(ENV_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stca"


def _jsonable(obj):
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return _jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def encoder_fingerprint(encoder) -> str:
    """Canonical JSON of what determines an encoding: encoder name and settings."""
    return json.dumps(
        {"encoder": encoder.name, "settings": _jsonable(encoder.settings()), "format": CACHE_FORMAT},
        sort_keys=True,
        separators=(",", ":"),
    )


class SpikeCache:
    """Content-addressed store of ``(SpikeTrain, report)`` under ``directory/<2 hex>/<key>.npz``."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()

    def key(self, clip: AudioClip, encoder, fingerprint: str | None = None) -> str:
        fp = fingerprint if fingerprint is not None else encoder_fingerprint(encoder)
        return hashlib.sha256(f"{clip.content_key()}|{fp}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def get(self, key: str) -> tuple[SpikeTrain, dict] | None:
        """The entry, or ``None`` when absent or unreadable (a corrupt entry is a miss, then rewritten)."""
        p = self.path(key)
        try:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                train = SpikeTrain(
                    z["times"],
                    z["units"],
                    int(meta["n_units"]),
                    int(meta["n_steps"]),
                    float(meta["dt_ms"]),
                )
                return train, meta["report"]
        except FileNotFoundError:
            return None
        except Exception:  # truncated/corrupt file from a crashed older writer: treat as a miss
            return None

    def put(self, key: str, train: SpikeTrain, report: dict) -> Path:
        """Atomic write: temp file in the same folder, then ``os.replace``."""
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps(
            {"n_units": train.n_units, "n_steps": train.n_steps, "dt_ms": train.dt_ms, "report": _jsonable(report)}
        ).encode()
        buf = io.BytesIO()
        np.savez(
            buf,
            times=train.times.astype(np.int32),
            units=train.units.astype(np.int32),
            meta=np.frombuffer(meta, dtype=np.uint8),
        )
        write_atomic(p, buf.getvalue())
        return p

    def size_bytes(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.directory.glob("??/*.npz"))

    def clear(self) -> int:
        """Delete every entry; returns how many."""
        n = 0
        if self.directory.is_dir():
            for f in self.directory.glob("??/*.npz"):
                try:
                    f.unlink()
                    n += 1
                except OSError:
                    pass
        return n


class EncodedClips(list):
    """``encode_clips`` result: one ``(SpikeTrain, report dict)`` per clip, in order, ``None`` where the
    clip could not be used; ``skipped`` lists ``(path, reason)`` for those; ``hits``/``misses``
    count cache use."""

    def __init__(self, items, skipped, hits, misses):
        super().__init__(items)
        self.skipped: list[tuple[str, str]] = skipped
        self.hits = hits
        self.misses = misses


def _as_cache(cache) -> SpikeCache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return SpikeCache()
    if isinstance(cache, SpikeCache):
        return cache
    return SpikeCache(cache)


def _sr_of(encoder) -> int:
    try:
        return int(encoder.settings().get("sr", 16000))
    except Exception:
        return 16000


def _encode_one(clip: AudioClip, encoder, sr: int):
    wave = clip.load(sr=sr)
    return encoder.encode(wave)


def _worker(payload: bytes, chunk: list[tuple[int, AudioClip]], cache_dir: str | None):
    """Encode a chunk in a worker process; writes its own cache entries (atomic)."""
    kind, obj = pickle.loads(payload)
    if kind == "object":
        encoder = obj
    else:
        from ..encoders import make_encoder

        encoder = make_encoder(obj[0], **obj[1])
    return _encode_chunk(encoder, chunk, SpikeCache(cache_dir) if cache_dir else None)


def _blas_single_thread():
    """Small BLAS calls (e.g. the byte-order check's dot products) become ~1000x slower when
    OpenBLAS threads compete with the encoder's FFT/OpenMP threads on few cores; one BLAS thread
    per encoding loop avoids that and costs the encoder nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - shipped with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _encode_chunk(encoder, chunk, cache: SpikeCache | None):
    with _blas_single_thread():
        return _encode_chunk_inner(encoder, chunk, cache)


def _encode_chunk_inner(encoder, chunk, cache: SpikeCache | None):
    sr = _sr_of(encoder)
    fp = encoder_fingerprint(encoder)
    out = []
    for i, clip in chunk:
        try:
            train, report = _encode_one(clip, encoder, sr)
        except StcaError as exc:
            out.append((i, None, None, str(exc)))
            continue
        report = _jsonable(report)  # the same plain dict whether fresh or from the cache
        if cache is not None:
            cache.put(cache.key(clip, encoder, fp), train, report)
        out.append((i, train, report, None))
    return out


def _encoder_payload(encoder) -> bytes:
    try:
        blob = pickle.dumps(("object", encoder))
        pickle.loads(blob)
        return blob
    except Exception:
        return pickle.dumps(("make", (encoder.name, _jsonable(encoder.settings()))))


def _pool_context():
    """forkserver: workers fork from a clean single-threaded server that has imported the engine
    once (a plain fork of a process running torch/Streamlit threads can deadlock; spawn would
    re-import torch in every worker, seconds each)."""
    import multiprocessing as mp

    try:
        ctx = mp.get_context("forkserver")
    except ValueError:  # platforms without fork
        return mp.get_context("spawn")
    ctx.set_forkserver_preload(["stca_engine.data.cache", "stca_engine.audio", "stca_engine.encoders"])
    return ctx


def encode_clips(
    clips: list[AudioClip], encoder, cache=True, progress=None, workers: int | None = None
) -> EncodedClips:
    """Encode ``clips`` with ``encoder``, reading hits from the cache and encoding misses in a pool of
    processes (``workers``: default all cores when there are 3 or more and enough misses, else this
    process; 1 = always this process). ``cache``: ``True`` (default
    folder), ``False``/``None`` (off), a folder or a ``SpikeCache``. Clips that fail with a
    ``StcaError`` (unreadable, silent, ...) are ``None`` in the result and listed in ``.skipped``.
    ``progress(done, total, message)`` is called as clips finish."""
    store = _as_cache(cache)
    total = len(clips)
    results: list = [None] * total
    errors: dict[int, str] = {}
    todo: list[tuple[int, AudioClip]] = []
    done = 0
    fp = encoder_fingerprint(encoder)
    for i, clip in enumerate(clips):
        hit = None
        if store is not None:
            try:
                hit = store.get(store.key(clip, encoder, fp))
            except StcaError as exc:  # the file itself is unreadable
                errors[i] = str(exc)
                done += 1
                continue
        if hit is not None:
            results[i] = hit
            done += 1
        else:
            todo.append((i, clip))
    hits = done - len(errors)
    if progress is not None:
        progress(done, total, f"{hits} cached, encoding {len(todo)}")

    def absorb(batch):
        nonlocal done
        for i, train, report, err in batch:
            if err is not None:
                errors[i] = err
            else:
                results[i] = (train, report)
        done += len(batch)
        if progress is not None:
            progress(done, total, f"encoded {done}/{total}")

    if workers is None:
        # auto: a pool pays a few seconds of start-up (importing the engine in a fresh process) and
        # the encoder's FFTs already use two threads, so on 1-2 cores one process is faster
        cores = os.cpu_count() or 1
        n_workers = cores if cores >= 3 and len(todo) >= 32 else 1
    else:
        n_workers = max(1, int(workers))
    if n_workers > 1 and len(todo) >= 2 * n_workers:
        todo.sort(key=lambda t: (t[1].path, t[1].start_s))  # pieces of one file stay together
        size = max(1, min(32, len(todo) // (n_workers * 4)))
        chunks = [todo[k : k + size] for k in range(0, len(todo), size)]
        payload = _encoder_payload(encoder)
        cache_dir = str(store.directory) if store is not None else None
        pool = ProcessPoolExecutor(n_workers, mp_context=_pool_context())
        futures = []
        try:
            futures = [pool.submit(_worker, payload, ch, cache_dir) for ch in chunks]
            for fut in as_completed(futures):
                absorb(fut.result())
        except BaseException:
            # a stop from ``progress`` (the page went away) or an error: cancel the queued chunks instead
            # of encoding the rest of the dataset for nobody (``with`` would wait for all of them)
            for fut in futures:
                fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    else:
        for k in range(0, len(todo), 8):
            absorb(_encode_chunk(encoder, todo[k : k + 8], store))
    skipped = [
        (
            clips[i].path if not clips[i].start_s and clips[i].end_s is None else f"{clips[i].path} [{clips[i].name}]",
            errors[i],
        )
        for i in sorted(errors)
    ]
    return EncodedClips(results, skipped, hits, len(todo))
