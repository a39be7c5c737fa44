"""Detection on whole recordings: the `stca detect` path (audio -> spikegram -> chunked network).

Training and `stca eval` splice streams in the spike domain. This script checks the path a user
takes instead: it splices *waveforms* of the demo set's **test** clips into recordings (the same
random plan as the spike streams, ``streams.stream_audio``), writes them as wav files, encodes each
whole recording and runs ``detect_events`` on it (in chunks of ``--chunk-seconds``), then scores the
detections against the true event spans with the project's event-F1 rule (a cluster must lie inside
an event of its class, widened by T_in) and the per-class counts.

    python scripts/results_detect_demo.py MODEL_DIR [--recordings 20] [--events 5] [--chunk-seconds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--recordings", type=int, default=20)
    p.add_argument("--events", type=int, default=5)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--chunk-seconds", type=float, default=5.0)
    p.add_argument("--out", default=str(REPO / "runs" / "detect_demo"))
    a = p.parse_args(argv)

    import soundfile as sf

    from stca_engine.checkpoint import load_model
    from stca_engine.cli import _make_encoder, encode_audio_file
    from stca_engine.data import metrics as M
    from stca_engine.data.demo import load_demo
    from stca_engine.data.streams import stream_audio
    from stca_engine.detect import detect_events

    net, info = load_model(a.model, device="cpu")
    cfg = info.neuron_cfg
    encoder = _make_encoder(info.encoder_settings)
    clips = load_demo(seed=int((info.extra or {}).get("seed", 0)))
    if list(clips.class_names) != list(info.class_names):
        sys.exit(f"model classes {info.class_names} differ from the demo's {clips.class_names}")
    waves = [(clips.clips[i].load(16000), clips.class_index(clips.clips[i])) for i in clips.test_idx]
    recs = stream_audio(waves, a.recordings, a.events, seed=a.seed, n_classes=len(clips.class_names), dt_ms=cfg.dt_ms)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    chunk = max(1, int(round(a.chunk_seconds * 1000 / cfg.dt_ms)))
    rasters, events, pred, true = [], [], [], []
    for r in recs:
        path = out / f"{r.name}.wav"
        sf.write(path, r.wave, r.sr)
        spikes = encode_audio_file(str(path), encoder, cfg.dt_ms)
        res = detect_events(net, cfg, spikes, info.class_names, chunk_steps=chunk, keep_voltages=False)
        raster = np.zeros((spikes.n_steps, len(info.class_names)), np.uint8)
        for c, steps in enumerate(res.spike_steps):
            raster[steps, c] = 1
        rasters.append(raster)
        events.append(r.events)
        counts = res.counts()
        pred.append([counts[c] for c in info.class_names])
        true.append(list(r.target))
    f1 = M.event_f1(rasters, events, cfg.t_in_steps, cfg.t_in_steps)
    summary = {
        "recordings": len(recs),
        "events": int(np.sum(true)),
        "count_accuracy": M.count_accuracy(pred, true),
        "stream_accuracy": M.stream_accuracy(pred, true),
        "event_f1": f1["f1"],
        "event_precision": f1["precision"],
        "event_recall": f1["recall"],
        "chunk_seconds": a.chunk_seconds,
        "wav_folder": str(out),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
