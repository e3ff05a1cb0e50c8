"""The DynaMixer token mixer: dispatch between the plain module path and the fused fast path.

`dynamixer_mix(block, x)` computes `block.combine(block.branches(x))` of a `DynaMixerBlock` (everything of
the token mixer except its output projection). The plain path is the modules in `dynamixer.model`, written to
be obviously correct; the fused path below gives the same outputs and gradients (tests/test_ops.py).

The fused path (`FusedTokenMix`, one autograd Function per block) differs from the plain path in how, not what:
  * it stays in the (B, H, W, C) token layout. Only the mixing itself needs a head-major copy of the tokens
    (the (sequence, head) batch of a row or column cannot be one strided batch of a matmul), and so do the
    compressed tokens, which the compress GEMM gives with their bias added.
  * reweighting needs mean(h + w + c) before the branches exist: out_h, out_w and mlp_c are linear, so
    mean(out(M)) = out(mean(M)) is computed from (B, C) means. The per-sample softmax scales a_k then act on
    the output channels of a branch's Linear, i.e. on the rows of its weight: each branch is one batched GEMM
    with per-sample weights a_k[b, :, None] * W_k accumulating into y (no (B, H, W, C) elementwise passes).
  * backward recomputes the L x L mixing matrices from the saved compressed tokens (a few MACs per token)
    instead of keeping them (at 32x32 tokens they are larger than the activations), and from them the mixed
    tokens M_h, M_w (one small batched matmul and one copy each). It keeps only x, the compressed tokens
    (2*G*d of the C channels) and (B, C)-sized statistics.
  * weight gradients of the per-sample GEMMs come from D_k[b] = dy_b^T X_k,b (one batched GEMM, the same MACs
    as the usual weight-gradient GEMM): dW_k = sum_b a_k[b, :, None] * D_k[b], and the reweighting gradient
    da_k[b, o] = sum_c D_k[b, o, c] W_k[o, c] (+ bias term), so the branch outputs are never stored.
`dynamixer_norm_mlp` is the same idea for the channel MLP of a layer (`FusedNormMlp`): it keeps the layer
input and the fc1 output for backward and recomputes the LayerNorm and the GELU there.
The Functions are written with plain aten ops only (no Triton, no C++), so it runs on any device and traces
through torch.compile without graph breaks. One opt-in exception, off by default and not yet measured on a GPU:
with DYNAMIXER_TRITON_MIX=1 on CUDA, the forward's generate -> softmax -> mix of a dynamic op runs as one Triton
kernel (`dynamixer.kernels.mix`), never under torch.compile.
`dwconv3x3_nhwc` (end of file) is the depthwise conv of `DwConvMlp` as one custom op, which DwConvMlp calls while
torch.compile traces it, so that inductor runs the eager conv kernels in their eager layout.
"""
from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
import torch.fx
import torch.nn.functional as F
from timm.layers import Mlp

from .kernels import triton_mix, triton_mix_enabled

if TYPE_CHECKING:
    from .model import DynaMixerBlock

GENERATORS = ('dynamic', 'static', 'dense')

# parameters of one DynaMixer op, in the order they are passed to FusedTokenMix
_OP_PARAMS = ('compress.weight', 'compress.bias', 'generate.weight', 'generate.bias', 'static_logits',
              'out.weight', 'out.bias')
_NUM_OP_PARAMS = len(_OP_PARAMS)


def dynamixer_mix(block: 'DynaMixerBlock', x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, H, W, C): the reweighted branches of `block` for input `x`.

    Runs the fused path (`fused_token_mix`). Under torch.fx symbolic tracing (timm feature extraction) and
    torch.jit.trace (fvcore's FLOP count, TorchScript export) it takes the plain module path, which traces op
    by op and computes the same function (a traced autograd Function would be one opaque node).
    """
    if isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing():
        return block.combine(block.branches(x))
    return fused_token_mix(block, x)


def plain_token_mix(block: 'DynaMixerBlock', x: torch.Tensor) -> torch.Tensor:
    """The plain, obviously-correct path (the modules of `dynamixer.model`), for tests and benchmarks."""
    return block.combine(block.branches(x))


def _op_params(op) -> List[Optional[torch.Tensor]]:
    return [
        op.compress.weight if op.compress is not None else None,
        op.compress.bias if op.compress is not None else None,
        op.generate.weight if op.generate is not None else None,
        op.generate.bias if op.generate is not None else None,
        op.static_logits,
        op.out.weight,
        op.out.bias,
    ]


def fused_token_mix(block: 'DynaMixerBlock', x: torch.Tensor) -> torch.Tensor:
    """The fused path of `block.combine(block.branches(x))`, (B, H, W, C) -> (B, H, W, C)."""
    ops, axes = [], []  # unique DynaMixer ops, and per mixing branch (axis, index into ops)
    for axis, op in (('h', block.mix_h), ('w', block.mix_w)):
        if op is None:
            continue
        if len(ops) and op is ops[0]:  # share_op: one op for rows and columns
            axes.append((axis, 0))
        else:
            axes.append((axis, len(ops)))
            ops.append(op)
    params: List[Optional[torch.Tensor]] = []
    for op in ops:
        params += _op_params(op)
    params.append(block.mlp_c.weight if block.mlp_c is not None else None)
    rw = block.reweight
    if rw is not None:
        params += [rw.fc1.weight, rw.fc1.bias, rw.fc2.weight, rw.fc2.bias]
    else:
        params += [None, None, None, None]
    # (generator, G, d) per unique op; generator and head layout are static for tracing and compilation
    op_cfg = tuple((op.generator, op.num_heads, op.reduced_dim) for op in ops)
    cfg = (tuple(axes), op_cfg, block.mlp_c is not None, rw is not None)

    device_type = x.device.type
    if _autocast_on(device_type):
        # run the Function in the autocast dtype with autocast off (its backward runs without autocast)
        dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return FusedTokenMix.apply(
                cfg, x.to(dtype), *[p.to(dtype) if p is not None else None for p in params])
    return FusedTokenMix.apply(cfg, x, *params)


def _autocast_on(device_type: str) -> bool:
    # autocast exists for these device types only (asking about 'meta' raises)
    return device_type in ('cpu', 'cuda', 'xpu', 'mps', 'hpu') and torch.is_autocast_enabled(device_type)


def _softmax(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax in fp32 for half inputs (as autocast does), in the input dtype otherwise."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        return torch.softmax(logits, dim, dtype=torch.float32).to(logits.dtype)
    return torch.softmax(logits, dim)


def _softmax_backward(grad: torch.Tensor, prob: torch.Tensor, dim: int) -> torch.Tensor:
    return torch._softmax_backward_data(grad, prob, dim, prob.dtype)


def _head_major(x: torch.Tensor, axis: str, G: int) -> torch.Tensor:
    """(B, H, W, C) tokens -> (N*G, L, C/G) sequences of one head, contiguous (the one permute copy).

    axis 'h': sequences are columns, N = B*W, L = H; axis 'w': rows, N = B*H, L = W.
    """
    B, H, W, C = x.shape
    x = x.view(B, H, W, G, C // G)
    if axis == 'h':
        x = x.permute(0, 2, 3, 1, 4)  # (B, W, G, H, c)
        L = H
    else:
        x = x.permute(0, 1, 3, 2, 4)  # (B, H, G, W, c)
        L = W
    return x.contiguous().view(-1, L, C // G)


def _token_major_view(t: torch.Tensor, axis: str, B: int, H: int, W: int, G: int) -> torch.Tensor:
    """A head-major (N*G, L, c) tensor viewed as (B, H, W, G, c) (strided, no copy)."""
    c = t.shape[-1]
    if axis == 'h':
        return t.view(B, W, G, H, c).permute(0, 3, 1, 2, 4)
    return t.view(B, H, G, W, c).permute(0, 1, 3, 2, 4)


def _mixing_weights(kind: str, comp: Optional[torch.Tensor], gw, gb, static, G: int, L: int) -> torch.Tensor:
    """Mixing weights of one op.

    comp: compressed tokens, head-major (N*G, L, d) (None for a static generator).
    Returns for 'dynamic' P (N*G, L_i, L_j) (softmax over the sources i); for 'dense' P transposed,
    (N*G, L_j, L_i) (softmax over the last axis); for 'static' P (G, L_i, L_j), shared by all sequences.
    """
    if kind == 'static':
        return _softmax(static, 1)
    if kind == 'dense':
        logits = F.linear(comp, gw, gb)  # (NG, L_j, L_i): target j's logits from token j
        return _softmax(logits, 2)
    NG = comp.shape[0]
    logits = torch.addmm(gb, comp.view(NG, -1), gw.t())  # (NG, L*L) laid out [i, j]
    return _softmax(logits.view(NG, L, L), 1)



def _mix(kind: str, P: torch.Tensor, xs: torch.Tensor, x: torch.Tensor, axis: str, G: int) -> torch.Tensor:
    """Mixed tokens M (B, H, W, C) from the mixing weights and the head-major tokens xs (N*G, L, c)."""
    B, H, W, C = x.shape
    if kind == 'dynamic':
        Mh = torch.bmm(P.transpose(1, 2), xs)  # M_j = sum_i P[i, j] x_i
    elif kind == 'dense':
        Mh = torch.bmm(P, xs)  # P is (N*G, L_j, L_i)
    else:  # static P (G, L_i, L_j) is shared by all sequences
        Mh = torch.matmul(P.transpose(1, 2), xs.view(-1, G, xs.shape[1], C // G)).view_as(xs)
    M = torch.empty_like(x)
    M.view(B, H, W, G, C // G).copy_(_token_major_view(Mh, axis, B, H, W, G))  # back to token-major
    return M


class FusedTokenMix(torch.autograd.Function):
    """y = the reweighted sum of the column, row and channel branches of a DynaMixerBlock (before proj).

    Inputs: a static config (see `fused_token_mix`), x (B, H, W, C), then per unique op the tensors named in
    `_OP_PARAMS`, then mlp_c.weight, then reweight fc1.weight, fc1.bias, fc2.weight, fc2.bias (None if absent).
    """

    @staticmethod
    def forward(ctx, cfg, x, *params):
        axes, op_cfg, has_c, has_rw = cfg
        x = x.contiguous()
        B, H, W, C = x.shape
        T, HW = B * H * W, H * W
        x3 = x.view(B, HW, C)
        n_ops = len(op_cfg)
        op_p = [dict(zip(_OP_PARAMS, params[i * _NUM_OP_PARAMS:(i + 1) * _NUM_OP_PARAMS])) for i in range(n_ops)]
        wc = params[n_ops * _NUM_OP_PARAMS]
        fc1w, fc1b, fc2w, fc2b = params[n_ops * _NUM_OP_PARAMS + 1:]

        # 1. compress: one GEMM per (non-static) op, (T, C) -> (T, G*d), the GEMM adding the bias
        comp_ops = [i for i in range(n_ops) if op_cfg[i][0] != 'static']
        y1 = {i: torch.addmm(op_p[i]['compress.bias'], x.view(T, C), op_p[i]['compress.weight'].t())
              for i in comp_ops}

        # 2. per mixing branch: mixing weights and mixed tokens M (B, H, W, C), before the out Linear
        Ms, comps = [], []
        for axis, i in axes:
            kind, G, d = op_cfg[i]
            L = H if axis == 'h' else W
            comp = None
            if kind != 'static':
                comp = _head_major(y1[i].view(B, H, W, G * d), axis, G)  # this op's, head-major (N*G, L, d)
            if kind == 'dynamic' and triton_mix_enabled(x):  # opt-in, unmeasured: dynamixer/kernels/mix.py
                Ms.append(triton_mix(comp, op_p[i]['generate.weight'], op_p[i]['generate.bias'], x, axis, G))
            else:
                P = _mixing_weights(kind, comp, op_p[i]['generate.weight'], op_p[i]['generate.bias'],
                                    op_p[i]['static_logits'], G, L)
                Ms.append(_mix(kind, P, _head_major(x, axis, G), x, axis, G))
            comps.append(comp)

        # 3. combine: y = sum_k a_k * (X_k W_k^T + b_k), X_k = M_k (mixing branches) or x (channel branch)
        Xs = [M.view(B, HW, C) for M in Ms] + ([x3] if has_c else [])
        Ws = [op_p[i]['out.weight'] for _, i in axes] + ([wc] if has_c else [])
        bs = [op_p[i]['out.bias'] for _, i in axes]  # the channel branch has no bias
        if has_rw:
            # a = softmax over branches of MLP(mean(h + w + c)), with mean(X W^T + b) = mean(X) W^T + b
            sums = [X.sum(1) for X in Xs]  # (B, C) token sums
            s = sums[0] @ Ws[0].t()
            for m, w in zip(sums[1:], Ws[1:]):
                s.addmm_(m, w.t())
            s.div_(HW)
            for b in bs:
                s.add_(b)
            f = torch.addmm(fc1b, s, fc1w.t())
            g = F.gelu(f)
            a = _softmax(torch.addmm(fc2b, g, fc2w.t()).view(B, C, len(Xs)), 2)  # (B, C, n), channel-major
            ak = a.unbind(2)  # n strided (B, C) views: the scales of each branch
            y = None
            if bs:
                bias = ak[0] * bs[0]  # (B, C): sum_k a_k * b_k
                for k in range(1, len(bs)):
                    bias.addcmul_(ak[k], bs[k])
                y = bias.unsqueeze(1)
            for k, (X, w) in enumerate(zip(Xs, Ws)):
                wk = (ak[k].unsqueeze(2) * w).transpose(1, 2)  # (B, C_in, C_out): per-sample scaled rows
                # y is (B, 1, C) bias on the first branch (broadcast by baddbmm), then accumulated in place
                y = torch.bmm(X, wk) if y is None else torch.baddbmm(y, X, wk) if y.shape[1] == 1 \
                    else y.baddbmm_(X, wk)
            ctx.save_for_backward(x, *comps, *params, s, f, g, a, *sums)
        else:
            y = None
            for k, (X, w) in enumerate(zip(Xs, Ws)):
                X2 = X.view(T, C)
                if y is None:
                    y = torch.addmm(bs[k], X2, w.t()) if k < len(bs) else X2 @ w.t()
                else:
                    y.addmm_(X2, w.t())
                    if k < len(bs):
                        y.add_(bs[k])
            ctx.save_for_backward(x, *comps, *params)
        ctx.cfg = cfg
        ctx.n_params = len(params)
        return y.view(B, H, W, C)

    @staticmethod
    def backward(ctx, dy):
        axes, op_cfg, has_c, has_rw = ctx.cfg
        saved = ctx.saved_tensors
        n_br, n_ops, n_p = len(axes), len(op_cfg), ctx.n_params
        x = saved[0]
        comps = saved[1:1 + n_br]
        params = saved[1 + n_br:1 + n_br + n_p]
        rest = saved[1 + n_br + n_p:]
        op_p = [dict(zip(_OP_PARAMS, params[i * _NUM_OP_PARAMS:(i + 1) * _NUM_OP_PARAMS])) for i in range(n_ops)]
        idx = lambda i, name: i * _NUM_OP_PARAMS + _OP_PARAMS.index(name)  # noqa: E731
        wc = params[n_ops * _NUM_OP_PARAMS]
        fc1w, fc2w = params[n_ops * _NUM_OP_PARAMS + 1], params[n_ops * _NUM_OP_PARAMS + 3]
        B, H, W, C = x.shape
        T, HW = B * H * W, H * W
        dy3 = dy.contiguous().view(B, HW, C)
        grads: List[Optional[torch.Tensor]] = [None] * n_p

        def acc(i: int, g: torch.Tensor):
            grads[i] = g if grads[i] is None else grads[i] + g

        # recompute the mixing weights and the mixed tokens (cheaper than keeping them)
        Ps, xss, Ms = [], [], []
        for k, (axis, i) in enumerate(axes):
            kind, G, d = op_cfg[i]
            Ps.append(_mixing_weights(kind, comps[k], op_p[i]['generate.weight'], op_p[i]['generate.bias'],
                                      op_p[i]['static_logits'], G, H if axis == 'h' else W))
            xss.append(_head_major(x, axis, G))  # (NG, L, c)
            Ms.append(_mix(kind, Ps[k], xss[k], x, axis, G))
        Xs = [M.view(B, HW, C) for M in Ms] + ([x.view(B, HW, C)] if has_c else [])
        Ws = [op_p[i]['out.weight'] for _, i in axes] + ([wc] if has_c else [])
        w_idx = [idx(i, 'out.weight') for _, i in axes] + ([n_ops * _NUM_OP_PARAMS] if has_c else [])
        b_idx = [idx(i, 'out.bias') for _, i in axes]
        dXs: List[torch.Tensor] = []  # gradients of the branch inputs, (B, HW, C)

        # combine backward
        if has_rw:
            s, f, g, a = rest[:4]
            sums = rest[4:]
            n = len(Xs)
            ak = a.unbind(2)
            dsum = dy3.sum(1)  # (B, C): token sums of dy
            dyT = dy3.transpose(1, 2)
            Ds = [torch.bmm(dyT, X) for X in Xs]  # D_k[b] = dy_b^T X_k,b  (B, C_out, C_in)
            das = [(D * w).sum(2) for D, w in zip(Ds, Ws)]  # da_k[b, o] = sum_c D_k[b, o, c] W_k[o, c] ...
            for k, bi in enumerate(b_idx):
                das[k].addcmul_(dsum, params[bi])  # ... + b_k[o] * dsum[b, o]
            # stacked (a (B, C, n) copy): an out= into a strided slice of one buffer would break dynamo's graph
            dr = _softmax_backward(torch.stack(das, 2), a, 2).view(B, n * C)
            grads[-2], grads[-1] = dr.t() @ g, dr.sum(0)  # reweight.fc2
            df = torch.ops.aten.gelu_backward(dr @ fc2w, f)
            grads[-4], grads[-3] = df.t() @ s, df.sum(0)  # reweight.fc1
            ds = df @ fc1w  # (B, C): gradient of s = sum_k mean(X_k) W_k^T + b_k
            ds_mean = ds / HW
            ds_sum = ds.sum(0)
            for k, (D, w) in enumerate(zip(Ds, Ws)):
                a_col = ak[k].unsqueeze(2)  # (B, C_out, 1)
                # dW_k = sum_b a_k[b, o] D_k[b, o, c] + ds^T mean(X_k)
                acc(w_idx[k], D.mul_(a_col).sum(0).addmm_(ds_mean.t(), sums[k]))
                if k < len(b_idx):
                    acc(b_idx[k], (ak[k] * dsum).sum(0).add_(ds_sum))
                # dX_k = dy (a_k * W_k) + mean's gradient (ds W_k) / HW, the same for every token
                dXs.append(torch.baddbmm((ds_mean @ w).unsqueeze(1), dy3, a_col * w))
        else:
            dy2 = dy3.view(T, C)
            dsum0 = dy2.sum(0)
            for k, (X, w) in enumerate(zip(Xs, Ws)):
                acc(w_idx[k], dy2.t() @ X.view(T, C))
                if k < len(b_idx):
                    acc(b_idx[k], dsum0)
                dXs.append((dy2 @ w).view(B, HW, C))
        dx = dXs[n_br].view(B, H, W, C) if has_c else torch.zeros_like(x)

        # mixing backward, recomputing the mixing weights from the compressed tokens
        comp_ops = [i for i in range(n_ops) if op_cfg[i][0] != 'static']
        comp_off = _offsets(op_cfg, comp_ops)
        # gradient of the compress GEMMs' outputs, the ops side by side
        dy1 = x.new_zeros(T, sum(op_cfg[i][1] * op_cfg[i][2] for i in comp_ops)) if comp_ops else None
        for k, (axis, i) in enumerate(axes):
            kind, G, d = op_cfg[i]
            L = H if axis == 'h' else W
            c = C // G
            comp, P, xs = comps[k], Ps[k], xss[k]
            dMh = _head_major(dXs[k].view(B, H, W, C), axis, G)  # (NG, L_j, c)
            if kind == 'dynamic':
                dxs = torch.bmm(P, dMh)  # dx_i = sum_j P[i, j] dM_j
                dl = _softmax_backward(torch.bmm(xs, dMh.transpose(1, 2)), P, 1)  # dP[i, j] = x_i . dM_j
                dl = dl.view(-1, L * L)
                acc(idx(i, 'generate.weight'), dl.t() @ comp.view(-1, L * d))
                acc(idx(i, 'generate.bias'), dl.sum(0))
                dcomp = (dl @ op_p[i]['generate.weight']).view(-1, L, d)
            elif kind == 'dense':  # P here is (NG, L_j, L_i)
                dxs = torch.bmm(P.transpose(1, 2), dMh)
                dl = _softmax_backward(torch.bmm(dMh, xs.transpose(1, 2)), P, 2)  # (NG, L_j, L_i)
                acc(idx(i, 'generate.weight'), dl.view(-1, L).t() @ comp.view(-1, d))
                acc(idx(i, 'generate.bias'), dl.sum((0, 1)))
                dcomp = dl @ op_p[i]['generate.weight']  # (NG, L_j, d)
            else:  # static: P (G, L_i, L_j) shared by all sequences
                xs4, dM4 = xs.view(-1, G, L, c), dMh.view(-1, G, L, c)
                dxs = torch.matmul(P, dM4).view_as(xs)
                dP = torch.einsum('ngic,ngjc->gij', xs4, dM4)
                acc(idx(i, 'static_logits'), _softmax_backward(dP, P, 1))
                dcomp = None
            _add_permuted_(dx.view(B, H, W, G, c), _token_major_view(dxs, axis, B, H, W, G))
            if dcomp is not None:
                acc(idx(i, 'compress.bias'), dcomp.view(-1, G, L, d).sum((0, 2)).view(G * d))
                _add_permuted_(dy1[:, comp_off[i]:comp_off[i] + G * d].view(B, H, W, G, d),
                               _token_major_view(dcomp, axis, B, H, W, G))
        if dy1 is not None:
            dwcomp = dy1.t() @ x.view(T, C)  # (sum G*d, C): every op's weight gradient from one GEMM
            for i in comp_ops:
                cols = slice(comp_off[i], comp_off[i] + op_cfg[i][1] * op_cfg[i][2])
                dx.view(T, C).addmm_(dy1[:, cols], op_p[i]['compress.weight'])
                acc(idx(i, 'compress.weight'), dwcomp[cols])
        return (None, dx, *grads)


def _add_permuted_(dst: torch.Tensor, src: torch.Tensor) -> None:
    """dst += src, where src is a permuted (head-major) view.

    On a CPU, PyTorch's add of a permuted bf16 / fp16 operand runs 15-20x slower than copying it into dst's layout
    and adding contiguously (0.94 ms against 0.05 + 0.06 ms for a (8, 16, 16, 384) bf16 tensor on a Zen 5; fp32:
    0.08 ms either way; docs/bench/permuted_add_bf16.txt), so there half-precision sources are copied first.
    """
    if src.device.type == 'cpu' and src.dtype in (torch.bfloat16, torch.float16):
        src = src.contiguous()
    dst.add_(src)


def _offsets(op_cfg, comp_ops) -> dict:
    """Column offset of each compressing op's G*d outputs in the backward's shared gradient buffer."""
    offsets, off = {}, 0
    for i in comp_ops:
        offsets[i] = off
        off += op_cfg[i][1] * op_cfg[i][2]
    return offsets

def compile_layers(model: torch.nn.Module, fused: Optional[bool] = None, memory_budget: Optional[float] = None,
                   **compile_kwargs) -> torch.nn.Module:
    """Regional compilation: torch.compile every DynaMixerLayer in place (`nn.Module.compile`).

    All layers run the same code, so dynamo compiles one graph per distinct layer shape (two for S/M/L: the
    32x32 and the 16x16 layers; one more of each for eval, and for a new batch size) and every other layer
    reuses it; parameters are graph inputs. The stem, the patch merges and the head stay eager. Other models
    (no DynaMixerLayer) are compiled whole.

    Dynamo traces the fused path's autograd Functions, forward and hand-written backward, into the graphs; with
    `fused=False` the layers run the plain modules instead, and inductor derives the backward itself.

    `memory_budget` (0 < b <= 1) is AOTAutograd's activation memory budget for these graphs only
    (`torch._functorch.config.activation_memory_budget`, set while they compile through `MemoryBudgetBackend`,
    not globally): below 1 the partitioner recomputes the cheapest activations in backward instead of saving them,
    until the saved bytes are about b times what the default partition keeps. On dynamixer_s (fp32) 0.4 with the
    fused path or 0.25 with the plain one keeps it under the 120 MiB/img of issue 4 (docs/benchmarks.md).

    Args:
        model: A model; compiled in place.
        fused: Set every layer's path first (True: fused Functions, False: plain modules); None keeps it.
        memory_budget: Activation memory budget of the compiled layers' backward; None: torch's setting.
        compile_kwargs: Passed to torch.compile (backend, mode, ...).
    """
    from .model import DynaMixerLayer
    import torch._dynamo
    # graphs per layer shape x {train, eval} x {static, dynamic batch}; the default limit of 8 is close
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)
    if memory_budget is not None:
        if not 0 < memory_budget <= 1:
            raise ValueError(f'memory_budget must be in (0, 1], got {memory_budget}: 1 keeps what the default '
                             'partition saves, smaller values recompute more in backward')
        compile_kwargs['backend'] = MemoryBudgetBackend(
            compile_kwargs.pop('backend', 'inductor'), memory_budget, compile_kwargs.pop('mode', None),
            compile_kwargs.pop('options', None), compile_kwargs.get('dynamic'))
    layers = [m for m in model.modules() if isinstance(m, DynaMixerLayer)]
    if not layers:
        model.compile(**compile_kwargs)
    for layer in layers:
        if fused is not None:
            layer.token_mixer.fused = fused
        layer.compile(**compile_kwargs)
    return model


class MemoryBudgetBackend:
    """A torch.compile backend: `backend` (with `mode` / `options`, built as torch.compile builds it) run with
    AOTAutograd's activation memory budget (`torch._functorch.config.activation_memory_budget`) set to
    `budget` while it compiles a graph, which is when the forward/backward partition is chosen.

    Backends compare equal when backend, options and budget do: dynamo reuses a compiled graph only for an equal
    backend, so layers compiled with one budget share graphs and a different budget compiles its own (a budget
    patched around the call instead would be ignored by graphs already compiled for the same code).
    """

    def __init__(self, backend='inductor', budget: float = 1.0, mode: Optional[str] = None,
                 options: Optional[dict] = None, dynamic: Optional[bool] = None):
        # the wrappers torch.compile itself builds for a backend name / callable with mode and options
        if backend == 'inductor':
            self.inner = torch._TorchCompileInductorWrapper(mode, options, dynamic)
        else:
            self.inner = torch._TorchCompileWrapper(backend, mode, options, dynamic)
        self.budget = float(budget)

    def __call__(self, gm, example_inputs):
        import torch._functorch.config as functorch_config
        with functorch_config.patch(activation_memory_budget=self.budget):
            return self.inner(gm, example_inputs)

    def __eq__(self, other):
        return isinstance(other, MemoryBudgetBackend) and (self.budget, self.inner) == (other.budget, other.inner)

    def __hash__(self):
        return hash(self.budget)

    def __getattr__(self, name):  # reset(), get_compiler_config(), compiler_name, ... of the wrapped backend
        if name == 'inner':
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self):
        return f'MemoryBudgetBackend({self.inner!r}, budget={self.budget})'


def dynamixer_norm_mlp(layer, x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> layer.mlp(layer.norm2(x)) of a DynaMixerLayer, through `FusedNormMlp` when it applies.

    The fused path keeps x and the fc1 output for backward and recomputes the LayerNorm output and the GELU
    there (the plain modules keep x, LN(x), fc1(.) and GELU(.): 8 activations of width C, the fused path 4).
    It applies to nn.LayerNorm + timm Mlp with exact GELU, no norm inside the Mlp, no active dropout, outside
    autocast, fx and jit tracing; anything else runs the modules.
    """
    norm, mlp = layer.norm2, layer.mlp
    if (isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing() or type(norm) is not torch.nn.LayerNorm or norm.weight is None
            or norm.bias is None or len(norm.normalized_shape) != 1 or not _is_plain_gelu_mlp(mlp)
            or _autocast_on(x.device.type)):
        return mlp(norm(x))
    return FusedNormMlp.apply(
        x, norm.weight, norm.bias, mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight, mlp.fc2.bias, norm.eps)


def _is_plain_gelu_mlp(mlp) -> bool:
    if type(mlp) is not Mlp:  # a timm Mlp exactly: other MLPs (DwConvMlp's conv) have steps the fusion would skip
        return False
    fc1, fc2 = getattr(mlp, 'fc1', None), getattr(mlp, 'fc2', None)
    act = getattr(mlp, 'act', None)
    drops = [getattr(mlp, n, None) for n in ('drop1', 'drop2')]
    return (type(fc1) is torch.nn.Linear and type(fc2) is torch.nn.Linear and fc1.bias is not None
            and fc2.bias is not None and type(act) is torch.nn.GELU and act.approximate == 'none'
            and type(getattr(mlp, 'norm', None)) is torch.nn.Identity
            and all(type(d) is torch.nn.Dropout and (d.p == 0 or not d.training) for d in drops))


class FusedNormMlp(torch.autograd.Function):
    """fc2(GELU(fc1(LayerNorm(x)))) on (..., C); saves x and fc1's output, recomputes LN(x) and GELU."""

    @staticmethod
    def forward(ctx, x, ln_w, ln_b, w1, b1, w2, b2, eps: float):
        C = x.shape[-1]
        x2 = x.contiguous().view(-1, C)
        xn = torch.native_layer_norm(x2, (C,), ln_w, ln_b, eps)[0]
        h = torch.addmm(b1, xn, w1.t())  # (T, hidden)
        out = torch.addmm(b2, F.gelu(h), w2.t())
        ctx.save_for_backward(x2, h, ln_w, ln_b, w1, w2)
        ctx.eps = eps
        return out.view(x.shape[:-1] + (w2.shape[0],))

    @staticmethod
    def backward(ctx, dout):
        x2, h, ln_w, ln_b, w1, w2 = ctx.saved_tensors
        C = x2.shape[1]
        xn, mean, rstd = torch.native_layer_norm(x2, (C,), ln_w, ln_b, ctx.eps)  # recomputed
        dout2 = dout.contiguous().view(-1, dout.shape[-1])
        dw2, db2 = dout2.t() @ F.gelu(h), dout2.sum(0)  # GELU recomputed
        dh = torch.ops.aten.gelu_backward(dout2 @ w2, h)
        dw1, db1 = dh.t() @ xn, dh.sum(0)
        dx, dln_w, dln_b = torch.ops.aten.native_layer_norm_backward(
            dh @ w1, x2, (C,), mean, rstd, ln_w, ln_b, [True, True, True])
        return dx.view(dout.shape[:-1] + (C,)), dln_w, dln_b, dw1, db1, dw2, db2, None


# The depthwise 3x3 conv of DwConvMlp (mlp_dwconv=True) as an op that torch.compile keeps whole. Inductor lowers
# an nn.Conv2d on the permuted (B, H, W, C) tensor with layouts of its own: on a CPU the compiled layers of
# dynamixer_xs_convstem_sum_dw then trained at 49 img/s against 155 eager, convolution_backward alone 2.6x slower
# (docs/bench/avx2/dwconv_compile_ab.txt, docs/benchmarks.md "A third CPU"). As one custom op, forward and backward, the graph calls the same kernels
# as eager, in the same channels-last layout.

@torch.library.custom_op('dynamixer::dwconv3x3_nhwc', mutates_args=())
def dwconv3x3_nhwc(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, H, W, C): conv2d(x, weight (C, 1, 3, 3), bias, padding 1, groups C), in x's dtype."""
    y = F.conv2d(x.permute(0, 3, 1, 2), weight.to(x.dtype), bias.to(x.dtype), padding=1, groups=x.shape[-1])
    return y.permute(0, 2, 3, 1).contiguous()


@dwconv3x3_nhwc.register_fake
def _(x, weight, bias):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op('dynamixer::dwconv3x3_nhwc_backward', mutates_args=())
def _dwconv3x3_nhwc_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor
                             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    C = x.shape[-1]
    dx, dw, db = torch.ops.aten.convolution_backward(
        grad.permute(0, 3, 1, 2), x.permute(0, 3, 1, 2), weight.to(x.dtype), [C], [1, 1], [1, 1], [1, 1], False,
        [0, 0], C, [True, True, True])
    return dx.permute(0, 2, 3, 1).contiguous(), dw.to(weight.dtype), db.to(weight.dtype)


@_dwconv3x3_nhwc_backward.register_fake
def _(grad, x, weight):
    return (torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(weight),
            weight.new_empty(weight.shape[0]))


def _dwconv_setup_context(ctx, inputs, output):
    x, weight, _ = inputs
    ctx.save_for_backward(x, weight)


def _dwconv_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    return _dwconv3x3_nhwc_backward(grad.contiguous(), x, weight)


dwconv3x3_nhwc.register_autograd(_dwconv_backward, setup_context=_dwconv_setup_context)
