"""Fused Triton kernels (dynamixer/kernels) against the PyTorch path they replace, forward and through the block.

On a machine without a GPU they run in Triton's interpreter (conftest.py sets TRITON_INTERPRET=1), which checks
what the kernel computes, not how fast: on a GPU the same tests run the compiled kernel.
"""
import os

import pytest
import torch

from dynamixer.kernels import triton_mix, triton_mix_enabled
from dynamixer.kernels.mix import triton
from dynamixer.ops import _head_major, _mix, _mixing_weights

from test_ops import assert_fused_matches_plain, random_block, rel_err

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
pytestmark = pytest.mark.skipif(
    triton is None or (DEVICE == 'cpu' and os.environ.get('TRITON_INTERPRET') != '1'),
    reason='needs triton, and a GPU or TRITON_INTERPRET=1')


def reference_mix(comp, gw, gb, x, axis, G):
    L = x.shape[1] if axis == 'h' else x.shape[2]
    P = _mixing_weights('dynamic', comp, gw, gb, None, G, L)
    return _mix('dynamic', P, _head_major(x, axis, G), x, axis, G)


def random_inputs(B, H, W, C, G, d, axis, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    L, O = (H, W) if axis == 'h' else (W, H)
    x = torch.randn(B, H, W, C, device=DEVICE, dtype=dtype)
    comp = torch.randn(B * O * G, L, d, device=DEVICE, dtype=dtype)
    gw = (0.5 * torch.randn(L * L, L * d, device=DEVICE)).to(dtype)  # logits of spread ~ 1: far from uniform
    gb = (0.5 * torch.randn(L * L, device=DEVICE)).to(dtype)
    return comp, gw, gb, x


# (B, H, W, C, G, d): S at 32x32 and 16x16, L at 16x16 (d = 8), XS at 7x7 and 14x14, odd and tiny grids
SHAPES = [(1, 32, 32, 192, 8, 2), (2, 16, 16, 384, 16, 2), (1, 16, 16, 512, 16, 8), (3, 7, 7, 96, 4, 2),
          (2, 14, 14, 32, 2, 2), (2, 5, 7, 24, 4, 2), (3, 1, 3, 8, 2, 1), (2, 3, 2, 20, 4, 3)]


@pytest.mark.parametrize('axis', ['h', 'w'])
@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: 'x'.join(map(str, s)))
def test_triton_mix_matches_generate_softmax_mix_in_fp32(shape, axis):
    comp, gw, gb, x = random_inputs(*shape, axis)
    out = triton_mix(comp, gw, gb, x, axis, shape[4])
    ref = reference_mix(comp, gw, gb, x, axis, shape[4])
    assert out.shape == x.shape and out.dtype == x.dtype
    assert rel_err(out, ref) <= 1e-5


def test_triton_mix_in_bf16_is_close_to_the_fp32_result():
    comp, gw, gb, x = random_inputs(2, 16, 16, 384, 16, 2, 'w')
    ref = reference_mix(comp, gw, gb, x, 'w', 16)
    out = triton_mix(comp.bfloat16(), gw.bfloat16(), gb.bfloat16(), x.bfloat16(), 'w', 16)
    assert out.dtype == torch.bfloat16
    # bf16 inputs and output, fp32 softmax and accumulation (the interpreter dots bf16 tiles in fp32: its own bf16
    # dot is wrong, off by 1e10 on a 16x16 product; on a GPU this runs the tensor-core dot)
    assert rel_err(out.float(), ref) < 2e-2


def test_triton_mix_rejects_comp_of_the_wrong_shape():
    comp, gw, gb, x = random_inputs(2, 5, 7, 24, 4, 2, 'h')
    with pytest.raises(ValueError, match='contiguous'):
        triton_mix(comp, gw, gb, x, 'w', 4)  # rows of a 5x7 grid have L = 7, not 5


def test_triton_mix_is_opt_in(monkeypatch):
    x = torch.zeros(1, 2, 2, 4, device=DEVICE)
    monkeypatch.delenv('DYNAMIXER_TRITON_MIX', raising=False)
    assert not triton_mix_enabled(x)
    monkeypatch.setenv('DYNAMIXER_TRITON_MIX', '1')
    assert triton_mix_enabled(x)


@pytest.mark.parametrize('grid, heads, dim', [((7, 7), 4, 96), ((5, 7), 4, 24), ((16, 16), 16, 384)])
def test_fused_block_with_the_triton_mix_matches_plain_forward_and_backward(monkeypatch, grid, heads, dim):
    monkeypatch.setenv('DYNAMIXER_TRITON_MIX', '1')
    calls = []
    import dynamixer.ops as ops
    monkeypatch.setattr(ops, 'triton_mix', lambda *a: calls.append(a[-2]) or triton_mix(*a))
    assert_fused_matches_plain(random_block(dim, grid, heads), batch=2, device=DEVICE)
    assert sorted(calls) == ['h', 'w']  # both directions of the forward went through the kernel
