"""Quick screening of training variants on the real-sound suite, in one process (data encoded once).

    python benchmarks/screen.py TASK 'JSON list of variants' [SOURCES] [SEED]

Each variant is a dict of ``TrainConfig`` fields, plus ``_label``, ``_init`` (initial weight std),
``_neuron`` (NeuronConfig fields), and in the first variant ``_encoder`` ("NAME:key=value,...") and
``_streams`` (detection). Every run carves 20 % of the training clips for validation and prints the test
score at the last epoch and at the best validation epoch. docs/RESULTS.md ("What was tried") lists the runs.
Example: python benchmarks/screen.py classify '[{"_label":"margin","objective":"margin"}]'
"""

import json
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import real_sounds

from stca_engine.config import NeuronConfig, TrainConfig
from stca_engine.data.sources import prepare_datasets
from stca_engine.network import SNN
from stca_engine.trainer import Trainer

R = str(real_sounds.default_root())
SPECS = {
    "voices": f"rwcp:{R}/voices",
    "speech": f"rwcp:{R}/speech",
    "instruments": f"rwcp:{R}/instruments",
    "drums": f"folder:{R}/drums",
}
task = sys.argv[1]
variants = json.loads(sys.argv[2])
sources = sys.argv[3].split(",") if len(sys.argv) > 3 else list(SPECS)
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
data = {}
for name in sources:
    kw = dict(n_train_streams=int(variants[0].get("_streams", 1500))) if task == "detect" else {}
    enc = variants[0].get("_encoder")
    if enc:
        from stca_engine.cli import _make_encoder

        kw["encoder"] = _make_encoder(enc)
    data[name] = prepare_datasets(SPECS[name], task, seed=seed, val_fraction=0.2, **kw)
for v in variants:
    v = dict(v)
    label = v.pop("_label", json.dumps(v))
    v.pop("_streams", None)
    v.pop("_encoder", None)
    neuron = v.pop("_neuron", {})
    init_std = v.pop("_init", 0.05)
    res = []
    t0 = time.time()
    for name in sources:
        tr, te, info = data[name]
        ncfg = NeuronConfig(**{**dict(tau_m_ms=30.0, tau_s_ms=7.5), **neuron})
        base = dict(
            task=task,
            hidden=[300],
            epochs=10,
            batch_size=16,
            optimizer="adam",
            lr=3e-3 if task == "classify" else 1e-2,
            seed=seed,
            device="cpu",
            init_std=init_std,
        )
        base.update(v)
        tc = TrainConfig(**base)
        net = SNN(
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
        if task == "detect":
            res.append(
                f"{name}: last {last['count_accuracy']:.3f}/{last['event_f1']:.3f} val-best(ep{ep}) {best['count_accuracy']:.3f}/{best['event_f1']:.3f}/{best['stream_accuracy']:.2f} fl {best['count_accuracy_floor']:.3f} tr {t.history[-1].train_loss:.3f}"
            )
        else:
            res.append(
                f"{name}: last {last['accuracy']:.3f} best(ep{ep}) {best['accuracy']:.3f} cl {best['mean_clusters']:.2f} tr {t.history[-1].train_loss:.3f}"
            )
    print(f"[{label}] {time.time() - t0:.0f}s | " + " | ".join(res), flush=True)
