"""The CPU kernels keep no subnormal numbers: x86 does arithmetic on them ~20x slower, and a quiet
stretch of a few hundred steps decays S (and the backward's adjoints) into that range. Flushing them
to 0 changes nothing a normal number could see, so the results still equal the plain torch reference."""

import numpy as np
import pytest
import torch

import stca_engine as se
from stca_engine.kernels import LayerParams, cpu, reference


def _subnormal(a: torch.Tensor) -> int:
    tiny = torch.finfo(a.dtype).tiny
    return int(((a != 0) & (a.abs() < tiny)).sum())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quiet_stretch_leaves_no_subnormal_trace_or_gradient(dtype):
    cfg = se.NeuronConfig()
    p = LayerParams.from_config(cfg)
    T, B, n_in, N = 7600 if dtype == torch.float64 else 1000, 2, 4, 3
    x = torch.zeros(T, B, n_in, dtype=dtype)
    x[0, :, :] = 1.0  # one burst, then silence long enough for S to decay below the smallest normal
    W = torch.full((N, n_in), 0.1, dtype=dtype)
    V, O, M, S, E, rows, _ = cpu.forward(x, W, p, record=True)
    Vr, Or, Mr, Sr, Er = reference.forward(x, W, p, record=True)[:5]
    assert _subnormal(Sr) > 0, "the reference must reach the subnormal range, or this test shows nothing"
    assert _subnormal(S) == 0 and _subnormal(M) == 0 and _subnormal(V) == 0
    assert torch.equal(O, Or)
    torch.testing.assert_close(V, Vr, rtol=0, atol=torch.finfo(dtype).tiny * 4)

    gV = torch.zeros(T, B, N, dtype=dtype)
    gV[-1] = 1.0  # error at the end flows back over the quiet stretch
    gx, gW = cpu.backward(x, W, V, gV, None, p, need_x=True, need_w=True, rows=rows)
    gxr, gWr = reference.backward(x, W, Vr, gV, None, p, need_x=True, need_w=True)
    assert _subnormal(gxr) > 0, "the reference's adjoint must reach the subnormal range"
    # gx = v0·gI·W is one matmul of flushed adjoints: only products that round below the smallest
    # normal remain (the last few steps before each adjoint is flushed), not the whole decay
    print(f"subnormal entries in gx: {_subnormal(gx)} here, {_subnormal(gxr)} in the reference")
    assert _subnormal(gx) * 10 < _subnormal(gxr)
    torch.testing.assert_close(
        gx, gxr, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=torch.finfo(dtype).tiny * 16
    )
    torch.testing.assert_close(
        gW, gWr, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=torch.finfo(dtype).tiny * 16
    )
    assert np.isfinite(gW.numpy()).all()
