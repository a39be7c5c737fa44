"""The CUDA path on a real GPU: does the Triton kernel equal the plain-torch path, and how fast is it?

One short script for any CUDA machine (never part of ``make test``):

1. **Equality**, float32 and float64, spiking and margin readout, on a 2-layer network: the Triton
   backend (``backend="cuda"``) against the plain-torch backend on the same GPU with the same weights —
   output and hidden spikes identical, weight and input gradients within 1e-5 (float32) / 1e-10 (float64)
   relative, the per-step credit maps (``credit=b``) and a run split into pieces (``state=``) too.
2. **Speed** at the Open Neuromorphic benchmark's size (Linear + LIF, T = 500, batch 16, 16 384 neurons):
   forward + backward of this engine's Triton path, its plain-torch path, and, when installed, SpikingJelly's
   fastest GPU backend (``cupy``, else ``torch``) and Norse; ratios printed in one run.

Run: ``.venv/bin/python benchmarks/gpu_check.py`` (``--quick`` for smaller sizes). Without a GPU,
``--interpret`` runs step 1 in Triton's CPU interpreter at tiny sizes (a check of the script, no timing).
Results go to docs/RESULTS.md with the command and the GPU named.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _rel(a, b) -> float:
    den = max(float(b.abs().max()), 1e-30)
    return float((a - b).abs().max()) / den


def equality(device, T: int, B: int, sizes) -> list[str]:
    """Problems found (empty: the Triton path equals the torch path)."""
    import torch

    import stca_engine as se

    problems = []
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        for spiking in (True, False):
            res = {}
            for backend in ("cuda", "torch"):
                net = se.SNN(
                    sizes,
                    se.NeuronConfig(alpha=1.0),
                    dtype=dtype,
                    device=device,
                    seed=0,
                    backend=backend,
                    output_spiking=spiking,
                )
                g = torch.Generator().manual_seed(100)
                with torch.no_grad():
                    for W, sd in zip(net.weights, (0.3, 0.5)):
                        W.copy_((torch.randn(W.shape, generator=g, dtype=torch.float64) * sd).to(device, dtype))
                x = (torch.rand(T, B, sizes[0], generator=torch.Generator().manual_seed(1)) < 0.08).to(device, dtype)
                x.requires_grad_(True)
                rec = net(x, credit=B - 1)
                target = torch.arange(B, device=device) % sizes[-1]
                loss, _ = se.stca_loss(
                    rec.voltages[-1],
                    rec.spikes[-1],
                    target,
                    net.cfg,
                    task="classify",
                    objective="stca" if spiking else "margin",
                )
                loss.backward()
                with torch.no_grad():
                    half = T // 2
                    first = net(x[:half].detach())
                    second = net(x[half:].detach(), state=first.state)
                res[backend] = dict(
                    spikes=[s.detach() for s in rec.spikes],
                    grads=[w.grad for w in net.weights] + [x.grad],
                    credit=[c.dV for c in rec.credit] + [c.dI for c in rec.credit],
                    pieces=[torch.cat([a, b]) for a, b in zip(first.spikes, second.spikes)],
                )
            a, b = res["cuda"], res["torch"]
            tag = f"{str(dtype).split('.')[-1]}, {'spiking' if spiking else 'margin'} output"
            if not all(torch.equal(p, q) for p, q in zip(a["spikes"], b["spikes"])):
                problems.append(f"{tag}: spikes differ")
            if not all(torch.equal(p, q) for p, q in zip(a["pieces"], a["spikes"])):
                problems.append(f"{tag}: a run in two pieces differs from one run (Triton)")
            worst = max(_rel(p, q) for p, q in zip(a["grads"] + a["credit"], b["grads"] + b["credit"]))
            status = "ok" if worst <= tol else "TOO FAR"
            n_spikes = [int(s.sum()) for s in b["spikes"]]
            if n_spikes[0] == 0 or float(b["grads"][0].abs().max()) == 0:
                problems.append(f"{tag}: the check is trivial (no hidden spikes or no gradient)")
            print(
                f"  {tag}: spikes equal ({' / '.join(map(str, n_spikes))} per layer), gradients and credit "
                f"within {worst:.1e} (goal {tol:g}) {status}"
            )
            if worst > tol:
                problems.append(f"{tag}: gradients differ by {worst:.1e} (goal {tol:g})")
    return problems


def _time(fn, repeats: int) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def speed(T: int, B: int, n_in: int, n: int, repeats: int) -> dict[str, float | str]:
    import torch

    import stca_engine as se

    dev = torch.device("cuda")
    x = (torch.rand(T, B, n_in, device=dev) < 0.05).float()
    out: dict[str, float | str] = {}
    for backend in ("cuda", "torch"):
        net = se.SNN([n_in, n], se.NeuronConfig(), device=dev, backend=backend, seed=0, init_std=0.05)

        def step(net=net):
            net.zero_grad(set_to_none=True)
            rec = net(x)
            rec.voltages[-1].max(0).values.sum().backward()

        out[f"this engine ({'Triton' if backend == 'cuda' else 'plain torch'})"] = _time(step, repeats)
    try:
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        for sj_backend in ("cupy", "torch"):
            try:
                sj = torch.nn.Sequential(
                    layer.Linear(n_in, n, bias=False),
                    neuron.LIFNode(tau=10.0, surrogate_function=surrogate.ATan(), backend=sj_backend, step_mode="m"),
                ).to(dev)
                functional.set_step_mode(sj, "m")

                def sj_step(sj=sj):
                    sj.zero_grad(set_to_none=True)
                    functional.reset_net(sj)
                    sj(x).sum().backward()

                out[f"SpikingJelly ({sj_backend})"] = _time(sj_step, repeats)
                break
            except Exception as exc:  # noqa: BLE001 - a missing cupy: try the next backend
                out[f"SpikingJelly ({sj_backend})"] = f"unavailable ({type(exc).__name__})"
    except ImportError:
        out["SpikingJelly"] = "not installed"
    try:
        import norse.torch as norse

        lin = torch.nn.Linear(n_in, n, bias=False).to(dev)
        lif = norse.LIF().to(dev)

        def norse_step():
            lin.zero_grad(set_to_none=True)
            z, _ = lif(lin(x))
            z.sum().backward()

        out["Norse (LIF)"] = _time(norse_step, repeats)
    except ImportError:
        out["Norse"] = "not installed"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (T = 200, 4096 neurons)")
    ap.add_argument("--interpret", action="store_true", help="no GPU: equality only, in Triton's CPU interpreter")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    if args.interpret:
        os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported
    import torch

    if not args.interpret and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --interpret for the equality check on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.interpret else "cuda")
    name = "Triton interpreter on the CPU" if args.interpret else torch.cuda.get_device_name(0)
    print(f"device: {name}; torch {torch.__version__}")
    print("1. Triton path vs plain-torch path (same weights, same input)")
    T, B = (40, 3) if args.interpret else (300, 8)
    problems = equality(device, T, B, [20, 15, 4] if args.interpret else [128, 300, 10])
    if args.interpret:
        print("equality: " + ("ok" if not problems else "; ".join(problems)))
        return 1 if problems else 0
    T, n = (200, 4096) if args.quick else (500, 16384)
    print(f"2. forward + backward, Linear + LIF, T = {T}, batch 16, {n} neurons (median of {args.repeats}, ms)")
    times = speed(T, 16, 512, n, args.repeats)
    ours = times["this engine (Triton)"]
    for k, v in times.items():
        if isinstance(v, float):
            print(
                f"  {k:34s} {v:9.2f} ms   {'' if k.startswith('this engine (Triton)') else f'Triton is {v / ours:.2f}x faster'}"
            )
        else:
            print(f"  {k:34s} {v}")
    print("equality: " + ("ok" if not problems else "; ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
