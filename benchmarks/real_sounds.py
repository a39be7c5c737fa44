"""Real sound this project did not make: four sources built from Debian packages, for measuring learning.

The demo set is synthetic and made here, so defaults tuned on it say little about a user's recordings.
These sources come from recordings and sample banks that other people made and packaged:

``voices``       human speech: ten phrases spoken by ten different voice actors (the ``hedgewars-data``
                 voice packs: British, Classic, Default, HillBilly, Mobster, Pirate, Robot, Russian,
                 Singer, Surfer), RWCP layout.
``speech``       the words "zero" .. "nine" in many synthetic voices (``espeak-ng``'s accents and voice
                 variants, ``festival``'s diphone voice ``kal`` and HTS voice ``slt``), RWCP layout.
``instruments``  single notes of ten sampled instruments (the FluidR3 General-MIDI sound font rendered
                 through ``fluidsynth``) at different pitches and velocities, RWCP layout, and the same
                 instruments as melodies in the MedleyDB layout (tracks, stems, activation files).
``drums``        recorded drum hits (kick, snare, hi-hats, toms, cymbals, clap, cowbell, stick) from the
                 fourteen ``hydrogen-drumkits`` kits and their velocity layers, as a ``folder:`` tree.

Every clip gets a random level and pink background noise at 10-30 dB SNR; rate changes of a few per cent
(pitch and tempo together) widen the takes where a source has few. Everything is seeded: the same command
writes the same bytes. The trees go to a cache folder outside the repository (``STCA_REAL_SOUNDS``,
default ``~/.cache/stca/real_sounds``) and are rebuilt only when the builder's version changes.

    python benchmarks/real_sounds.py [--out DIR] [--sources voices,speech,...] [--per-class N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

VERSION = 1
SR = 16000
RWCP_SR = 48000
SNR_DB = (10.0, 30.0)
LEVEL_DB = (-20.0, 0.0)

HEDGEWARS = Path("/usr/share/games/hedgewars/Data/Sounds/voices")
VOICE_PACKS = [
    "British",
    "Classic",
    "Default",
    "HillBilly",
    "Mobster",
    "Pirate",
    "Robot",
    "Russian",
    "Singer",
    "Surfer",
]
PHRASES = ["Byebye", "Coward", "Hello", "Incoming", "Missed", "Oops", "Traitor", "Victory", "Yessir", "Hurry"]

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ESPEAK_VOICES = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
ESPEAK_VARIANTS = [
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt4",
    "croak",
    "whisper",
    "Andy",
    "Annie",
    "adam",
    "belinda",
    "benjamin",
    "david",
    "linda",
    "max",
    "michel",
    "paul",
    "steph",
]
FESTIVAL_VOICES = ["kal_diphone", "cmu_us_slt_arctic_hts"]

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
# class name -> (General MIDI program, lowest and highest MIDI note it plays)
INSTRUMENTS = {
    "piano": (0, 36, 96),
    "vibraphone": (11, 53, 89),
    "organ": (19, 36, 84),
    "guitar": (24, 40, 76),
    "bass": (33, 28, 55),
    "violin": (40, 55, 91),
    "cello": (42, 36, 72),
    "trumpet": (56, 55, 82),
    "clarinet": (71, 50, 86),
    "flute": (73, 60, 96),
}

HYDROGEN = Path("/usr/share/hydrogen/data/drumkits")
# class -> regex on the kit's instrument name (first match wins, in this order)
DRUMS = [
    ("clap", r"clap"),
    ("cowbell", r"cowbell"),
    ("stick", r"stick|rim"),
    ("ride", r"ride"),
    ("crash", r"crash|splash|china"),
    ("hihat-open", r"(open|opened)\b.*h|h.*(open|opened)"),
    ("hihat-closed", r"(closed|chh|pedal).*h|h.*(closed|pedal)"),
    ("tom", r"\btom"),
    ("snare", r"snare"),
    ("kick", r"kick|bass ?drum|\bbd\b"),
]

DEBIAN_PACKAGES = {
    "voices": ["hedgewars-data"],
    "speech": ["espeak-ng", "festival", "festvox-kallpc16k", "festvox-us-slt-hts"],
    "instruments": ["fluidsynth", "fluid-soundfont-gm"],
    "drums": ["hydrogen-drumkits"],
}
SOURCES = ("voices", "speech", "instruments", "drums")
LAYOUTS = {"voices": "rwcp", "speech": "rwcp", "instruments": "rwcp", "drums": "folder"}


class MissingPackage(RuntimeError):
    """A Debian package a source is built from is not installed."""


def default_root() -> Path:
    return Path(os.environ.get("STCA_REAL_SOUNDS", Path.home() / ".cache" / "stca" / "real_sounds")).expanduser()


# ------------------------------------------------------------------------------------------------
# signal helpers
# ------------------------------------------------------------------------------------------------
def read_audio(path, sr: int = SR) -> np.ndarray:
    """Mono float32 at ``sr`` (soundfile + soxr, as the engine reads audio)."""
    import soundfile as sf
    import soxr

    x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return soxr.resample(x, rate, sr).astype(np.float32) if rate != sr else x


def trim(x: np.ndarray, db: float = 40.0, pad_s: float = 0.02, sr: int = SR) -> np.ndarray:
    """Cut leading and trailing parts more than ``db`` below the peak (keeping a little pad)."""
    if not np.any(x):
        return x
    env = np.abs(x)
    idx = np.flatnonzero(env >= env.max() * 10 ** (-db / 20))
    pad = int(pad_s * sr)
    return x[max(0, idx[0] - pad) : idx[-1] + pad + 1]


def change_rate(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch and tempo together), as a different take would."""
    import soxr

    if abs(factor - 1.0) < 1e-6:
        return x
    return soxr.resample(x, SR * factor, SR).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise (spectrum shaped in the frequency domain), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return (y / (np.sqrt(np.mean(y**2)) + 1e-12)).astype(np.float32)


def finish(x: np.ndarray, rng: np.random.Generator, max_s: float = 1.2) -> tuple[np.ndarray, dict]:
    """Random level, pink noise at 10-30 dB SNR (against the sound's own RMS), 30-80 ms of noisy lead-in."""
    x = trim(x)[: int(max_s * SR)]
    x = x / (np.abs(x).max() + 1e-12)
    lead = int(rng.uniform(0.03, 0.08) * SR)
    tail = int(rng.uniform(0.03, 0.08) * SR)
    y = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(tail, np.float32)])
    snr = float(rng.uniform(*SNR_DB))
    rms = float(np.sqrt(np.mean(x**2)))
    y = y + pink_noise(len(y), rng) * rms * 10 ** (-snr / 20)
    level = float(rng.uniform(*LEVEL_DB))
    y = y / (np.abs(y).max() + 1e-12) * 0.9 * 10 ** (level / 20)
    return y.astype(np.float32), {"snr_db": round(snr, 2), "level_db": round(level, 2)}


# ------------------------------------------------------------------------------------------------
# sources: each yields (class name, waveform at SR, what varies) for n clips per class
# ------------------------------------------------------------------------------------------------
def _need(path: Path, source: str) -> None:
    if not path.exists():
        pkgs = " ".join(DEBIAN_PACKAGES[source])
        raise MissingPackage(f"{source}: {path} is missing; install it with: apt-get install -y {pkgs}")


def voices_clips(n: int, rng: np.random.Generator, classes=PHRASES, packs=VOICE_PACKS):
    """Each phrase by every voice pack, then more takes of a random pack with a small rate change."""
    _need(HEDGEWARS, "voices")
    for cls in classes:
        takes = {p: read_audio(HEDGEWARS / p / f"{cls}.ogg") for p in packs}
        for i in range(n):
            pack = packs[i] if i < len(packs) else packs[int(rng.integers(len(packs)))]
            factor = 1.0 if i < len(packs) else float(rng.uniform(0.9, 1.1))
            yield cls, change_rate(takes[pack], factor), {"speaker": pack, "rate": round(factor, 3)}


def _espeak(word: str, voice: str, pitch: int, speed: int, out: Path) -> None:
    subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(out), word],
        check=True,
        capture_output=True,
    )


def _festival(word: str, voice: str, out: Path) -> None:
    script = f'(voice_{voice})\n(utt.save.wave (SayText "{word}") "{out}" \'riff)\n'
    subprocess.run(["festival", "--pipe"], input=script.encode(), check=True, capture_output=True)


def speech_clips(n: int, rng: np.random.Generator, classes=WORDS, festival: bool = True):
    """Each word in random accents, voice variants, pitches and speeds; a few clips from festival."""
    if shutil.which("espeak-ng") is None:
        _need(Path("/usr/bin/espeak-ng"), "speech")
    use_festival = festival and shutil.which("festival") is not None
    with tempfile.TemporaryDirectory(prefix="stca_speech_") as tmp:
        out = Path(tmp) / "w.wav"
        for cls in classes:
            for i in range(n):
                if use_festival and i % 8 == 7:
                    voice = FESTIVAL_VOICES[(i // 8) % len(FESTIVAL_VOICES)]
                    _festival(cls, voice, out)
                    factor = float(rng.uniform(0.9, 1.1))
                    yield cls, change_rate(read_audio(out), factor), {"voice": voice, "rate": round(factor, 3)}
                    continue
                voice = (
                    f"{ESPEAK_VOICES[int(rng.integers(len(ESPEAK_VOICES)))]}+"
                    f"{ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]}"
                )
                pitch, speed = int(rng.integers(20, 80)), int(rng.integers(130, 210))
                _espeak(cls, voice, pitch, speed, out)
                yield cls, read_audio(out), {"voice": voice, "pitch": pitch, "speed": speed}


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, program: int, notes: list[tuple[float, float, int, int]]) -> None:
    """A one-track standard MIDI file: ``notes`` are (start s, length s, key, velocity), 120 bpm."""
    tpq = 480  # ticks per quarter note; 120 bpm -> 960 ticks per second
    events = []
    for start, length, key, vel in notes:
        events.append((int(round(start * 960)), 1, bytes([0x90, key, vel])))
        events.append((int(round((start + length) * 960)), 0, bytes([0x80, key, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    body = bytearray(b"\x00" + bytes([0xC0, program]))
    now = 0
    for t, _, msg in events:
        body += _vlq(t - now) + msg
        now = t
    body += b"\x00\xff\x2f\x00"
    path.write_bytes(
        b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(body)) + bytes(body)
    )


def render_midi(mid: Path, wav: Path, gain: float = 0.6) -> np.ndarray:
    """fluidsynth renders the MIDI file with the FluidR3 sound font (reverb and chorus on, its defaults)."""
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-g", str(gain), "-r", str(SR), "-F", str(wav), str(SOUNDFONT), str(mid)],
        check=True,
        capture_output=True,
    )
    return read_audio(wav)


def instrument_clips(n: int, rng: np.random.Generator, classes=tuple(INSTRUMENTS)):
    """Single notes, one every 2 s in one rendering per instrument, then cut apart."""
    _need(SOUNDFONT, "instruments")
    if shutil.which("fluidsynth") is None:
        _need(Path("/usr/bin/fluidsynth"), "instruments")
    with tempfile.TemporaryDirectory(prefix="stca_inst_") as tmp:
        for cls in classes:
            program, lo, hi = INSTRUMENTS[cls]
            notes = [
                (
                    2.0 * i + 0.1,
                    float(rng.uniform(0.35, 0.9)),
                    int(rng.integers(lo, hi + 1)),
                    int(rng.integers(50, 128)),
                )
                for i in range(n)
            ]
            write_midi(Path(tmp) / "n.mid", program, notes)
            x = render_midi(Path(tmp) / "n.mid", Path(tmp) / "n.wav")
            for start, length, key, vel in notes:
                a = int(start * SR)
                piece = x[a : a + int((length + 0.35) * SR)]
                yield cls, piece, {"key": key, "velocity": vel, "length_s": round(length, 3)}


def drum_samples(classes=None) -> dict[str, list[tuple[str, Path]]]:
    """class -> [(kit, sample file)] over every kit's instruments and velocity layers."""
    _need(HYDROGEN, "drums")
    found: dict[str, list[tuple[str, Path]]] = {c: [] for c, _ in DRUMS}
    for xml in sorted(HYDROGEN.glob("*/drumkit.xml")):
        root = ET.parse(xml).getroot()
        ns = root.tag.split("}")[0] + "}" if "}" in root.tag else ""
        for ins in root.iter(ns + "instrument"):
            name = (ins.findtext(ns + "name") or "").lower()
            cls = next((c for c, rx in DRUMS if re.search(rx, name)), None)
            if cls is None or "roll" in name:
                continue
            for f in ins.iter(ns + "filename"):
                if f.text and (xml.parent / f.text).is_file():
                    found[cls].append((xml.parent.name, xml.parent / f.text))
    wanted = classes or [c for c, _ in DRUMS]
    return {c: sorted(set(found[c])) for c in wanted}


def drum_clips(n: int, rng: np.random.Generator, classes=None):
    """Every recorded sample of a class once, then more with a small rate change."""
    samples = drum_samples(classes)
    for cls, files in samples.items():
        if not files:
            continue
        order = rng.permutation(len(files))
        for i in range(n):
            kit, path = files[int(order[i % len(files)])]
            factor = 1.0 if i < len(files) else float(rng.uniform(0.92, 1.08))
            yield (
                cls,
                change_rate(read_audio(path), factor)[: int(0.8 * SR)],
                {"kit": kit, "file": path.name, "rate": round(factor, 3)},
            )


BUILDERS = {"voices": voices_clips, "speech": speech_clips, "instruments": instrument_clips, "drums": drum_clips}


# ------------------------------------------------------------------------------------------------
# layouts
# ------------------------------------------------------------------------------------------------
def _write_rwcp(root: Path, cls: str, i: int, x: np.ndarray) -> Path:
    import soxr

    d = root / "nospeech" / "drysrc" / "real" / cls / "48khz"
    d.mkdir(parents=True, exist_ok=True)
    y = soxr.resample(x, SR, RWCP_SR)
    pcm = np.clip(np.round(y * 32767), -32768, 32767).astype("<i2")
    path = d / f"{i:03d}.raw"
    path.write_bytes(pcm.tobytes())
    return path


def _write_folder(root: Path, cls: str, i: int, x: np.ndarray) -> Path:
    import soundfile as sf

    d = root / cls
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{cls}_{i:03d}.wav"
    sf.write(str(path), x, SR, subtype="PCM_16")
    return path


def build_source(
    name: str, root: Path, per_class: int = 40, seed: int = 0, classes=None, progress=None, **builder_kw
) -> Path:
    """Write source ``name`` under ``root/name`` (its loader's layout) and a manifest; return the folder."""
    layout = LAYOUTS[name]
    out = root / name
    manifest = {
        "version": VERSION,
        "source": name,
        "layout": layout,
        "per_class": per_class,
        "seed": seed,
        "classes": list(classes) if classes else None,
        "options": builder_kw,
    }
    mpath = out / "manifest.json"
    if mpath.is_file():
        try:
            old = json.loads(mpath.read_text())
            if {k: old.get(k) for k in manifest} == manifest:
                return out
        except (OSError, ValueError):
            pass
    tmp = root / f".{name}.building"
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng([seed, SOURCES.index(name)])
    kw = dict(builder_kw)
    if classes:
        kw["classes"] = list(classes)
    writer = _write_rwcp if layout == "rwcp" else _write_folder
    counts: dict[str, int] = {}
    clips = []
    for cls, x, meta in BUILDERS[name](per_class, rng, **kw):
        i = counts.get(cls, 0)
        y, extra = finish(x, rng)
        path = writer(tmp, cls, i, y)
        counts[cls] = i + 1
        clips.append(
            {"class": cls, "file": str(path.relative_to(tmp)), "seconds": round(len(y) / SR, 3), **meta, **extra}
        )
        if progress is not None:
            progress(name, len(clips))
    manifest["counts"] = counts
    (tmp / "clips.json").write_text(json.dumps(clips, indent=0))
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


# ------------------------------------------------------------------------------------------------
# MedleyDB layout: melodies of the sampled instruments, one track per take
# ------------------------------------------------------------------------------------------------
def build_medleydb(
    root: Path, tracks_per_class: int = 5, track_s: float = 14.0, seed: int = 0, classes=tuple(INSTRUMENTS)
) -> Path:
    """``root/instruments-medleydb/Audio/<T>/...``: per instrument ``tracks_per_class`` melody stems of
    ``track_s`` seconds with pauses, activation-confidence files, metadata YAML (MedleyDB's layout)."""
    import soundfile as sf
    import yaml

    _need(SOUNDFONT, "instruments")
    out = root / "instruments-medleydb"
    manifest = {
        "version": VERSION,
        "layout": "medleydb",
        "tracks_per_class": tracks_per_class,
        "track_s": track_s,
        "seed": seed,
        "classes": list(classes),
    }
    mpath = out / "manifest.json"
    if mpath.is_file():
        try:
            if json.loads(mpath.read_text()) == manifest:
                return out
        except (OSError, ValueError):
            pass
    tmp = root / ".instruments-medleydb.building"
    shutil.rmtree(tmp, ignore_errors=True)
    act_dir = tmp / "Annotations" / "Instrument_Activations" / "ACTIVATION_CONF"
    act_dir.mkdir(parents=True)
    rng = np.random.default_rng([seed, 99])
    hop = 2048 / 44100
    with tempfile.TemporaryDirectory(prefix="stca_mdb_") as work:
        for cls in classes:
            program, lo, hi = INSTRUMENTS[cls]
            for k in range(tracks_per_class):
                name = f"{cls.capitalize()}Take{k + 1}"
                notes, t = [], 0.2
                centre = int(rng.integers(lo + 4, hi - 3))
                while t < track_s - 1.0:
                    phrase_end = min(track_s - 0.5, t + float(rng.uniform(3.0, 6.0)))
                    while t < phrase_end:
                        length = float(rng.choice([0.25, 0.375, 0.5, 0.75, 1.0]))
                        key = int(np.clip(centre + rng.integers(-7, 8), lo, hi))
                        notes.append((t, length * 0.95, key, int(rng.integers(55, 120))))
                        t += length
                    t += float(rng.uniform(0.5, 1.5))  # a pause between phrases
                write_midi(Path(work) / "m.mid", program, notes)
                x = render_midi(Path(work) / "m.mid", Path(work) / "m.wav")[: int(track_s * SR)]
                snr = float(rng.uniform(*SNR_DB))
                rms = float(np.sqrt(np.mean(x[np.abs(x) > 1e-4] ** 2))) if np.any(np.abs(x) > 1e-4) else 1.0
                x = x + pink_noise(len(x), rng) * rms * 10 ** (-snr / 20)
                x = (x / (np.abs(x).max() + 1e-12) * 0.8).astype(np.float32)
                tdir = tmp / "Audio" / name
                (tdir / f"{name}_STEMS").mkdir(parents=True)
                sf.write(str(tdir / f"{name}_STEMS" / f"{name}_STEM_01.wav"), x, SR, subtype="PCM_16")
                meta = {
                    "artist": "FluidR3 GM",
                    "title": name,
                    "has_bleed": "no",
                    "stems": {"S01": {"instrument": cls, "filename": f"{name}_STEM_01.wav", "component": "melody"}},
                }
                (tdir / f"{name}_METADATA.yaml").write_text(yaml.safe_dump(meta))
                frames = np.arange(0.0, len(x) / SR, hop)
                active = np.zeros(len(frames))
                for start, length, _, _ in notes:
                    active[(frames >= start) & (frames < start + length + 0.1)] = 1.0
                lines = ["time,S01"] + [f"{f:.4f},{a:.2f}" for f, a in zip(frames, active)]
                (act_dir / f"{name}_ACTIVATION_CONF.lab").write_text("\n".join(lines) + "\n")
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def data_spec(name: str, root: Path | None = None) -> str:
    """The ``--data`` string for a built source."""
    root = root or default_root()
    if name == "instruments-medleydb":
        return f"medleydb:{root / name}"
    return f"{LAYOUTS[name]}:{root / name}"


def build_all(
    root: Path | None = None, sources=SOURCES, per_class: int = 40, medleydb: bool = True, quiet: bool = False
) -> dict[str, str]:
    """Build (or reuse) every source; ``{name: data spec}``."""
    from tqdm import tqdm

    root = root or default_root()
    root.mkdir(parents=True, exist_ok=True)
    specs = {}
    for name in sources:
        bar = tqdm(total=per_class * 10, desc=f"building {name}", disable=quiet, leave=False)

        def progress(_, n, bar=bar):
            bar.update(n - bar.n)

        build_source(name, root, per_class=per_class, progress=progress)
        bar.close()
        specs[name] = data_spec(name, root)
    if medleydb:
        build_medleydb(root)
        specs["instruments-medleydb"] = data_spec("instruments-medleydb", root)
    return specs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="cache folder (default $STCA_REAL_SOUNDS or ~/.cache/stca/real_sounds)")
    p.add_argument("--sources", default=",".join(SOURCES))
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--no-medleydb", action="store_true")
    a = p.parse_args(argv)
    try:
        specs = build_all(
            Path(a.out) if a.out else None, [s for s in a.sources.split(",") if s], a.per_class, not a.no_medleydb
        )
    except MissingPackage as exc:
        print(f"real_sounds: error: {exc}", file=sys.stderr)
        return 2
    for name, spec in specs.items():
        print(f"{name}: --data {spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
