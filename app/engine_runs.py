"""The engine side of a Train page run: page settings -> validated configs -> datasets -> one
``Trainer`` per objective, each wrapped as the worker's ``EpochRunner`` (``EngineRunner``), plus the
run's memory estimate before Start. No Streamlit, no threads: ``training_worker`` runs what this builds.
"""

from __future__ import annotations

import numpy as np
from training_worker import ProgressFn, Setup, StopCheck, StopRequested

OBJECTIVE_LABELS = {"stca": "STCA", "tdp1": "TDP1", "margin": "Margin"}
UPLOADS = "uploads"  # the data setting for the sounds this session uploaded or recorded on the Data page
NO_UPLOADS = (
    "this run trains on the sounds uploaded or recorded on the Data page, but this session has none: "
    "add them there (Upload files, a .zip of class folders, or Microphone)"
)
MAX_KEPT_WEIGHT_BYTES = 64 * 2**20  # per run: weights of every epoch are kept for replay up to this size


class EngineRunner:
    """One ``stca_engine.Trainer`` seen as an ``EpochRunner``.

    After each epoch it keeps a CPU copy of the weights (for replaying any probe sample at any earlier
    epoch and for handing a model to the Detect page while training goes on); the training network
    itself is only ever touched by the worker thread.
    """

    def __init__(self, trainer, objective: str):
        import threading as _threading

        self.trainer = trainer
        self.objective = objective
        self.weights_by_epoch: dict[int, list] = {0: self.current_weights()}  # 0: the initial weights
        self._kept_bytes = sum(w.numel() * w.element_size() for w in self.weights_by_epoch[0])
        self._probe_lock = _threading.Lock()
        self._probe_net = None

    # ---- EpochRunner ----------------------------------------------------------------------------
    def run_epoch(self, should_stop: StopCheck):
        def on_batch(_report):
            if should_stop():
                self.trainer.request_stop()

        if should_stop():
            return None
        report = self.trainer.step_epoch(on_batch=on_batch)
        if report is not None:
            weights = self.current_weights()
            size = sum(w.numel() * w.element_size() for w in weights)
            if self._kept_bytes + size > MAX_KEPT_WEIGHT_BYTES and self.weights_by_epoch:
                # thin out: drop every other kept epoch (the first and the newest always stay)
                kept = sorted(self.weights_by_epoch)
                for e in kept[1:-1:2]:
                    del self.weights_by_epoch[e]
                self._kept_bytes = size * len(self.weights_by_epoch)
            self.weights_by_epoch[report.epoch] = weights
            self._kept_bytes += size
        return report

    def current_weights(self) -> list:
        return [w.detach().to("cpu", copy=True) for w in self.trainer.net.weights]

    def snapshot(self) -> list:
        """The model to hand out: the best validation epoch's weights when the run selects on
        validation (``select="best-val"``), else the latest."""
        best = self.trainer.best_weights()
        if self.trainer.cfg.select == "best-val" and best is not None:
            return [w.detach().to("cpu", copy=True) for w in best]
        return self.current_weights()

    # ---- for the page ---------------------------------------------------------------------------
    @property
    def neuron_cfg(self):
        return self.trainer.neuron_cfg

    @property
    def probe_set(self):
        return self.trainer._probe_set

    def architecture(self) -> dict:
        return self.trainer.net.to_dict()

    def set_probe_index(self, index: int) -> None:
        """Later epochs report this sample (an int store: safe while the worker trains)."""
        if 0 <= int(index) < len(self.probe_set):
            self.trainer.cfg.probe_index = int(index)

    def build_net(self, weights):
        """A fresh network (own copy, CPU) holding ``weights``: safe to use while training goes on."""
        import torch

        from stca_engine.network import SNN

        net = SNN.from_dict(self.architecture(), dtype=weights[0].dtype, device="cpu")
        with torch.no_grad():
            for p, w in zip(net.weights, weights):
                p.copy_(w)
        return net

    def _with_net_at(self, epoch: int, fn):
        """``fn(net)`` on the page's own network holding the weights after ``epoch`` (None if not kept)."""
        weights = self.weights_by_epoch.get(int(epoch))
        if weights is None:
            return None
        with self._probe_lock:
            if self._probe_net is None:
                self._probe_net = self.build_net(weights)
            else:
                import torch

                with torch.no_grad():
                    for p, w in zip(self._probe_net.weights, weights):
                        p.copy_(w)
            return fn(self._probe_net)

    def probe_at(self, epoch: int, index: int):
        """The ``Probe`` of sample ``index`` under the weights after ``epoch`` (None if not kept)."""
        from stca_engine.reports import make_probe

        cfg = self.trainer.cfg
        return self._with_net_at(
            epoch,
            lambda net: make_probe(net, self.probe_set, int(index), self.trainer.neuron_cfg, cfg.task, self.objective),
        )

    def credit_at(self, epoch: int, index: int):
        """The ``CreditMap`` of sample ``index`` under the weights after ``epoch``: where the loss would send
        its error now (None if those weights are not kept)."""
        from stca_engine.credit import credit_of_sample

        cfg = self.trainer.cfg
        return self._with_net_at(
            epoch,
            lambda net: credit_of_sample(
                net, self.probe_set, int(index), self.trainer.neuron_cfg, cfg.task, self.objective, cfg.tdp1_spikes
            ),
        )

    def weight_change(self, epoch: int):
        """``(ΔW per layer as numpy [n_out, n_in], from_epoch)``: the weights after ``epoch`` minus those after
        the nearest earlier kept epoch (``epoch - 1`` unless long runs thinned the kept copies); None when
        ``epoch`` is not kept."""
        after = self.weights_by_epoch.get(int(epoch))
        earlier = [e for e in list(self.weights_by_epoch) if e < int(epoch)]
        if after is None or not earlier:
            return None
        before_epoch = max(earlier)
        before = self.weights_by_epoch.get(before_epoch)
        if before is None:
            return None
        return [(a - b).float().numpy() for a, b in zip(after, before)], before_epoch


def train_config_for(settings, objective: str, has_val: bool = True):
    """``TrainConfig`` of one run from the page's ``TrainSettings`` (validated)."""
    from state import SGD_MOMENTUM  # the page's "SGD (momentum 0.9)"

    from stca_engine.config import TrainConfig
    from stca_engine.defaults import REGULARISATION

    reg = {k: REGULARISATION[k] for k in ("augment", "dropout", "select")} if _regularised(settings) else {}
    if not has_val:
        reg.pop("select", None)  # no validation split (the data came without one): keep the last epoch
    return TrainConfig(
        task=settings.task,
        objective=objective,
        hidden=settings.hidden_sizes(),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        optimizer=settings.optimizer,
        lr=float(settings.lr),
        seed=settings.seed,
        init_std=float(settings.init_std),
        revive=bool(getattr(settings, "revive", True)),
        momentum=SGD_MOMENTUM if settings.optimizer == "sgd" else 0.0,
        probe_index=0,
        device="auto",
        dtype="float32",
        **reg,
    ).validate()


def _regularised(settings) -> bool:
    return bool(getattr(settings, "regularise", False))


def neuron_config_for(settings):
    from stca_engine.config import NeuronConfig

    return NeuronConfig(**settings.neuron_dict())


def check_settings(settings) -> list[str]:
    """Every problem that would stop a run from starting, phrased for the user (empty = fine)."""
    from stca_engine.errors import StcaError as _E

    problems = []
    for obj in settings.objectives():
        try:
            train_config_for(settings, obj)
        except _E as exc:
            problems.append(str(exc))
    try:
        neuron_config_for(settings)
    except _E as exc:
        problems.append(str(exc))
    try:
        from stca_engine.data.sources import parse_data_spec

        if settings.data != UPLOADS:  # the session's upload set: checked when the run starts
            parse_data_spec(settings.data)
    except _E as exc:
        problems.append(str(exc))
    return list(dict.fromkeys(problems))


def _is_image(settings) -> bool:
    from stca_engine.data.sources import parse_data_spec

    return settings.data != UPLOADS and parse_data_spec(settings.data).is_image


def _upload_set_or_fail(upload_set):
    from stca_engine.errors import DatasetError

    if upload_set is None:
        raise DatasetError(NO_UPLOADS, UPLOADS)
    return upload_set


def _sample_label(sample, class_names) -> str:
    """'stream 3: horn, bells, horn' for streams, 'clip 4: horn' for single clips."""
    if sample.events:
        seq = ", ".join(class_names[e.class_index] for e in sample.events)
        return f"{sample.name}: {seq}" if sample.name else seq
    if not isinstance(sample.target, np.ndarray) and class_names:
        return f"{sample.name}: {class_names[int(sample.target)]}" if sample.name else class_names[int(sample.target)]
    return sample.name or "sample"


def make_engine_setup(settings, prepare_data=None, upload_set=None) -> Setup:
    """The worker's ``setup`` for one page run: encode the datasets (with progress), then build one
    ``Trainer`` per objective on the same data with the same seed (so the same initial weights).

    ``prepare_data(settings, progress) -> (train, test, info)`` defaults to the engine's data sources;
    tests pass their own datasets. ``upload_set``: the session's uploaded ``ClipSet``, used when the
    settings' data is ``uploads``."""
    if prepare_data is None:

        def prepare_data(s, progress):
            if upload_set is None:
                return prepare_engine_data(s, progress)
            return prepare_engine_data(s, progress, upload_set=upload_set)

    def setup(progress: ProgressFn, should_stop: StopCheck):
        from stca_engine.trainer import Trainer

        neuron_cfg = neuron_config_for(settings)
        train, test, info = prepare_data(settings, progress)
        if should_stop():
            raise StopRequested()
        from stca_engine.memory import check_run, dataset_spike_bytes, longest_steps
        from stca_engine.network import build_network

        # the exact estimate, now that the longest sample is known: refused above STCA_MAX_RUN_MB
        val = (info or {}).get("val") if isinstance(info, dict) else None
        est = check_run(
            run_estimate(
                settings,
                longest_steps(train, test, val),
                int(train.n_inputs),
                len(train.class_names),
                dataset_spike_bytes(train, test, val),
            ),
            "training run",
        )

        runners = {}
        val = (info or {}).get("val") if _regularised(settings) else None
        val = val if val is not None and len(val) else None  # too few clips to hold any out
        for objective in settings.objectives():
            cfg = train_config_for(settings, objective, has_val=val is not None)
            # the engine's one network rule; same seed -> the same initial weights for every objective
            net = build_network(cfg, neuron_cfg, train.n_inputs, len(train.class_names))
            runners[objective] = EngineRunner(Trainer(net, train, test, neuron_cfg, cfg, val=val), objective)
        probe_set = next(iter(runners.values())).probe_set
        class_names = list(train.class_names)
        out = {
            "class_names": class_names,
            "n_inputs": int(train.n_inputs),
            "n_train": len(train),
            "n_test": 0 if test is None else len(test),
            "probe_names": [_sample_label(smp, class_names) for smp in probe_set.samples[:200]],
            "memory": est.describe(),
            "summary": (
                f"{len(train)} training and {0 if test is None else len(test)} test "
                f"{'streams' if settings.task == 'detect' else 'clips'} · {len(class_names)} classes · "
                f"{train.n_inputs} input afferents · network "
                f"{'-'.join(str(n) for n in [train.n_inputs, *settings.hidden_sizes(), len(class_names)])}"
            ),
            **{k: v for k, v in dict(info or {}).items() if k != "val"},
        }
        return runners, out

    return setup


def run_estimate(settings, n_steps: int, n_inputs: int, n_classes: int, data_bytes: int = 0):
    """``memory.RunEstimate`` of the page's run: every objective's network (compared runs keep both),
    the weights kept per epoch for replay, one minibatch of the longest sample."""
    from stca_engine.memory import estimate_run

    cfg = train_config_for(settings, settings.objective)
    sizes = [int(n_inputs), *cfg.hidden, int(n_classes)]
    w_bytes = sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) * 4
    kept = min((int(settings.epochs) + 1) * w_bytes, MAX_KEPT_WEIGHT_BYTES + w_bytes) + w_bytes  # + the probe net
    return estimate_run(
        sizes,
        n_steps,
        cfg.batch_size,
        cfg.dtype,
        cfg.optimizer,
        cfg.momentum,
        n_runs=len(settings.objectives()),
        data_bytes=data_bytes,
        kept_weight_bytes=kept,
    )


def planned_estimate(settings, longest_clip_s: float | None, n_inputs: int | None = None, n_classes: int | None = None):
    """The estimate shown before Start, from the settings and the longest clip of the source (its
    header; ``longest_clip_s``): a stream is at most ``events_per_stream`` such clips plus its
    longest gaps. The datasets' spikes are only counted once encoded (the check after encoding)."""
    from stca_engine.data.streams import DEFAULT_GAP_S

    is_image = _is_image(settings)
    dt = float(settings.dt_ms)
    if is_image:
        n_steps = 250  # the rate encoder's default
    else:
        seconds = float(longest_clip_s or 1.0)
        if settings.task == "detect":
            k = int(settings.events_per_stream)
            seconds = k * seconds + (k + 1) * DEFAULT_GAP_S[1]
        n_steps = int(np.ceil(seconds * 1000.0 / dt))
    if n_inputs is None:
        n_inputs = 64 if is_image else encoder_for(settings).n_units
    if n_classes is None:
        n_classes = len(settings.class_list() or []) or 4
    return run_estimate(settings, n_steps, n_inputs, n_classes)


def _clipset_for(settings, upload_set):
    """The settings' data as a loaded set: the session's uploads (restricted to the chosen classes), or
    the data spec's source with folders confined to the allowed roots."""
    from stca_engine.data import sources

    if settings.data == UPLOADS:
        cs = _upload_set_or_fail(upload_set)
        return cs.subset(settings.class_list()) if settings.class_list() else cs
    opts = {"seed": int(settings.seed)}
    if settings.class_list():
        opts["classes"] = settings.class_list()
    return sources.load_clipset(sources.parse_data_spec(settings.data), restrict=True, **opts)


def source_outline(settings, upload_set=None) -> dict:
    """``{"longest_clip_s", "n_inputs" (images; None for sound: the encoder decides), "n_classes"}`` of
    the settings' data source from its listing (file headers only, nothing decoded); what
    ``planned_estimate`` needs. Raises ``StcaError``."""
    from stca_engine.data.clips import header_seconds

    data = _clipset_for(settings, upload_set)
    if _is_image(settings):
        return {
            "longest_clip_s": None,
            "n_inputs": int(np.prod(data.images.shape[1:])),
            "n_classes": len(data.class_names),
        }
    longest = 0.0
    for clip in data.clips:
        full = header_seconds(clip.path, clip.kind)
        end = clip.end_s if clip.end_s is not None else full
        if end is not None:
            longest = max(longest, float(end) - float(clip.start_s))
    return {"longest_clip_s": longest or None, "n_inputs": None, "n_classes": len(data.class_names)}


def encoder_for(settings):
    """The sound encoder the settings ask for, at the network's time step."""
    from stca_engine.encoders import make_encoder

    if settings.encoder == "spikegram":
        return make_encoder(
            "spikegram",
            dt_ms=float(settings.dt_ms),
            n_kernels=int(settings.n_channels),
            spikes_per_second=float(settings.spike_rate),
        )
    return make_encoder("spectral", dt_ms=float(settings.dt_ms), n_bands=int(settings.n_channels))


def prepare_engine_data(settings, progress: ProgressFn, upload_set=None):
    """``(train, test, info)`` from the engine's data sources, folders confined to the allowed roots, or
    from the session's ``upload_set`` when the settings' data is ``uploads``."""
    from stca_engine.data import sources

    kw = {}
    if settings.task == "detect":
        kw.update(
            n_train_streams=int(settings.n_train),
            n_test_streams=int(settings.n_test),
            events_per_stream=int(settings.events_per_stream),
        )
    kind = UPLOADS
    if settings.data == UPLOADS:
        data = _clipset_for(settings, upload_set)
    else:
        spec = sources.parse_data_spec(settings.data)
        kind = spec.kind
        if not settings.class_list():
            data = spec
            kw["restrict"] = True
        elif spec.kind == "demo":  # load_demo takes its options as **opts, which the generic loader refuses
            from stca_engine.data.demo import load_demo

            data = load_demo(seed=int(settings.seed), classes=settings.class_list())
        else:
            data = sources.load_clipset(spec, restrict=True, seed=int(settings.seed), classes=settings.class_list())
    encoder = None if _is_image(settings) else encoder_for(settings)
    if _regularised(settings):
        from stca_engine.defaults import REGULARISATION

        kw["val_fraction"] = REGULARISATION["val_fraction"]
        if not _is_image(settings):
            kw["takes"] = REGULARISATION["takes"]
    if kind == "demo" or (kind == UPLOADS and len(data.clips) <= 300):
        kw["workers"] = 1  # a few hundred short clips: a process pool would cost more to start than it saves
    return sources.prepare_datasets(
        data,
        settings.task,
        encoder=encoder,
        seed=int(settings.seed),
        progress=progress,
        dt_ms=float(settings.dt_ms),
        **kw,
    )
