"""numba version of the STCA time-point selection (clusters.py states the rules), one pass per
trace, parallel over (sample, neuron): on the CPU the vectorised torch version spends most of its
time in op overhead on these small ``[T, B, N_out]`` tensors."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True, fastmath=False, nogil=True)
def select(v, spk, t_in, theta, cluster_mode, n_o, k_p, k_m):
    """n_o: clusters (``cluster_mode``) or spikes; k_p: k⁺ (-1 none); k_m: k⁻ (-1 none). ``t_in`` ≥ 1."""
    T, B, N = v.shape
    far = 1 << 40
    for bn in nb.prange(B * N):
        b = bn // N
        n = bn % N
        tr = v[:, b, n]
        sp = spk[:, b, n]
        # ---- counts and k⁻
        count = 0
        n_spk = 0
        last = -far
        best_cnt = far
        best_sum = tr[0] * 0
        best_k = -1
        cur_cnt = 0
        cur_sum = tr[0] * 0
        for t in range(T):
            if sp[t]:
                n_spk += 1
                if t - last >= t_in:
                    if cur_cnt > 0 and (cur_cnt < best_cnt or (cur_cnt == best_cnt and cur_sum < best_sum)):
                        best_cnt, best_sum, best_k = cur_cnt, cur_sum, last
                    count += 1
                    cur_cnt = 0
                    cur_sum = tr[0] * 0
                cur_cnt += 1
                cur_sum += tr[t]
                last = t
        if cur_cnt > 0 and (cur_cnt < best_cnt or (cur_cnt == best_cnt and cur_sum < best_sum)):
            best_k = last
        if cluster_mode:
            n_o[b, n] = count
            k_m[b, n] = best_k
        else:
            n_o[b, n] = n_spk
            k_m[b, n] = last if n_spk > 0 else -1
        # ---- k⁺
        nxt = far
        best_lm = -1
        best_any = -1
        # walk backwards to know the next spike; then decide per step
        allowed = np.zeros(T, np.bool_)
        for t in range(T - 1, -1, -1):
            if sp[t]:
                nxt = t
            allowed[t] = nxt - t >= t_in
        prev = -far
        for t in range(T):
            if sp[t]:
                prev = t
            if cluster_mode:
                ok = allowed[t] and t - prev >= t_in
            else:
                ok = tr[t] < theta
            if not ok or not tr[t] > 0:  # V ≤ 0: no (net excitatory) input has reached the neuron
                continue
            if best_any < 0 or tr[t] > tr[best_any]:
                best_any = t
            left = t == 0 or tr[t - 1] < tr[t]
            right = t == T - 1 or tr[t] >= tr[t + 1]
            if left and right and tr[t] < theta and (best_lm < 0 or tr[t] > tr[best_lm]):
                best_lm = t
        k_p[b, n] = best_lm if best_lm >= 0 else best_any
