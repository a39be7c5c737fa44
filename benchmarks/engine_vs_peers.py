"""Speed of one training step (forward + backward) of a 128-300-10 spiking network, T = 500,
batch 16, 2 % input density, float32, on the CPU: this engine vs the same C-LIF model as a plain
torch loop vs snnTorch (Synaptic) vs SpikingJelly (multi-step LIF), all in one process (SPEC §6).

Run:  .venv/bin/python benchmarks/engine_vs_peers.py [--repeats 7] [--quick] [--threads 2] [--active-wait]
Prints median milliseconds, ratios to the fastest peer, peak memory (resident-set growth of one
step, measured in a fresh process per implementation), and scaling with T.

OpenMP threads (torch's and numba's) busy-wait between parallel regions by default, which on a
busy 2-core machine steals the core the other thread needs; the benchmark therefore sets
OMP_WAIT_POLICY=PASSIVE (for every implementation alike) unless --active-wait is given or the
variable is already set. Both are printed with the results.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc
import warnings

if "--active-wait" not in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch/numba start their OpenMP runtimes

import numba  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import stca_engine as se  # noqa: E402

warnings.filterwarnings("ignore")
SIZES = [128, 300, 10]


def make_input(T, B, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, SIZES[0], generator=g) < density).float()
    target = torch.randint(0, 3, (B, SIZES[-1]), generator=g)
    return x, target


# ---------------------------------------------------------------- this engine
def engine_step(cfg, backend="auto"):
    net = se.SNN(SIZES, cfg, seed=0, backend=backend)
    with torch.no_grad():  # weights large enough that the network spikes (realistic work)
        net.weights[0].normal_(0, 0.15, generator=torch.Generator().manual_seed(1))
        # the output's input grows with the hidden layer: scale so its activity stays that of 300
        net.weights[1].normal_(0, 0.12 * (300 / SIZES[1]) ** 0.5, generator=torch.Generator().manual_seed(2))

    def step(x, target):
        net.zero_grad(set_to_none=True)
        rec = net(x)
        loss, info = se.stca_loss(rec.voltages[-1], rec.spikes[-1], target, cfg, task="detect")
        loss.backward()
        return float(loss), rec

    return step, net


# ---------------------------------------------------------------- plain torch loop (same model, autograd)
class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, theta, alpha):
        ctx.save_for_backward(v)
        ctx.theta, ctx.alpha = theta, alpha
        return (v >= theta).to(v.dtype)

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        return g * (((v - ctx.theta).abs() < ctx.alpha / 2).to(v.dtype) / ctx.alpha), None, None


def plain_step(cfg):
    g = torch.Generator().manual_seed(1)
    ws = [torch.nn.Parameter(torch.randn(o, i, generator=g) * s) for i, o, s in ((128, 300, 0.15), (300, 10, 0.12))]

    def step(x, target):
        for w in ws:
            w.grad = None
        h = x
        for W in ws:
            I = cfg.v0 * (h @ W.t())
            m = torch.zeros(x.shape[1], W.shape[0])
            s, e, o = m.clone(), m.clone(), m.clone()
            vs, os_ = [], []
            for k in range(x.shape[0]):
                m = cfg.beta_m * m + I[k]
                s = cfg.beta_s * s + I[k]
                e = cfg.beta_m * e + cfg.theta * o
                v = m - s - e
                o = _Spike.apply(v, cfg.theta, cfg.alpha)
                vs.append(v)
                os_.append(o)
            V, h = torch.stack(vs), torch.stack(os_)
        loss = (V.max(0).values - cfg.theta).abs().sum() / x.shape[1]  # error at one step per neuron
        loss.backward()
        return float(loss)

    return step


# ---------------------------------------------------------------- snnTorch
def snntorch_step(cfg):
    import snntorch as snn
    from snntorch import surrogate

    torch.manual_seed(0)
    fc1, fc2 = torch.nn.Linear(128, 300, bias=False), torch.nn.Linear(300, 10, bias=False)
    grad = surrogate.fast_sigmoid()
    l1 = snn.Synaptic(alpha=cfg.beta_s, beta=cfg.beta_m, threshold=cfg.theta, spike_grad=grad)
    l2 = snn.Synaptic(alpha=cfg.beta_s, beta=cfg.beta_m, threshold=cfg.theta, spike_grad=grad)
    params = list(fc1.parameters()) + list(fc2.parameters())

    def step(x, target):
        for p in params:
            p.grad = None
        syn1, mem1 = l1.reset_mem()
        syn2, mem2 = l2.reset_mem()
        mems = []
        for k in range(x.shape[0]):
            spk1, syn1, mem1 = l1(fc1(x[k]), syn1, mem1)
            spk2, syn2, mem2 = l2(fc2(spk1), syn2, mem2)
            mems.append(mem2)
        loss = (torch.stack(mems).max(0).values - cfg.theta).abs().sum() / x.shape[1]
        loss.backward()
        return float(loss)

    return step


# ---------------------------------------------------------------- SpikingJelly
def spikingjelly_step(cfg):
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        layer.Linear(128, 300, bias=False),
        neuron.LIFNode(tau=cfg.tau_m_ms / cfg.dt_ms, surrogate_function=surrogate.ATan()),
        layer.Linear(300, 10, bias=False),
        neuron.LIFNode(tau=cfg.tau_m_ms / cfg.dt_ms, surrogate_function=surrogate.ATan(), store_v_seq=True),
    )
    functional.set_step_mode(net, "m")

    def step(x, target):
        net.zero_grad(set_to_none=True)
        functional.reset_net(net)
        net(x)
        v = net[3].v_seq
        loss = (v.max(0).values - cfg.theta).abs().sum() / x.shape[1]
        loss.backward()
        return float(loss)

    return step


# ---------------------------------------------------------------- timing
def median_ms(fn, x, target, repeats, warmup=1, with_cpu=False):
    """Median wall-clock ms (and median process CPU ms, all threads, when ``with_cpu``)."""
    for _ in range(warmup):
        fn(x, target)
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn(x, target)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    if with_cpu:
        return statistics.median(wall), statistics.median(cpu)
    return statistics.median(wall)


def paired_ratios(ours, peer, x, target, rounds: int) -> list[float]:
    """Per round: the peer's step time over ours, the two timed back to back. The machine's speed drifts
    over minutes (a shared 2-core VM: the same step took 14.6 and 19.6 ms in runs a few minutes
    apart); timing each implementation's repeats in one block puts that drift into the ratio."""
    ours(x, target)
    peer(x, target)
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ours(x, target)
        t1 = time.perf_counter()
        peer(x, target)
        out.append((time.perf_counter() - t1) / (t1 - t0))
    return out


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def traced_mb(fn, x, target):
    """Peak of Python/numpy allocations during one step (tracemalloc; torch's allocator is invisible)."""
    gc.collect()
    tracemalloc.start()
    fn(x, target)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return traced / 2**20


def probe_memory(name, T, batch, density):
    """Run in a fresh process: peak resident-set growth (MB) during one step, sampled every ~0.5 ms,
    after setup and a tiny warm-up (numba compilation and imports are not counted)."""
    import threading

    cfg = se.NeuronConfig()
    fn = _runners(cfg, only=name)[name]
    xs, ts = make_input(5, 2, density)
    fn(xs, ts)
    x, target = make_input(T, batch, density)
    gc.collect()
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    fn(x, target)
    done.set()
    th.join()
    return max(0, max(peak[0], _rss_bytes()) - base) / 2**20


def _memory_table(names, args):
    import subprocess

    out = {}
    for name in names:
        cmd = [
            sys.executable,
            __file__,
            "--probe-memory",
            name,
            "--T",
            str(args.T),
            "--batch",
            str(args.batch),
            "--density",
            str(args.density),
            "--threads",
            str(args.threads),
            "--hidden",
            str(args.hidden),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        try:
            out[name] = float(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out[name] = float("nan")
    return out


def rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _runners(cfg, eng=None, only=None):
    makers = {
        "stca_engine (numba)": lambda: eng or engine_step(cfg)[0],
        "stca_engine (torch backend)": lambda: engine_step(cfg, backend="torch")[0],
        "plain torch loop": lambda: plain_step(cfg),
        "snnTorch Synaptic": lambda: snntorch_step(cfg),
        "SpikingJelly LIF (m)": lambda: spikingjelly_step(cfg),
    }
    return {name: make() for name, make in makers.items() if only is None or name == only}


def _launched() -> bool:
    try:
        numba.threading_layer()
        return True
    except ValueError:
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--density", type=float, default=0.02)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip the T scaling of the peers")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch and numba threads")
    ap.add_argument("--active-wait", action="store_true", help="keep OpenMP's default busy-waiting")
    ap.add_argument("--hidden", type=int, default=SIZES[1], help=argparse.SUPPRESS)
    ap.add_argument("--probe-memory", metavar="NAME", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    SIZES[1] = args.hidden
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if args.quick:
        args.repeats = 3
    if args.probe_memory:
        print(f"{probe_memory(args.probe_memory, args.T, args.batch, args.density):.2f}")
        return
    cfg = se.NeuronConfig()
    x, target = make_input(args.T, args.batch, args.density)
    eng, net = engine_step(cfg)
    _, rec = eng(x, target)  # compile the numba kernels outside the timing
    print(
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, numba threads {numba.get_num_threads()} "
        f"({numba.threading_layer() if _launched() else 'layer not started'}), cores {os.cpu_count()}"
    )
    print(
        f"device: {se.describe_device('cpu')}, torch threads {torch.get_num_threads()}, "
        f"T={args.T}, batch={args.batch}, density={args.density:.0%}, sizes={SIZES}, float32"
    )
    print(
        f"engine activity: hidden rate {float(rec.spikes[0].mean()):.3f}, output rate {float(rec.spikes[1].mean()):.3f}"
    )
    runners = _runners(cfg, eng)
    peers = ("plain torch loop", "snnTorch Synaptic", "SpikingJelly LIF (m)")
    res = {}
    for name, fn in runners.items():
        reps = args.repeats if name != "plain torch loop" else max(3, args.repeats // 2)
        res[name] = (*median_ms(fn, x, target, reps, with_cpu=True), traced_mb(fn, x, target))
    mem = _memory_table(list(runners), args)
    fastest_peer = min(peers, key=lambda n: res[n][0])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(1-min load average before timing: {load:.1f}; CPU ms = process CPU time over all threads)")
    print(
        f"\n{'implementation':30s} {'median ms':>10s} {'vs fastest peer':>16s} {'CPU ms':>9s} "
        f"{'peak RSS +MB':>13s} {'tracemalloc MB':>15s}"
    )
    for name, (ms, cpu_ms, mb) in res.items():
        ratio = res[fastest_peer][0] / ms
        print(f"{name:30s} {ms:10.1f} {ratio:15.1f}x {cpu_ms:9.1f} {mem[name]:13.1f} {mb:15.1f}")
    print("(peak RSS +MB: growth of the resident set during one step, sampled, each in a fresh process)")
    print(
        f"fastest peer: {fastest_peer}; engine speed-up: {res[fastest_peer][0] / res['stca_engine (numba)'][0]:.1f}x "
        f"wall, {res[fastest_peer][1] / res['stca_engine (numba)'][1]:.1f}x CPU time"
    )
    ratios = paired_ratios(runners["stca_engine (numba)"], runners[fastest_peer], x, target, rounds=3 * args.repeats)
    q = statistics.quantiles(ratios, n=4)
    print(
        f"paired speed-up vs {fastest_peer} (one step of each per round, {len(ratios)} rounds): "
        f"median {statistics.median(ratios):.1f}x, quartiles {q[0]:.1f}-{q[2]:.1f}x, "
        f"range {min(ratios):.1f}-{max(ratios):.1f}x  (goal >= 20x)"
    )
    print(f"process max RSS: {rss_mb():.0f} MB")

    print("\nscaling with T (median ms, forward + backward)")
    Ts = (250, 500, 1000, 2000)
    names = ["stca_engine (numba)"] + ([] if args.quick else [fastest_peer])
    print(f"{'T':>6s} " + " ".join(f"{n:>24s}" for n in names) + f" {'ratio':>8s}" * (len(names) > 1))
    for T in Ts:
        xt, tt = make_input(T, args.batch, args.density, seed=T)
        row = [median_ms(runners[n], xt, tt, max(3, args.repeats // 2)) for n in names]
        extra = f" {row[1] / row[0]:7.1f}x" if len(row) > 1 else ""
        print(f"{T:6d} " + " ".join(f"{v:24.1f}" for v in row) + extra)

    cost_table(cfg, args)


COST_SIZES = ((500, 300), (1000, 300), (2000, 300), (5000, 300), (500, 1000), (500, 3000))


def cost_table(cfg, args):
    """The engine's cost against T and against synapses (128·H + H·10): linear when the last column,
    time per step and per synapse relative to the first row, stays near 1."""
    print("\ncost against T and hidden size (this engine; peak RSS growth of one step in a fresh process)")
    print(
        f"{'T':>6s} {'hidden':>7s} {'synapses':>9s} {'median ms':>10s} {'ns per step·synapse·sample':>27s} {'relative':>9s} {'peak RSS +MB':>13s}"
    )
    base = None
    for T, H in COST_SIZES:
        SIZES[1] = H
        syn = SIZES[0] * H + H * SIZES[2]
        step, _ = engine_step(cfg)
        xt, tt = make_input(T, args.batch, args.density, seed=T + H)
        ms = median_ms(step, xt, tt, max(3, args.repeats // 2))
        per = ms * 1e6 / (T * syn * args.batch)
        base = base or per
        sub = argparse.Namespace(**{**vars(args), "T": T, "hidden": H})
        mb = _memory_table(["stca_engine (numba)"], sub)["stca_engine (numba)"]
        print(f"{T:6d} {H:7d} {syn:9d} {ms:10.1f} {per:27.4f} {per / base:9.2f} {mb:13.1f}")
    SIZES[1] = args.hidden


if __name__ == "__main__":
    main()
