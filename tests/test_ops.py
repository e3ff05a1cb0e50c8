"""The fused token mixer (dynamixer.ops) against the plain module path: outputs and gradients."""
import pytest
import torch

from dynamixer.model import DynaMixerBlock, DynaMixerLayer
from dynamixer.ops import fused_token_mix, plain_token_mix

TOL = 1e-5  # fp32 relative error (norm of the difference over the norm of the reference)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def random_block(dim, grid, heads, d=2, seed=0, **kwargs) -> DynaMixerBlock:
    torch.manual_seed(seed)
    blk = DynaMixerBlock(dim, grid, num_heads=heads, reduced_dim=d, **kwargs)
    with torch.no_grad():
        for p in blk.parameters():  # larger than the init so the mixing weights are far from uniform
            p.normal_(0, 0.2)
    return blk


def assert_fused_matches_plain(blk: DynaMixerBlock, batch: int = 2, seed: int = 1, device: str = 'cpu'):
    torch.manual_seed(seed)
    H, W = blk.grid_size
    C = blk.proj.in_features
    blk.to(device)
    x = torch.randn(batch, H, W, C, device=device, requires_grad=True)
    ref = plain_token_mix(blk, x)
    out = fused_token_mix(blk, x)
    assert out.shape == ref.shape
    assert rel_err(out, ref) <= TOL
    g = torch.randn_like(ref)
    inputs = [x] + list(blk.parameters())
    g_ref = torch.autograd.grad(ref, inputs, g, allow_unused=True)
    g_out = torch.autograd.grad(out, inputs, g, allow_unused=True)
    names = ['x'] + [n for n, _ in blk.named_parameters()]
    for name, a, b in zip(names, g_out, g_ref):
        if b is None:
            assert a is None or a.abs().max() == 0, name
            continue
        assert a is not None, f'no gradient for {name}'
        assert rel_err(a, b) <= TOL, f'{name}: rel err {rel_err(a, b):.2e}'


# the real layer shapes of the variants: (C, grid, heads, d)
VARIANT_LAYERS = {
    's_32x32': (192, (32, 32), 8, 2), 's_16x16': (384, (16, 16), 16, 2),
    'm_32x32': (256, (32, 32), 8, 2), 'm_16x16': (512, (16, 16), 16, 2),
    'l_32x32': (256, (32, 32), 8, 8), 'l_16x16': (512, (16, 16), 16, 8),
}


@pytest.mark.parametrize('layer', list(VARIANT_LAYERS))
def test_fused_matches_plain_at_variant_layer_shapes(layer):
    C, grid, G, d = VARIANT_LAYERS[layer]
    assert_fused_matches_plain(random_block(C, grid, G, d), batch=2)


@pytest.mark.parametrize('grid', [(1, 1), (1, 3), (2, 3), (3, 2), (5, 7), (7, 4)])
@pytest.mark.parametrize('generator', ['dynamic', 'static', 'dense'])
def test_fused_matches_plain_on_odd_grids(grid, generator):
    assert_fused_matches_plain(random_block(24, grid, 3, d=3, generator=generator), batch=3)


ABLATIONS = {
    'no_column': dict(column_mixing=False),
    'no_row': dict(row_mixing=False),
    'no_channel': dict(channel_mixing=False),
    'only_column': dict(row_mixing=False, channel_mixing=False),
    'only_row': dict(column_mixing=False, channel_mixing=False),
    'only_channel': dict(column_mixing=False, row_mixing=False),
    'no_reweight': dict(reweight=False),
    'no_reweight_no_channel': dict(reweight=False, channel_mixing=False),
    'share_op': dict(share_op=True),
    'share_op_no_reweight': dict(share_op=True, reweight=False),
}


@pytest.mark.parametrize('generator', ['dynamic', 'static', 'dense'])
@pytest.mark.parametrize('ablation', list(ABLATIONS))
def test_fused_matches_plain_for_ablations(ablation, generator):
    grid = (4, 4) if ABLATIONS[ablation].get('share_op') else (4, 5)
    assert_fused_matches_plain(random_block(32, grid, 4, generator=generator, **ABLATIONS[ablation]), batch=2)


def test_fused_is_the_default_and_layer_outputs_match_plain():
    torch.manual_seed(0)
    layer = DynaMixerLayer(48, (6, 5), 4)
    assert layer.token_mixer.fused
    x = torch.randn(2, 6, 5, 48)
    out = layer(x)
    layer.token_mixer.fused = False
    assert rel_err(out, layer(x)) <= TOL


def test_fused_keeps_less_for_backward_than_plain():
    blk = random_block(192, (32, 32), 8)
    x = torch.randn(2, 32, 32, 192, requires_grad=True)

    def saved(fn):
        sizes = {}

        def pack(t):
            sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(blk, x)
        return sum(sizes.values())
    # plain keeps the 2 x (B*32, 8, 32, 32) mixing matrices and more; fused keeps x, M_h, M_w and small stats
    assert saved(fused_token_mix) < 0.5 * saved(plain_token_mix)


def test_fused_runs_under_autocast_and_is_close_to_plain():
    blk = random_block(32, (4, 5), 4)
    x = torch.randn(2, 4, 5, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = fused_token_mix(blk, x)
        ref = plain_token_mix(blk, x)
    assert out.dtype == torch.bfloat16
    assert rel_err(out.float(), ref.float()) < 3e-2


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16, torch.float32])
def test_add_permuted_gives_the_direct_add_bit_for_bit(dtype):
    from dynamixer.ops import _add_permuted_
    torch.manual_seed(0)
    dst = torch.randn(2, 4, 6, 3, 5).to(dtype)
    src = torch.randn(2, 3, 6, 4, 5).to(dtype).permute(0, 3, 2, 1, 4)  # head-major, viewed token-major
    expected = dst + src
    _add_permuted_(dst, src)
    assert torch.equal(dst, expected)


def test_fused_gradients_under_bf16_autocast_are_close_to_plain():
    torch.manual_seed(0)
    blk = random_block(48, (6, 5), 4)
    x = torch.randn(2, 6, 5, 48)
    grads = []
    for fn in (fused_token_mix, plain_token_mix):
        xi = x.clone().requires_grad_()
        blk.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = fn(blk, xi)
        out.float().pow(2).sum().backward()
        grads.append([xi.grad] + [p.grad for p in blk.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 10
    for g_fused, g_plain in zip(*grads):
        assert rel_err(g_fused.float(), g_plain.float()) < 5e-2


def test_fused_block_is_skipped_by_fx_tracing():
    from timm.models import create_model
    from timm.models._features_fx import create_feature_extractor
    model = create_model('dynamixer_xs', num_classes=0).eval()
    fx = create_feature_extractor(model, return_nodes={'stages.1': 'out'})
    x = torch.randn(1, model.in_chans, *model.img_size)
    assert torch.allclose(fx(x)['out'], model.stages[:2](model.stem(x)), atol=1e-5)


@pytest.mark.parametrize('shape', [(2, 16, 16, 384), (3, 5, 7, 24), (1, 1, 1, 8)])
def test_fused_norm_mlp_matches_modules(shape):
    from dynamixer.ops import FusedNormMlp, dynamixer_norm_mlp
    torch.manual_seed(0)
    layer = DynaMixerLayer(shape[-1], shape[1:3], 2 if shape[-1] % 2 == 0 else 1)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.2)
    x = torch.randn(*shape, requires_grad=True)
    ref = layer.mlp(layer.norm2(x))
    out = dynamixer_norm_mlp(layer, x)
    assert out.grad_fn.name().startswith(FusedNormMlp.__name__)
    assert rel_err(out, ref) <= TOL
    g = torch.randn_like(ref)
    params = [x] + list(layer.norm2.parameters()) + list(layer.mlp.parameters())
    for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        assert rel_err(a, b) <= TOL


def test_fused_layer_matches_plain_layer_forward_and_backward():
    torch.manual_seed(0)
    layer = DynaMixerLayer(48, (6, 5), 4)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.2)
    x = torch.randn(2, 6, 5, 48, requires_grad=True)
    params = [x] + list(layer.parameters())
    out = layer(x)
    g_out = torch.autograd.grad(out.square().sum(), params)
    layer.token_mixer.fused = False
    ref = layer(x)
    g_ref = torch.autograd.grad(ref.square().sum(), params)
    assert rel_err(out, ref) <= TOL
    for a, b in zip(g_out, g_ref):
        assert rel_err(a, b) <= TOL
