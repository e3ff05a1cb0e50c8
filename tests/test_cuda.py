"""The package on a CUDA device (`pytest -m gpu`; deselected by default and skipped without CUDA).

The CPU suite tests the fused path against the plain one; these tests repeat the checks that can differ on a GPU
(other GEMM kernels, TF32, autocast casts, inductor's Triton backend) on the device. `scripts/device_check.sh` runs
them first on a lent GPU machine.
"""
import pytest
import timm
import torch

import dynamixer  # noqa: F401  (registers the models)
from dynamixer.ops import compile_layers

from test_ops import VARIANT_LAYERS, assert_fused_matches_plain, random_block, rel_err

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')]


@pytest.fixture(autouse=True)
def exact_fp32():
    """fp32 matmuls in full fp32 (TF32 off), so that the 1e-5 tolerance of the CPU tests applies."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize('layer', list(VARIANT_LAYERS))
def test_fused_matches_plain_on_cuda_at_variant_layer_shapes(layer):
    C, grid, G, d = VARIANT_LAYERS[layer]
    assert_fused_matches_plain(random_block(C, grid, G, d), batch=4, device='cuda')


@pytest.mark.parametrize('generator', ['dynamic', 'static', 'dense'])
def test_fused_matches_plain_on_cuda_on_an_odd_grid(generator):
    assert_fused_matches_plain(random_block(24, (5, 7), 4, generator=generator), batch=3, device='cuda')


@pytest.mark.parametrize('model_name', ['dynamixer_s', 'dynamixer_xs_convstem_sum'])
def test_bf16_autocast_on_cuda_is_close_to_fp32(model_name):
    torch.manual_seed(0)
    model = timm.create_model(model_name).cuda().eval()
    x = torch.randn(4, *model.pretrained_cfg['input_size'], device='cuda')
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cuda', dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16
    assert rel_err(out.float(), ref) < 0.05
    assert (out.float().argmax(1) == ref.argmax(1)).float().mean() >= 0.75


def test_regional_compile_on_cuda_gives_the_eager_outputs_and_gradients():
    torch.manual_seed(0)
    model = timm.create_model('dynamixer_s', num_classes=10).cuda()
    x = torch.randn(2, 3, 224, 224, device='cuda')
    ref = model(x)
    ref_grads = torch.autograd.grad(ref.sum(), list(model.parameters()))
    compile_layers(model, fused=True)
    out = model(x)
    grads = torch.autograd.grad(out.sum(), list(model.parameters()))
    assert rel_err(out, ref) < 1e-4
    worst = max(rel_err(g, r) for g, r in zip(grads, ref_grads) if r.norm() > 0)
    assert worst < 1e-3


def test_a_training_step_on_cuda_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = timm.create_model('dynamixer_xs_convstem_sum', num_classes=10, in_chans=1, img_size=28).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, fused=True)
    x, y = torch.randn(64, 1, 28, 28, device='cuda'), torch.randint(0, 10, (64,), device='cuda')
    losses = []
    for _ in range(40):  # memorising 64 noise images: 2.30 -> 0.49 after 30 steps on the CPU
        with torch.autocast('cuda', dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
