"""A fused Triton kernel for the dynamic DynaMixer operation's middle: generate -> softmax -> mix.

OPT-IN AND UNMEASURED. No GPU has been lent to this project yet, so this kernel's speed has never been measured;
it is off unless `DYNAMIXER_TRITON_MIX=1` is set, and `scripts/device_check.sh` times it beside the default path
on the first GPU a session gets. Its correctness is tested on the CPU under `TRITON_INTERPRET=1`
(tests/test_kernels.py) against the PyTorch path of `dynamixer.ops`.

What it computes, for one mixing direction of a block (the PyTorch reference is `ops._mixing_weights` followed by
`ops._mix` for generator 'dynamic'):
  comp (N*G, L, d)   compressed tokens of every (sequence n, head g), head-major, compress bias included
  logits[m, i, j] = sum_k comp[m].flat[k] * Wg[i*L + j, k] + bg[i*L + j]        (the generate Linear)
  P[m, :, j]      = softmax over the sources i of logits[m, :, j]
  M[n, j, g*c:(g+1)*c] = sum_i P[m, i, j] * x[n, i, g*c:(g+1)*c]                 (m = n*G + g, c = C/G)
What it saves against the PyTorch path: the N*G*L*L logits and mixing weights never reach memory (one program
runs the softmax online over the sources, as flash attention does over keys), and x is read and M written in the
(B, H, W, C) token layout through strides, so neither the head-major copy of x nor the copy of M back to token-major
is made. Each program takes BLOCK_M (sequence, head) pairs and all L targets: per source i, one tl.dot of the
pairs' compressed tokens (BLOCK_M, L*d) with the generator rows of that source (L*d, L) gives the logits of every
target, then the running softmax and the (BLOCK_M, L, c) accumulator are updated with token i.

Forward only: the fused path's backward (`ops.FusedTokenMix`) recomputes the mixing weights from the saved
compressed tokens with PyTorch ops and needs nothing from this kernel, so the kernel serves training and inference.
"""
import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # triton is optional: the PyTorch path runs everywhere
    triton = None

__all__ = ['triton_mix', 'triton_mix_enabled']


def triton_mix_enabled(x: torch.Tensor) -> bool:
    """Whether the fused path should run the Triton kernel for tokens `x`: opted in with DYNAMIXER_TRITON_MIX=1,
    triton importable, x on CUDA (or on the CPU under TRITON_INTERPRET=1, for tests), not under torch.compile."""
    if os.environ.get('DYNAMIXER_TRITON_MIX', '0') != '1' or triton is None:
        return False
    if torch.compiler.is_compiling():  # inductor fuses this region itself; the kernel is not traceable
        return False
    return x.is_cuda or (x.device.type == 'cpu' and os.environ.get('TRITON_INTERPRET', '0') == '1')


def triton_mix(comp: torch.Tensor, gen_weight: torch.Tensor, gen_bias: torch.Tensor, x: torch.Tensor, axis: str,
               num_heads: int) -> torch.Tensor:
    """Mixed tokens M (B, H, W, C) of one dynamic DynaMixer op, generate -> softmax -> mix in one kernel.

    Args:
        comp: Compressed tokens, head-major (N*G, L, d), contiguous, compress bias included.
        gen_weight: The generate Linear's weight (L*L, L*d).
        gen_bias: Its bias (L*L,).
        x: Tokens (B, H, W, C), contiguous.
        axis: 'h' (sequences are columns, L = H) or 'w' (rows, L = W).
        num_heads: G.
    """
    B, H, W, C = x.shape
    G = num_heads
    c = C // G
    L, O = (H, W) if axis == 'h' else (W, H)  # O: sequences per image
    d = comp.shape[-1]
    if comp.shape != (B * O * G, L, d) or not comp.is_contiguous():
        raise ValueError(f'comp must be a contiguous (N*G, L, d) = ({B * O * G}, {L}, d) tensor, got {tuple(comp.shape)}')
    if gen_weight.shape != (L * L, L * d):
        raise ValueError(f'generate weight must be ({L * L}, {L * d}), got {tuple(gen_weight.shape)}')
    x = x.contiguous()
    out = torch.empty_like(x)
    # element strides of a sequence's image, its position among the image's sequences, and its tokens
    s_b, s_o, s_l = (H * W * C, C, W * C) if axis == 'h' else (H * W * C, W * C, C)
    NG = B * O * G
    BLOCK_M = 16  # (sequence, head) pairs per program; tl.dot needs at least 16 rows
    grid = (triton.cdiv(NG, BLOCK_M),)
    _mix_kernel[grid](
        comp, gen_weight.contiguous(), gen_bias.contiguous(), x, out,
        NG, O, G, L, L * d, c, s_b, s_o, s_l,
        BLOCK_M=BLOCK_M,
        BLOCK_L=max(16, triton.next_power_of_2(L)),
        BLOCK_K=max(16, triton.next_power_of_2(L * d)),
        BLOCK_C=max(16, triton.next_power_of_2(c)),
        IEEE=comp.dtype == torch.float32,
        INTERPRETED=not x.is_cuda,
        num_warps=8,  # the (BLOCK_M, L, c) fp32 accumulator is up to 16K values (S, 32x32): spread it wide
    )
    return out


if triton is not None:
    @triton.jit
    def _mix_kernel(comp_ptr, wg_ptr, bg_ptr, x_ptr, out_ptr,
                    NG, O, G, L, K, c, s_b, s_o, s_l,
                    BLOCK_M: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
                    IEEE: tl.constexpr, INTERPRETED: tl.constexpr):
        pid = tl.program_id(0)
        rm = pid * BLOCK_M + tl.arange(0, BLOCK_M)  # (sequence, head) pairs m = n*G + g
        rj = tl.arange(0, BLOCK_L)  # targets j
        rk = tl.arange(0, BLOCK_K)  # the L*d compressed values of a pair
        rc = tl.arange(0, BLOCK_C)  # channels of a head
        m_ok, j_ok, k_ok, c_ok = rm < NG, rj < L, rk < K, rc < c
        n, g = rm // G, rm % G
        b, o = n // O, n % O
        tok0 = b * s_b + o * s_o + g * c  # element offset of token 0, channel 0 of each pair's head

        # the pairs' compressed tokens, (BLOCK_M, BLOCK_K), in the input dtype for tensor-core dots
        v = tl.load(comp_ptr + rm[:, None] * K + rk[None, :], mask=m_ok[:, None] & k_ok[None, :], other=0.)

        run_max = tl.full((BLOCK_M, BLOCK_L), float('-inf'), tl.float32)
        run_sum = tl.zeros((BLOCK_M, BLOCK_L), tl.float32)
        acc = tl.zeros((BLOCK_M, BLOCK_L, BLOCK_C), tl.float32)
        for i in range(0, L):
            # generator rows i*L + j of source i, as a (BLOCK_K, BLOCK_L) tile: logits of source i for every target
            rows = i * L + rj
            wt = tl.load(wg_ptr + rows[None, :] * K + rk[:, None], mask=k_ok[:, None] & j_ok[None, :], other=0.)
            if IEEE:  # fp32 inputs: full fp32 products, as the PyTorch path (tl.dot would use TF32 on a GPU)
                logit = tl.dot(v, wt, input_precision='ieee', out_dtype=tl.float32)  # (BLOCK_M, BLOCK_L)
            elif INTERPRETED:  # Triton's interpreter multiplies bf16 tiles wrongly (measured): dot them in fp32
                logit = tl.dot(v.to(tl.float32), wt.to(tl.float32), out_dtype=tl.float32)
            else:  # half inputs on a GPU: tensor cores, fp32 accumulation
                logit = tl.dot(v, wt, out_dtype=tl.float32)
            logit += tl.load(bg_ptr + rows, mask=j_ok, other=0.).to(tl.float32)[None, :]
            # online softmax over the sources i, per (pair, target)
            new_max = tl.maximum(run_max, logit)
            alpha = tl.exp(run_max - new_max)
            p = tl.exp(logit - new_max)
            run_sum = run_sum * alpha + p
            run_max = new_max
            xi = tl.load(x_ptr + tok0[:, None] + i * s_l + rc[None, :], mask=m_ok[:, None] & c_ok[None, :],
                         other=0.).to(tl.float32)  # token i of each pair's head, (BLOCK_M, BLOCK_C)
            acc = acc * alpha[:, :, None] + p[:, :, None] * xi[:, None, :]
        acc = acc / run_sum[:, :, None]
        # M[n, j, g*c + cc] in the token layout of x
        ptrs = out_ptr + tok0[:, None, None] + rj[None, :, None] * s_l + rc[None, None, :]
        mask = m_ok[:, None, None] & j_ok[None, :, None] & c_ok[None, None, :]
        tl.store(ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask)
