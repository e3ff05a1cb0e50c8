"""torch.compile: no graph breaks on either path, same outputs and gradients, regional compilation of the layers."""
import pytest
import torch
import torch._dynamo

from dynamixer.model import DynaMixerLayer
from dynamixer.ops import compile_layers


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize('fused', [True, False])
def test_layer_traces_in_one_graph_without_breaks(fused):
    layer = DynaMixerLayer(32, (4, 6), 4, block_kwargs={'fused': fused})
    x = torch.randn(2, 4, 6, 32, requires_grad=True)
    explain = torch._dynamo.explain(layer)(x)
    assert explain.graph_break_count == 0, [str(r.reason) for r in explain.break_reasons]
    assert explain.graph_count == 1


def test_model_traces_without_graph_breaks():
    from timm.models import create_model
    model = create_model('dynamixer_xs', num_classes=10)
    explain = torch._dynamo.explain(model)(torch.randn(2, model.in_chans, *model.img_size))
    assert explain.graph_break_count == 0, [str(r.reason) for r in explain.break_reasons]


def test_compiled_layer_matches_eager_forward_and_backward():
    torch.manual_seed(0)
    layer = DynaMixerLayer(32, (4, 6), 4)
    x = torch.randn(2, 4, 6, 32, requires_grad=True)
    ref = layer(x)
    g_ref = torch.autograd.grad(ref.square().sum(), [x] + list(layer.parameters()))
    compiled = torch.compile(layer, backend='aot_eager')  # traces forward and backward, no C++ build
    out = compiled(x)
    g_out = torch.autograd.grad(out.square().sum(), [x] + list(layer.parameters()))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_regional_compile_reuses_one_graph_per_layer_shape():
    from timm.models import create_model
    from torch._dynamo.testing import CompileCounter
    model = create_model('dynamixer_xs', num_classes=10)
    counter = CompileCounter()
    compile_layers(model, backend=counter)
    x = torch.randn(2, model.in_chans, *model.img_size)
    out = model(x)
    # 8 layers at two token grids: one graph per grid (every layer gets contiguous tokens, so a stage's first
    # layer needs no graph of its own); the other layers reuse them
    grids = {layer.token_mixer.grid_size for s in model.stages for layer in s.layers}
    assert len(grids) == 2
    assert counter.frame_count == 2 < sum(len(s.layers) for s in model.stages)
    assert out.shape == (2, 10)


@pytest.mark.slow
def test_inductor_compiled_model_matches_eager():
    from timm.models import create_model
    torch.manual_seed(0)
    model = create_model('dynamixer_xs', num_classes=10).eval()
    x = torch.randn(2, model.in_chans, *model.img_size)
    with torch.no_grad():
        ref = model(x)
        compile_layers(model)
        out = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('fused', [True, False])
def test_compiled_layers_give_the_eager_gradients_on_either_path(fused):
    # fused: dynamo traces the hand-written backward; plain: AOTAutograd derives it; both equal eager fused
    model, x = _seeded_xs_and_input()
    ref = _output_and_grads(model, x)
    compile_layers(model, fused=fused, backend='aot_eager')  # traces forward and backward, no C++ build
    layers = [m for m in model.modules() if isinstance(m, DynaMixerLayer)]
    assert layers and all(layer.token_mixer.fused == fused for layer in layers)
    _assert_same_output_and_grads(_output_and_grads(model, x), ref)


def _seeded_xs_and_input():
    """dynamixer_xs with the weights of seed 0 (the same every call) and a batch of 2 images."""
    from timm.models import create_model
    torch.manual_seed(0)
    model = create_model('dynamixer_xs', num_classes=10)
    return model, torch.randn(2, model.in_chans, *model.img_size)


def _output_and_grads(model, x):
    out = model(x)
    return [out] + list(torch.autograd.grad(out.square().sum(), list(model.parameters())))


def _assert_same_output_and_grads(got, ref):
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(got[1:], ref[1:]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('fused', [True, False])
def test_memory_budget_recomputes_instead_of_saving_and_keeps_the_gradients(fused):
    from benchmark import saved_bytes
    model, x = _seeded_xs_and_input()
    ref = _output_and_grads(model, x)
    compile_layers(model, fused=fused, backend='aot_eager')
    saved_default = saved_bytes(model, x)
    # no dynamo reset: the same layer code compiled again with a budget must not reuse the graphs above
    model, _ = _seeded_xs_and_input()
    compile_layers(model, fused=fused, memory_budget=0.3, backend='aot_eager')
    saved_budget = saved_bytes(model, x)
    # measured: 5.85 -> 1.93 MB (fused), 6.71 -> 2.28 MB (plain) at batch 2
    assert saved_budget < 0.4 * saved_default
    import torch._functorch.config as functorch_config
    assert functorch_config.activation_memory_budget == 1.0  # set while the layers compile only
    _assert_same_output_and_grads(_output_and_grads(model, x), ref)


@pytest.mark.parametrize('budget', [0.0, 1.5, -0.2])
def test_memory_budget_outside_0_1_is_refused(budget):
    from timm.models import create_model
    with pytest.raises(ValueError, match=r'memory_budget must be in \(0, 1\]'):
        compile_layers(create_model('dynamixer_xs'), memory_budget=budget)


def test_layers_compiled_with_one_budget_share_their_graphs():
    from timm.models import create_model
    from torch._dynamo.testing import CompileCounter
    from dynamixer.ops import MemoryBudgetBackend
    counter = CompileCounter()
    assert MemoryBudgetBackend(counter, 0.5) == MemoryBudgetBackend(counter, 0.5) != MemoryBudgetBackend(counter, 0.4)
    models = [create_model('dynamixer_xs', num_classes=10) for _ in range(2)]
    x = torch.randn(2, models[0].in_chans, *models[0].img_size)
    for model in models:
        compile_layers(model, memory_budget=0.5, backend=counter)
        model(x)
    assert counter.frame_count == 2  # one graph per layer shape, for both models
    compile_layers(models[1], memory_budget=0.4, backend=counter)
    models[1](x)
    assert counter.frame_count == 4


def test_dwconv_op_gives_the_depthwise_conv_outputs_and_gradients():
    from dynamixer.model import DwConvMlp
    from dynamixer.ops import dwconv3x3_nhwc
    torch.manual_seed(0)
    mlp = DwConvMlp(6, 12)
    x = torch.randn(3, 5, 4, 12, requires_grad=True)  # (B, H, W, hidden), an odd grid
    ref = mlp.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    out = dwconv3x3_nhwc(x, mlp.dwconv.weight, mlp.dwconv.bias)
    assert out.shape == (3, 5, 4, 12) and out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    params = [x, mlp.dwconv.weight, mlp.dwconv.bias]
    g_ref = torch.autograd.grad(ref.square().sum(), params)
    g_out = torch.autograd.grad(out.square().sum(), params)
    for a, b in zip(g_out, g_ref):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    # under autocast the conv runs in the input's dtype and the weight gradients keep the weights' dtype
    xb = x.detach().bfloat16().requires_grad_()
    outb = dwconv3x3_nhwc(xb, mlp.dwconv.weight, mlp.dwconv.bias)
    assert outb.dtype == torch.bfloat16
    gw = torch.autograd.grad(outb.float().sum(), mlp.dwconv.weight)[0]
    assert gw.dtype == torch.float32


def test_compiled_dwconv_mlp_keeps_the_conv_as_one_op_and_gives_the_eager_gradients():
    from dynamixer.model import DwConvMlp
    torch.manual_seed(0)
    mlp = DwConvMlp(8, 16)
    x = torch.randn(2, 7, 7, 8, requires_grad=True)
    ref = mlp(x)
    g_ref = torch.autograd.grad(ref.square().sum(), [x] + list(mlp.parameters()))
    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(gm.code)
        return gm.forward

    out = torch.compile(mlp, backend=recording_backend)(x)
    g_out = torch.autograd.grad(out.square().sum(), [x] + list(mlp.parameters()))
    assert len(graphs) == 1 and 'dwconv3x3_nhwc' in graphs[0] and 'conv2d' not in graphs[0]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_out, g_ref):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    # and through AOTAutograd, which traces the op's registered backward
    torch._dynamo.reset()
    out = torch.compile(mlp, backend='aot_eager')(x)
    g_out = torch.autograd.grad(out.square().sum(), [x] + list(mlp.parameters()))
    for a, b in zip(g_out, g_ref):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


def test_compiled_plain_block_in_bf16_runs_proj_as_one_gemm():
    # On 4-D tokens, inductor (CPU, bf16) lowered proj to a bmm with the weight broadcast over the rows of tokens,
    # and aten's bf16 bmm copied the weight for every row: compiled plain inference at half its eager speed
    from dynamixer.model import DynaMixerBlock
    torch.manual_seed(0)
    blk = DynaMixerBlock(64, (4, 4), num_heads=4, fused=False).eval()
    compiled = torch.compile(blk, backend='inductor')
    x = torch.randn(2, 4, 4, 64)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        expected = blk(x)
        compiled(x)
        with torch.profiler.profile(record_shapes=True) as prof:
            out = compiled(x)
    broadcast_weight_bmms = [e for e in prof.events() if e.name == 'aten::bmm' and e.input_shapes
                             and list(e.input_shapes[1][-2:]) == [64, 64]]
    assert broadcast_weight_bmms == []
    assert (out.float() - expected.float()).abs().max() < 0.1
