"""Quick screening of training variants on the real-sound suite, in one process (data encoded once per seed).

    python benchmarks/screen.py TASK 'JSON list of variants' [SOURCES] [SEEDS]

Each variant is a dict of ``TrainConfig`` fields that change the task's defaults (``stca_engine/defaults.py``),
plus ``_label``, ``_init`` (initial weight std), ``_neuron`` (NeuronConfig fields), ``_readout``
(NeuronConfig fields of the output layer only), and in the first variant ``_encoder`` ("NAME:key=value,...")
``_streams`` (detection) and ``_takes`` (new takes of every training clip, ``prepare_datasets(takes=)``). SEEDS is e.g. ``0,1,2``: each seed draws its own clip split. Every run carves
20 % of the training clips for validation and prints the test score at the last epoch and at the best
validation epoch, per seed and as the median over seeds. docs/RESULTS.md ("What was tried") lists the runs.
Example: python benchmarks/screen.py classify '[{"_label":"Eq. 10","objective":"stca"}]' speech,drums 0,1,2
"""

import json
import statistics
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import real_sounds

from stca_engine.config import NeuronConfig, TrainConfig
from stca_engine.data.sources import prepare_datasets
from stca_engine.defaults import train_defaults
from stca_engine.kernels import LayerParams
from stca_engine.network import SNN
from stca_engine.trainer import Trainer

R = str(real_sounds.default_root())
SPECS = {
    "voices": f"rwcp:{R}/voices",
    "speech": f"rwcp:{R}/speech",
    "instruments": f"rwcp:{R}/instruments",
    "drums": f"folder:{R}/drums",
}


class ReadoutSNN(SNN):
    """An SNN whose output layer has its own neuron constants (screening only)."""

    readout_cfg: NeuronConfig

    def layer_params(self, i):
        if i == len(self.weights) - 1:
            return LayerParams.from_config(self.readout_cfg, spiking=self.output_spiking)
        return super().layer_params(i)


def base_config(task: str, seed: int) -> dict:
    d = train_defaults(task)
    return dict(
        task=task,
        objective=d["objective"],
        hidden=d["hidden"],
        epochs=d["epochs"],
        batch_size=d["batch"],
        optimizer=d["optimizer"],
        lr=d["lr"],
        augment=d["augment"],
        dropout=d["dropout"],
        select=d["select"],
        seed=seed,
        device="cpu",
        init_std=0.05,
    )


def run_one(task, data, v, seed):
    v = dict(v)
    for k in ("_label", "_streams", "_encoder", "_takes"):
        v.pop(k, None)
    neuron = {**dict(tau_m_ms=30.0, tau_s_ms=7.5), **v.pop("_neuron", {})}
    readout = v.pop("_readout", None)
    init_std = v.pop("_init", 0.05)
    tr, te, info = data
    ncfg = NeuronConfig(**neuron)
    tc = TrainConfig(**{**base_config(task, seed), "init_std": init_std, **v})
    cls = SNN
    if readout:
        cls = type("R", (ReadoutSNN,), {"readout_cfg": NeuronConfig(**{**neuron, **readout})})
    net = cls(
        [tr.n_inputs, *tc.hidden, len(tr.class_names)],
        ncfg,
        output_spiking=tc.objective != "margin",
        seed=seed,
        init_std=init_std,
    )
    t = Trainer(net, tr, te, ncfg, tc, val=info["val"])
    t.fit()
    last = t.history[-1].test_metrics
    ep = t.restore_best()
    best = t.evaluate()
    key = "count_accuracy" if task == "detect" else "accuracy"
    return last[key], best[key], ep, t.history[-1].train_loss, best


def main():
    task = sys.argv[1]
    variants = json.loads(sys.argv[2])
    sources = sys.argv[3].split(",") if len(sys.argv) > 3 and sys.argv[3] else list(SPECS)
    seeds = [int(s) for s in sys.argv[4].split(",")] if len(sys.argv) > 4 else [0]
    data = {}
    for seed in seeds:
        for name in sources:
            kw = dict(n_train_streams=int(variants[0].get("_streams", 1000))) if task == "detect" else {}
            kw["takes"] = int(variants[0].get("_takes", 0))
            enc = variants[0].get("_encoder")
            if enc:
                from stca_engine.cli import _make_encoder

                kw["encoder"] = _make_encoder(enc)
            data[name, seed] = prepare_datasets(SPECS[name], task, seed=seed, val_fraction=0.2, **kw)
    for v in variants:
        label = v.get("_label", json.dumps(v))
        t0 = time.time()
        lasts, bests = {n: [] for n in sources}, {n: [] for n in sources}
        for name in sources:
            for seed in seeds:
                last, best, ep, loss, m = run_one(task, data[name, seed], v, seed)
                lasts[name].append(last)
                bests[name].append(best)
                extra = f" F1 {m['event_f1']:.3f} exact {m['stream_accuracy']:.2f}" if task == "detect" else ""
                print(f"  [{label}] {name} seed {seed}: last {last:.3f} best(ep{ep}) {best:.3f}{extra} loss {loss:.3f}")
        med = {n: (statistics.median(lasts[n]), statistics.median(bests[n])) for n in sources}
        mean_last = statistics.mean(m[0] for m in med.values())
        mean_best = statistics.mean(m[1] for m in med.values())
        cells = " | ".join(f"{n} {a:.3f}/{b:.3f}" for n, (a, b) in med.items())
        print(
            f"[{label}] {time.time() - t0:.0f}s median last/best: {cells} | mean {mean_last:.3f}/{mean_best:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
