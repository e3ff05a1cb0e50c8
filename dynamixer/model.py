"""DynaMixer: a vision MLP with dynamic mixing.

Paper: "DynaMixer: A Vision MLP Architecture with Dynamic Mixing", Z. Wang, W. Jiang, Y. Zhu, L. Yuan,
Y. Song, W. Liu (ICML 2022), https://arxiv.org/abs/2201.12083.

The network is a ViP-style two-resolution MLP: a 7x7 patch stem (32x32 tokens at 224 px), a group of layers,
a 2x2 patch merge (16x16 tokens), more layers, LayerNorm, global average pool and a linear classifier. Each
layer mixes tokens with a DynaMixerBlock (rows, columns and channels mixed separately, then reweighted) and
channels with an MLP. The row / column mixing is the DynaMixer operation: the mixing matrix of a row is
generated from the row's own content, so it changes from image to image.

What this implementation changes with respect to the authors' code (behaviour and outputs are the same):
  * module names follow timm (`stem`, `stages.<i>.downsample`, `stages.<i>.layers.<j>.token_mixer`);
    `checkpoint_filter_fn` maps the reference checkpoint layout onto them;
  * the input size is a constructor argument (`img_size`); loading weights trained at another size
    resamples the token-count-dependent generator weights (see `resample_generator`);
  * the paper's ablations are constructor options (generator kind, branches, reweighting, sharing);
  * for small images, `stem='conv'` puts two 3x3 convs before the patch conv (`dynamixer_xs_convstem`; not in
    the paper, whose models keep the patch stem);
  * `mlp_dwconv=True` puts a 3x3 depthwise conv inside every channel MLP (DwConvMlp; not in the paper);
  * the full timm model API (features_only, forward_intermediates, reset_classifier, grad checkpointing).

The operation itself lives in `dynamixer.ops` (a plain PyTorch path and a fused fast path).
"""
import os
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple, Type, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ConvNormAct, DropPath, Mlp, register_notrace_function, to_2tuple, trunc_normal_
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices

from .ops import dwconv3x3_nhwc, dynamixer_mix, dynamixer_norm_mlp, GENERATORS

__all__ = ['DynaMixerOp', 'DynaMixerBlock', 'DynaMixerLayer', 'DynaMixerStage', 'DynaMixer']


class DynaMixerOp(nn.Module):
    """The DynaMixer operation: mixes the L tokens of a sequence with weights generated from the sequence.

    For input X (L, C): compress every token to G heads of d values, generate from a head's L*d values an
    L x L logit matrix [source i, target j] with a Linear shared by all heads, softmax over the sources, let
    target j of head g take the weighted sum of the sources' channels in group g (C/G channels), then apply
    a Linear C -> C.

    Args:
        dim: Channels C.
        seq_len: Tokens L in a mixed sequence (the grid height for column mixing, width for row mixing).
        num_heads: Heads G (the paper's segments S); C must be divisible by G.
        reduced_dim: d, the per-head width the tokens are compressed to before generating the weights.
        generator: 'dynamic' (the paper), 'static' (Synthesizer-Random: a learned L x L matrix per head,
            independent of the input) or 'dense' (Synthesizer-Dense: target j's weights over the sources
            are generated from token j alone, Linear d -> L).
    """

    def __init__(
            self,
            dim: int,
            seq_len: int,
            num_heads: int = 8,
            reduced_dim: int = 2,
            generator: str = 'dynamic',
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if generator not in GENERATORS:
            raise ValueError(f'generator must be one of {GENERATORS}, got {generator!r}')
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.dim = dim
        self.seq_len = seq_len
        self.num_heads = num_heads
        self.reduced_dim = reduced_dim
        self.generator = generator
        self.dense = generator == 'dense'
        if generator == 'static':
            self.compress = None
            self.generate = None
            self.static_logits = nn.Parameter(torch.zeros(num_heads, seq_len, seq_len, **dd))  # (G, L_i, L_j)
        else:
            self.compress = nn.Linear(dim, num_heads * reduced_dim, **dd)
            gen_in, gen_out = (seq_len * reduced_dim, seq_len * seq_len) if generator == 'dynamic' else (reduced_dim, seq_len)
            self.generate = nn.Linear(gen_in, gen_out, **dd)
            self.register_parameter('static_logits', None)
        self.out = nn.Linear(dim, dim, **dd)

    def mixing_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, C) -> (N, G, L_i, L_j): softmax-normalised weights, each target's column sums to 1."""
        N, L, C = x.shape
        G, d = self.num_heads, self.reduced_dim
        if self.static_logits is not None:
            return self.static_logits.softmax(dim=1).unsqueeze(0).expand(N, G, L, L)  # one softmax for all samples
        assert self.compress is not None and self.generate is not None
        w = self.compress(x).reshape(N, L, G, d)  # (N, L, G, d)
        if self.dense:
            # dense: target j's logits over the sources come from token j only
            logits = self.generate(w).permute(0, 2, 3, 1)  # (N, L_j, G, L_i) -> (N, G, L_i, L_j)
        else:
            w = w.transpose(1, 2).reshape(N, G, L * d)  # token-major per head: t0's d values, t1's, ...
            logits = self.generate(w).reshape(N, G, L, L)  # (N, G, L_i, L_j)
        return logits.softmax(dim=2)  # over the sources i

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, C) -> (N, L, C)."""
        N, L, C = x.shape
        G = self.num_heads
        weights = self.mixing_weights(x)  # (N, G, L_i, L_j)
        x = x.reshape(N, L, G, C // G)  # channels split in G contiguous groups
        x = torch.einsum('ngij,nigc->njgc', weights, x).reshape(N, L, C)
        return self.out(x)


class DynaMixerBlock(nn.Module):
    """Token mixing of one layer: column, row and channel mixing, reweighted, then projected.

    Input and output are (B, H, W, C). The column op mixes the H tokens of every column, the row op the W
    tokens of every row (weights shared by all columns / rows), the channel branch is a bias-free Linear.
    The branches are combined with per-channel weights a = softmax over branches of MLP(mean(h + w + c))
    (ViP's split attention), or, with `reweight=False`, summed (the paper's Algorithm 1).

    Args:
        dim: Channels C.
        grid_size: Token grid (H, W).
        num_heads: Heads (segments) of both DynaMixer ops.
        reduced_dim: d of both DynaMixer ops.
        generator: Generator kind of both ops, see DynaMixerOp.
        column_mixing: Keep the column (H axis) branch.
        row_mixing: Keep the row (W axis) branch.
        channel_mixing: Keep the channel branch.
        reweight: Combine branches with the learned reweighting; False sums them.
        share_op: Use one DynaMixer op for rows and columns (needs H == W).
        proj_drop_rate: Dropout after the output projection.
        fused: Use the fused fast path of `dynamixer.ops` (same outputs); False runs the plain modules.
    """

    def __init__(
            self,
            dim: int,
            grid_size: Tuple[int, int],
            num_heads: int = 8,
            reduced_dim: int = 2,
            generator: str = 'dynamic',
            column_mixing: bool = True,
            row_mixing: bool = True,
            channel_mixing: bool = True,
            reweight: bool = True,
            share_op: bool = False,
            proj_drop_rate: float = 0.,
            fused: bool = True,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        H, W = grid_size
        if not (column_mixing or row_mixing or channel_mixing):
            raise ValueError('at least one of column_mixing, row_mixing, channel_mixing must be True')
        if share_op and H != W:
            raise ValueError(f'share_op needs a square token grid, got {H}x{W}')
        if share_op and not (column_mixing and row_mixing):
            raise ValueError('share_op shares the row and column op: keep both column_mixing and row_mixing')
        self.grid_size = (H, W)
        self.share_op = share_op
        self.fused = fused
        op = partial(DynaMixerOp, dim, num_heads=num_heads, reduced_dim=reduced_dim, generator=generator, **dd)
        self.mix_h = op(H) if column_mixing else None
        # a shared op is registered under both names (state_dict shows it twice, parameters() once)
        self.mix_w = (self.mix_h if share_op else op(W)) if row_mixing else None
        self.mlp_c = nn.Linear(dim, dim, bias=False, **dd) if channel_mixing else None
        self.num_branches = int(column_mixing) + int(row_mixing) + int(channel_mixing)
        if reweight and self.num_branches > 1:
            self.reweight = Mlp(dim, dim // 4, dim * self.num_branches, act_layer=nn.GELU, **dd)
        else:
            self.reweight = None
        self.proj = nn.Linear(dim, dim, **dd)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def branches(self, x: torch.Tensor) -> List[torch.Tensor]:
        """(B, H, W, C) -> the branch outputs, each (B, H, W, C), in the order column, row, channel."""
        B, H, W, C = x.shape
        out: List[torch.Tensor] = []
        if self.mix_h is not None:
            # (B, H, W, C) -> (B*W, H, C): columns become sequences
            h = self.mix_h(x.transpose(1, 2).reshape(B * W, H, C))
            out.append(h.reshape(B, W, H, C).transpose(1, 2))
        if self.mix_w is not None:
            # (B, H, W, C) -> (B*H, W, C): rows become sequences
            out.append(self.mix_w(x.reshape(B * H, W, C)).reshape(B, H, W, C))
        if self.mlp_c is not None:
            out.append(self.mlp_c(x))
        return out

    def combine(self, branches: List[torch.Tensor]) -> torch.Tensor:
        """Branch outputs (each (B, H, W, C)) -> their reweighted (or plain) sum (B, H, W, C)."""
        if self.reweight is None:
            total = branches[0]
            for b in branches[1:]:
                total = total + b
            return total
        B, C = branches[0].shape[0], branches[0].shape[-1]
        # mean(h + w + c) as the sum of the branch means: no full-size sums of the branches
        mean = branches[0].mean(dim=(1, 2))
        for b in branches[1:]:
            mean = mean + b.mean(dim=(1, 2))
        a = self.reweight(mean)  # (B, C) -> (B, n*C)
        a = a.reshape(B, C, self.num_branches).softmax(dim=2)  # channel-major: channel 0's n values first
        # (n, B, C), contiguous: a broadcast multiply with a channel-strided scale runs a slow elementwise loop
        a = a.permute(2, 0, 1).contiguous()
        out = branches[0] * a[0, :, None, None, :]
        for k in range(1, self.num_branches):
            out = out + branches[k] * a[k, :, None, None, :]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        if self.fused and not torch.jit.is_scripting():
            x = dynamixer_mix(self, x)
        else:
            x = self.combine(self.branches(x))
        # proj on 2-D tokens: on the 4-D tokens, inductor (CPU, bf16) lowers it to a batched GEMM with the weight
        # broadcast over the rows of tokens, and aten's bf16 bmm copies that weight per row: compiled inference of
        # the plain path at half its eager speed (docs/benchmarks.md, "Session 32")
        x = self.proj(x.reshape(-1, x.shape[-1])).view(x.shape)
        return self.proj_drop(x)


class DwConvMlp(nn.Module):
    """Channel MLP with a 3x3 depthwise conv on its hidden features, on (B, H, W, C): fc1 -> dwconv -> GELU -> fc2.

    The Mix-FFN of PVTv2 (Wang et al., 2022) and LocalViT (Li et al., 2021): each token's hidden features see its
    3x3 neighbours, a locality prior that DynaMixer's whole-row and whole-column mixing lacks. Not in the paper;
    `mlp_dwconv=True` of DynaMixer.
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0., device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.fc1 = nn.Linear(dim, hidden_dim, **dd)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim, **dd)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dim, dim, **dd)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        if torch.compiler.is_compiling():
            # the same conv as one op that inductor keeps whole (its own lowering trained 3x slower on a CPU)
            x = dwconv3x3_nhwc(x, self.dwconv.weight, self.dwconv.bias)
        else:
            # (B, H, W, C) viewed as a channels-last (B, C, H, W): the conv reads and writes that layout, no copies
            x = self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = self.drop1(self.act(x))
        return self.drop2(self.fc2(x))


class DynaMixerLayer(nn.Module):
    """One layer: x + DropPath(DynaMixerBlock(LN(x))), then x + DropPath(MLP(LN(x))), on (B, H, W, C).

    Args:
        dim: Channels C.
        grid_size: Token grid (H, W).
        num_heads: Heads of the DynaMixer ops.
        mlp_ratio: Hidden width of the channel MLP relative to C.
        proj_drop_rate: Dropout after the token mixer's projection and inside the MLP.
        drop_path: Stochastic depth rate of this layer.
        norm_layer: Normalisation layer.
        block_kwargs: Options of the DynaMixerBlock (reduced_dim, generator, ablation switches).
        mlp_dwconv: Put a 3x3 depthwise conv inside the channel MLP (DwConvMlp).
    """

    def __init__(
            self,
            dim: int,
            grid_size: Tuple[int, int],
            num_heads: int,
            mlp_ratio: float = 3.,
            proj_drop_rate: float = 0.,
            drop_path: float = 0.,
            norm_layer: Type[nn.Module] = nn.LayerNorm,
            block_kwargs: Optional[Dict] = None,
            mlp_dwconv: bool = False,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.norm1 = norm_layer(dim, **dd)
        self.token_mixer = DynaMixerBlock(
            dim, grid_size, num_heads=num_heads, proj_drop_rate=proj_drop_rate, **(block_kwargs or {}), **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = norm_layer(dim, **dd)
        if mlp_dwconv:  # not a timm Mlp, so dynamixer_norm_mlp runs the modules instead of its fused path
            self.mlp = DwConvMlp(dim, int(dim * mlp_ratio), drop=proj_drop_rate, **dd)
        else:
            self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop_rate, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.token_mixer(self.norm1(x)))
        if self.token_mixer.fused and not torch.jit.is_scripting():
            x = x + self.drop_path(dynamixer_norm_mlp(self, x))  # same as below; recomputes LN and GELU
        else:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class PatchEmbed(nn.Module):
    """Stem: (B, in_chans, H, W) images -> (B, H/p, W/p, C) tokens with Conv2d(kernel = stride = p)."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, device=None, dtype=None):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H/p, W/p) -> (B, H/p, W/p, C), made contiguous: every layer after it keeps its input's memory
        # layout (LayerNorm, residual adds), and a channel-strided token layout costs a copy in every op
        return self.proj(x).permute(0, 2, 3, 1).contiguous()


class ConvStem(nn.Module):
    """Small-image stem: two 3x3 conv-BN-GELU at full resolution, then the patch conv, -> (B, H/p, W/p, C) tokens.

    Early convolutions give every token local features before the first mixing layer (Xiao et al., "Early
    Convolutions Help Transformers See Better", 2021); at 28-32 px they cost a few percent of the model's MACs.
    """

    def __init__(self, in_chans: int, dim: int, patch_size: int, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        hidden = max(dim // 2, 8)
        self.conv1 = ConvNormAct(in_chans, hidden, 3, act_layer=nn.GELU, **dd)
        self.conv2 = ConvNormAct(hidden, hidden, 3, act_layer=nn.GELU, **dd)
        self.proj = nn.Conv2d(hidden, dim, kernel_size=patch_size, stride=patch_size, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.conv2(self.conv1(x)))  # (B, in_chans, H, W) -> (B, C, H/p, W/p)
        return x.permute(0, 2, 3, 1).contiguous()  # see PatchEmbed


class StridedConvStem(nn.Module):
    """Small-image stem after Xiao et al. (2021): stride-2 3x3 conv-BN-GELU, one per factor 2 of the patch size,
    then a 1x1 conv to the token width, -> (B, H/p, W/p, C) tokens.

    With patch size 4 (two stride-2 convs, widths C/4 and C/2) a 28 px image reaches 7x7 tokens at once, so every
    DynaMixer layer runs on the 7x7 grid: no layers at 14x14 and no convs at full resolution (`stem='conv'`).
    """

    def __init__(self, in_chans: int, dim: int, patch_size: int, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        steps = patch_size.bit_length() - 1
        if patch_size < 2 or patch_size != 1 << steps:
            raise ValueError(f"stem='conv_s2' needs a patch size that is a power of 2 (2, 4, 8), got {patch_size}")
        widths = [max(dim >> (steps - i), 8) for i in range(steps)]  # C/2^steps ... C/2
        convs, c = [], in_chans
        for w in widths:
            convs.append(ConvNormAct(c, w, 3, stride=2, act_layer=nn.GELU, **dd))
            c = w
        self.convs = nn.Sequential(*convs)
        self.proj = nn.Conv2d(c, dim, kernel_size=1, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.convs(x))  # (B, in_chans, H, W) -> (B, C, H/p, W/p)
        return x.permute(0, 2, 3, 1).contiguous()  # see PatchEmbed


class Downsample(nn.Module):
    """Patch merging between resolutions: Conv2d(kernel = stride = patch_size) on (B, H, W, C) tokens."""

    def __init__(self, in_dim: int, out_dim: int, patch_size: int, device=None, dtype=None):
        super().__init__()
        self.proj = nn.Conv2d(in_dim, out_dim, kernel_size=patch_size, stride=patch_size, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x.permute(0, 3, 1, 2))  # (B, H, W, C) -> (B, C', H/p, W/p)
        return x.permute(0, 2, 3, 1).contiguous()  # see PatchEmbed


class DynaMixerStage(nn.Module):
    """An optional patch merge followed by `depth` DynaMixer layers at one token grid.

    Args:
        in_dim: Channels coming in.
        dim: Channels of this stage; a change of width needs a patch merge (patch_size > 1).
        depth: Layers.
        grid_size: Token grid (H, W) after the patch merge.
        patch_size: Patch merge size, 1 for none.
        num_heads: Heads of the DynaMixer ops.
        mlp_ratio: Channel-MLP width ratio.
        proj_drop_rate: Dropout inside the layers.
        drop_path: Stochastic depth rate of each layer.
        norm_layer: Normalisation layer.
        block_kwargs: DynaMixerBlock options.
        mlp_dwconv: 3x3 depthwise conv inside every layer's channel MLP.
    """

    def __init__(
            self,
            in_dim: int,
            dim: int,
            depth: int,
            grid_size: Tuple[int, int],
            patch_size: int,
            num_heads: int,
            mlp_ratio: float,
            proj_drop_rate: float,
            drop_path: List[float],
            norm_layer: Type[nn.Module],
            block_kwargs: Dict,
            mlp_dwconv: bool = False,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if patch_size > 1:
            self.downsample = Downsample(in_dim, dim, patch_size, **dd)
        elif in_dim == dim:
            self.downsample = nn.Identity()
        else:
            raise ValueError(f'a stage that changes width ({in_dim} -> {dim}) needs a patch size > 1')
        self.grad_checkpointing = False
        self.layers = nn.Sequential(*[
            DynaMixerLayer(
                dim, grid_size, num_heads, mlp_ratio=mlp_ratio, proj_drop_rate=proj_drop_rate,
                drop_path=drop_path[j], norm_layer=norm_layer, block_kwargs=block_kwargs,
                mlp_dwconv=mlp_dwconv, **dd)
            for j in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.layers, x)
        else:
            x = self.layers(x)
        return x


def check_input(x: torch.Tensor, in_chans: int, img_size: Tuple[int, int]) -> None:
    """Raise a ValueError that says what to do when an input does not match the model's size."""
    if x.dim() != 4 or x.shape[1] != in_chans:
        raise ValueError(
            'DynaMixer expects images of shape (B, ' + str(in_chans) + ', H, W), got ' + str(list(x.shape))
            + '; build the model with in_chans=<channels of your images> or convert the images.')
    if x.shape[2] != img_size[0] or x.shape[3] != img_size[1]:
        raise ValueError(
            'DynaMixer was built for ' + str(img_size[0]) + 'x' + str(img_size[1]) + ' images (its mixing weights '
            'depend on the token count) but got ' + str(x.shape[2]) + 'x' + str(x.shape[3]) + '; resize the input, '
            'or build a model for this size with timm.create_model(name, img_size=(' + str(x.shape[2]) + ', '
            + str(x.shape[3]) + ')) (pretrained generator weights are resampled to the new size).')


register_notrace_function(check_input)  # shape checks are leaves for torch.fx feature extraction


class DynaMixer(nn.Module):
    """DynaMixer network: patch stem, stages of DynaMixer layers at one or two token grids, norm, head.

    Args:
        num_classes: Classifier outputs; 0 removes the classifier.
        img_size: Input size (int or (H, W)); with the patch sizes it sets every stage's token grid.
        in_chans: Input channels.
        global_pool: 'avg' or '' (no pooling).
        depths: Layers per stage.
        patch_sizes: Stem patch size, then each further stage's patch merge (1 = none).
        embed_dims: Channels per stage.
        num_heads: Heads (segments) per stage.
        reduced_dim: d of the DynaMixer ops.
        mlp_ratio: Channel-MLP width ratio.
        generator: 'dynamic', 'static' (Synthesizer-Random) or 'dense' (Synthesizer-Dense).
        column_mixing / row_mixing / channel_mixing: keep these token-mixing branches (paper Table 8).
        reweight: Reweight the branches (paper); False sums them (Algorithm 1).
        share_op: One DynaMixer op for rows and columns.
        fused: Run the fused fast path of the token mixer (same outputs as the plain modules).
        stem: 'patch' (the paper: one Conv2d with kernel = stride = patch size) or 'conv' (two 3x3 conv-BN-GELU
            at full resolution before the patch conv; for small images, see ConvStem) or 'conv_s2' (stride-2 3x3
            conv-BN-GELU instead of the patch conv, see StridedConvStem).
        drop_rate: Dropout before the classifier.
        proj_drop_rate: Dropout after projections inside layers.
        mlp_dwconv: A 3x3 depthwise conv inside every channel MLP (DwConvMlp; not in the paper).
        drop_path_rate: Stochastic depth of the last layer; rises linearly from 0 over all layers.
        norm_layer: Normalisation layer.
    """

    def __init__(
            self,
            num_classes: int = 1000,
            img_size: Union[int, Tuple[int, int]] = 224,
            in_chans: int = 3,
            global_pool: str = 'avg',
            depths: Tuple[int, ...] = (4, 3, 8, 3),
            patch_sizes: Tuple[int, ...] = (7, 2, 1, 1),
            embed_dims: Tuple[int, ...] = (192, 384, 384, 384),
            num_heads: Tuple[int, ...] = (8, 16, 16, 16),
            reduced_dim: int = 2,
            mlp_ratio: float = 3.,
            generator: str = 'dynamic',
            column_mixing: bool = True,
            row_mixing: bool = True,
            channel_mixing: bool = True,
            reweight: bool = True,
            share_op: bool = False,
            fused: bool = True,
            stem: str = 'patch',
            mlp_dwconv: bool = False,
            drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            norm_layer: Type[nn.Module] = nn.LayerNorm,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if not len(depths) == len(patch_sizes) == len(embed_dims) == len(num_heads):
            raise ValueError('depths, patch_sizes, embed_dims and num_heads need one entry per stage')
        if global_pool not in ('avg', ''):
            raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.img_size = to_2tuple(img_size)
        self.patch_sizes = tuple(patch_sizes)
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.output_fmt = 'NHWC'
        self.feature_dim = -1  # channel dim of forward_features output (B, H, W, C)
        block_kwargs = dict(
            reduced_dim=reduced_dim, generator=generator, column_mixing=column_mixing, row_mixing=row_mixing,
            channel_mixing=channel_mixing, reweight=reweight, share_op=share_op, fused=fused)

        stems = {'patch': PatchEmbed, 'conv': ConvStem, 'conv_s2': StridedConvStem}
        if stem not in stems:
            raise ValueError(f"stem must be 'patch' (the paper's patch conv), 'conv' (3x3 convs first) or 'conv_s2' "
                             f"(stride-2 3x3 convs), got {stem!r}")
        self.stem = stems[stem](in_chans, embed_dims[0], patch_sizes[0], **dd)
        dpr = [r.tolist() for r in torch.linspace(0, drop_path_rate, sum(depths), device='cpu').split(depths)]
        grids = self.grid_sizes(self.img_size, self.patch_sizes)
        stages, self.feature_info, in_dim, reduction = [], [], embed_dims[0], 1
        for i, depth in enumerate(depths):
            reduction *= patch_sizes[i]
            stages.append(DynaMixerStage(
                in_dim, embed_dims[i], depth, grids[i], patch_sizes[i] if i > 0 else 1, num_heads[i],
                mlp_ratio, proj_drop_rate, dpr[i], norm_layer, block_kwargs, mlp_dwconv=mlp_dwconv, **dd))
            self.feature_info.append(dict(num_chs=embed_dims[i], reduction=reduction, module=f'stages.{i}'))
            in_dim = embed_dims[i]
        self.stages = nn.Sequential(*stages)
        self.norm = norm_layer(self.num_features, **dd)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def grid_sizes(img_size: Tuple[int, int], patch_sizes: Tuple[int, ...]) -> List[Tuple[int, int]]:
        """Token grid (H, W) of every stage; like the convs, a partial patch at the border is dropped."""
        grids, (H, W) = [], img_size
        for i, p in enumerate(patch_sizes):
            H, W = H // p, W // p
            if H < 1 or W < 1:
                raise ValueError(
                    f'img_size {img_size} is too small for patch sizes {patch_sizes}: stage {i} has no tokens')
            grids.append((H, W))
        return grids

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, DynaMixerOp) and m.static_logits is not None:
            trunc_normal_(m.static_logits, std=.02)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        return dict(
            stem=r'^stem',
            blocks=[
                (r'^stages\.(\d+)', None),
                (r'^norm', (99999,)),
            ] if coarse else [
                (r'^stages\.(\d+)\.layers\.(\d+)', None),
                (r'^stages\.(\d+)\.downsample', (0,)),
                (r'^norm', (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for s in self.stages:
            s.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier (0 removes it); `global_pool` 'avg' or '' changes the pooling, None keeps it."""
        if global_pool is not None:
            if global_pool not in ('avg', ''):
                raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        ref = self.stem.proj.weight
        self.head = nn.Linear(self.num_features, num_classes, device=ref.device, dtype=ref.dtype) \
            if num_classes > 0 else nn.Identity()
        if num_classes > 0 and ref.device.type != 'meta':
            self._init_weights(self.head)
        self.head.requires_grad_(ref.requires_grad)
        self.head.train(self.training)

    @torch.jit.ignore
    def set_input_size(self, img_size: Union[int, Tuple[int, int]]) -> None:
        """Rebuild for another input size in place, resampling the generator weights (see resample_generator)."""
        img_size = to_2tuple(img_size)
        grids = self.grid_sizes(img_size, self.patch_sizes)
        for stage, (H, W) in zip(self.stages, grids):
            for layer in stage.layers:
                block = layer.token_mixer
                for op, L in ((block.mix_h, H), (block.mix_w, W)):
                    if op is not None and op.seq_len != L:
                        resize_op_(op, L)
                block.grid_size = (H, W)
        self.img_size = img_size

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Forward features and return the outputs of selected stages.

        Args:
            x: Input images (B, in_chans, *img_size).
            indices: Take the last n stages if int, all if None, the listed stages if a sequence.
            norm: Apply the final norm to the last stage's output.
            stop_early: Stop after the last stage needed.
            output_fmt: 'NCHW' or 'NHWC' for the intermediates.
            intermediates_only: Return only the intermediates.
        """
        assert output_fmt in ('NCHW', 'NHWC'), 'output_fmt must be NCHW or NHWC'
        check_input(x, self.in_chans, self.img_size)
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last_idx = len(self.stages) - 1
        x = self.stem(x)
        if torch.jit.is_scripting() or not stop_early:
            stages = self.stages
        else:
            stages = self.stages[:max_index + 1]
        feat_idx = 0
        for feat_idx, stage in enumerate(stages):
            x = stage(x)
            if feat_idx in take_indices:
                x_inter = self.norm(x) if norm and feat_idx == last_idx else x
                if output_fmt == 'NCHW':
                    x_inter = x_inter.permute(0, 3, 1, 2).contiguous()
                intermediates.append(x_inter)
        if intermediates_only:
            return intermediates
        if feat_idx == last_idx:
            x = self.norm(x)
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Drop the stages after the last needed intermediate (and the norm / head); returns the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        self.stages = self.stages[:max_index + 1]
        if prune_norm or prune_end:
            self.norm = nn.Identity()
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
        if prune_head or prune_end:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) images -> (B, H', W', C) normalised tokens of the last stage."""
        check_input(x, self.in_chans, self.img_size)
        x = self.stem(x)  # (B, H/p0, W/p0, C0)
        x = self.stages(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'avg':
            x = x.mean(dim=(1, 2))  # (B, H, W, C) -> (B, C)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        return self.forward_head(x)


# ---------------------------------------------------------------------------------------------------------
# Resampling the token-count-dependent weights (a model built for another img_size).
#
# Only the generators depend on the number of tokens L of a mixed sequence. A dynamic generator weight
# (L*L, L*d) is viewed as W[i, j, t, k] (source i, target j, input token t, reduced channel k) and resampled
# on its three token axes to L' (trilinear when growing, area averaging when shrinking), then scaled by L/L'
# because a logit sums over the L' input tokens: for content that varies smoothly across tokens this keeps
# the logits' magnitude. Its bias (L, L) over (i, j) is resampled the same way without scaling. A dense
# generator (L, d) + (L,) is resampled along its source axis; a static matrix (G, L, L) on both axes.
# Same size: the weights are returned unchanged, so loading at the training size is exact.
# ---------------------------------------------------------------------------------------------------------

def _resample(t: torch.Tensor, size: Tuple[int, ...]) -> torch.Tensor:
    """Resample the trailing len(size) axes of `t` (any leading axes are channels)."""
    n = len(size)
    lead = t.shape[:-n]
    x = t.reshape(1, -1, *t.shape[-n:]).float()
    grow = all(s >= o for s, o in zip(size, t.shape[-n:]))
    mode = ('linear', 'bilinear', 'trilinear')[n - 1] if grow else 'area'
    x = F.interpolate(x, size=size, mode=mode, align_corners=False) if grow else F.interpolate(x, size=size, mode=mode)
    return x.reshape(*lead, *size).to(t.dtype)


def resample_generator(
        generator: str,
        weight: Optional[torch.Tensor],
        bias: Optional[torch.Tensor],
        static_logits: Optional[torch.Tensor],
        new_len: int,
        reduced_dim: int,
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Resample the generator weights of one DynaMixer op to sequences of `new_len` tokens.

    Args:
        generator: The op's generator kind: 'dynamic', 'dense' or 'static'.
        weight: generate.weight, (L*L, L*d) for a dynamic generator or (L, d) for a dense one, or None.
        bias: generate.bias, (L*L,) or (L,), or None.
        static_logits: (G, L, L) of a static generator, or None.
        new_len: L'.
        reduced_dim: d.
    Returns:
        The resampled (weight, bias, static_logits).
    """
    d, L2 = reduced_dim, new_len
    if generator == 'static':
        static_logits = _resample(static_logits, (L2, L2))
    elif generator == 'dense':  # (L_i, d)
        weight = _resample(weight.t(), (L2,)).t().contiguous()
        bias = _resample(bias, (L2,))
    else:  # dynamic: (L_i * L_j, L_t * d)
        L = weight.shape[1] // d
        w = weight.reshape(L, L, L, d).permute(3, 0, 1, 2)  # (d, L_i, L_j, L_t)
        w = _resample(w, (L2, L2, L2)) * (L / L2)
        weight = w.permute(1, 2, 3, 0).reshape(L2 * L2, L2 * d).contiguous()
        bias = _resample(bias.reshape(L, L), (L2, L2)).reshape(L2 * L2)
    return weight, bias, static_logits


@torch.no_grad()
def resize_op_(op: DynaMixerOp, new_len: int) -> None:
    """Resample a DynaMixerOp's generator in place to `new_len` tokens, keeping requires_grad."""
    gen = op.generate
    weight, bias, static = resample_generator(
        op.generator, gen.weight if gen is not None else None, gen.bias if gen is not None else None,
        op.static_logits, new_len, op.reduced_dim)
    if gen is not None:
        new = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
        if weight.device.type != 'meta':
            new.weight.copy_(weight)
            new.bias.copy_(bias)
        new.requires_grad_(gen.weight.requires_grad)
        op.generate = new
    if static is not None:
        op.static_logits = nn.Parameter(static, requires_grad=op.static_logits.requires_grad)
    op.seq_len = new_len


# ---------------------------------------------------------------------------------------------------------
# Checkpoints of the authors' implementation.
# ---------------------------------------------------------------------------------------------------------

# The reference `network` list per variant: groups of layers with the patch merge at its own index.
_REFERENCE_NETWORK = {
    # variant: layers per group, index of the downsample entry in `network`
    'dynamixer_s': ((4, 3, 8, 3), 1),
    'dynamixer_m': ((4, 3, 14, 3), 2),
    'dynamixer_l': ((8, 8, 16, 4), 1),
}


def _reference_key_map(depths: Tuple[int, ...], patch_sizes: Tuple[int, ...]) -> Dict[str, str]:
    """Prefix map 'network.<i>.' -> 'stages.<s>.' for the reference flat list (layers and patch merges)."""
    mapping, idx = {}, 0
    for s, depth in enumerate(depths):
        if s > 0 and patch_sizes[s] > 1:
            mapping[f'network.{idx}.proj.'] = f'stages.{s}.downsample.proj.'
            idx += 1
        mapping[f'network.{idx}.'] = f'stages.{s}.layers.'
        idx += 1
    return mapping


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: DynaMixer) -> Dict[str, torch.Tensor]:
    """Map a reference-layout (or our own) state dict onto `model`, resampling generators to its img_size.

    Accepts a raw state dict or a training checkpoint (`state_dict_ema` preferred over `state_dict`, then
    `model`), with or without a `module.` prefix. Raises ValueError naming the variant and the first
    mismatching keys when the checkpoint is of another architecture.
    """
    for key in ('state_dict_ema', 'model_ema', 'state_dict', 'model'):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
            break
    state_dict = {k[7:] if k.startswith('module.') else k: v for k, v in state_dict.items()}

    if 'patch_embed.proj.weight' in state_dict:  # the reference layout
        depths = tuple(len(s.layers) for s in model.stages)
        mapping = _reference_key_map(depths, model.patch_sizes)
        out = {}
        for k, v in state_dict.items():
            k = k.replace('patch_embed.proj.', 'stem.proj.')
            if k.startswith('network.'):
                i = k.split('.')[1]
                down = f'network.{i}.proj.'
                if k.startswith(down) and down in mapping:
                    k = mapping[down] + k[len(down):]
                elif f'network.{i}.' in mapping:
                    k = mapping[f'network.{i}.'] + k[len(f'network.{i}.'):]
                k = k.replace('.attn.', '.token_mixer.')
            out[k] = v
        state_dict = out

    # resample token-count-dependent weights to this model's grid
    own = model.state_dict()
    for name, module in model.named_modules():
        if not isinstance(module, DynaMixerOp):
            continue
        w_key, b_key, s_key = f'{name}.generate.weight', f'{name}.generate.bias', f'{name}.static_logits'
        src = state_dict.get(w_key, state_dict.get(s_key))
        dst = own.get(w_key, own.get(s_key))
        if src is None or dst is None or src.shape == dst.shape:
            continue
        w, b, s = resample_generator(
            module.generator, state_dict.get(w_key), state_dict.get(b_key), state_dict.get(s_key), module.seq_len, module.reduced_dim)
        for k, v in ((w_key, w), (b_key, b), (s_key, s)):
            if v is not None:
                state_dict[k] = v

    # a checkpoint of another architecture: say so instead of a wall of size mismatches
    skip = ('head.', 'stem.proj.weight')  # timm adapts the classifier and the input channels itself
    missing = [k for k in own if k not in state_dict and not k.startswith(skip)]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [f'{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
             if k in state_dict and not k.startswith(skip) and state_dict[k].shape != v.shape]
    if missing or unexpected or wrong:
        name = getattr(model, 'pretrained_cfg', {}).get('architecture', type(model).__name__)
        problems = [f'missing {missing[:3]}' if missing else '', f'unexpected {unexpected[:3]}' if unexpected else '',
                    f'shape mismatch {wrong[:3]}' if wrong else '']
        raise ValueError(
            f'checkpoint does not match {name} (is it another DynaMixer variant?): '
            + '; '.join(p for p in problems if p))
    return state_dict


# ---------------------------------------------------------------------------------------------------------
# Factory, default configs, registered entrypoints.
# ---------------------------------------------------------------------------------------------------------

def _create_dynamixer(variant: str, pretrained: bool = False, **kwargs) -> DynaMixer:
    out_indices = kwargs.pop('out_indices', tuple(range(len(kwargs['depths']))))  # every stage (entrypoints set depths)
    return build_model_with_cfg(
        DynaMixer, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
        **kwargs,
    )


def _cfg(url: str = '', **kwargs) -> Dict:
    return {
        'url': url, 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (16, 16),
        'crop_pct': 0.9, 'interpolation': 'bicubic', 'fixed_input_size': True,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'stem.proj', 'classifier': 'head', 'license': 'mit',
        'paper_ids': 'arXiv:2201.12083', 'paper_name': 'DynaMixer: A Vision MLP Architecture with Dynamic Mixing',
        **kwargs,
    }


def _fmnist_cfg(model_name: str, **kwargs) -> Dict:
    """A Fashion-MNIST tag: 10 classes, 1 x 28 x 28, the train-set mean/std, weights shipped as
    weights/<model_name>_fmnist.safetensors in the package (no download)."""
    return _cfg(file=os.path.join(os.path.dirname(__file__), 'weights', f'{model_name}_fmnist.safetensors'),
                num_classes=10, input_size=(1, 28, 28), pool_size=(7, 7), crop_pct=1.0, mean=(0.2860,), std=(0.3530,),
                **kwargs)


default_cfgs = generate_default_cfgs({
    'dynamixer_s': _cfg(),
    'dynamixer_m': _cfg(),
    'dynamixer_l': _cfg(crop_pct=0.875),
    # trained here on Fashion-MNIST (configs/dynamixer_xs*_fashion_mnist.yaml, docs/results.md); shipped in the package
    'dynamixer_xs.fmnist': _fmnist_cfg('dynamixer_xs'),
    'dynamixer_xs_convstem.fmnist': _fmnist_cfg('dynamixer_xs_convstem', first_conv='stem.conv1.conv'),
    'dynamixer_xs_convstem_sum.fmnist': _fmnist_cfg('dynamixer_xs_convstem_sum', first_conv='stem.conv1.conv'),
    'dynamixer_xs_convstem_sum_dw.fmnist': _fmnist_cfg('dynamixer_xs_convstem_sum_dw', first_conv='stem.conv1.conv'),
    # '.*' keeps the untrained 3 x 32 x 32 cfg the default (timm otherwise defaults to the tag with weights);
    # it must come after the tag with weights to win
    'dynamixer_xs.*': _cfg(input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0),
    'dynamixer_xs_convstem.*': _cfg(input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0, first_conv='stem.conv1.conv'),
    'dynamixer_xs_convstem_sum.*': _cfg(input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0,
                                        first_conv='stem.conv1.conv'),
    'dynamixer_xs_convstem_sum_dw.*': _cfg(input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0,
                                           first_conv='stem.conv1.conv'),
    'dynamixer_xs_s2stem_sum.*': _cfg(input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0,
                                      first_conv='stem.convs.0.conv'),
})


@register_model
def dynamixer_s(pretrained: bool = False, **kwargs) -> DynaMixer:
    """DynaMixer-S: 26.3M params, 7.3 GMACs at 224 px; paper top-1 82.7."""
    args = dict(depths=(4, 3, 8, 3), patch_sizes=(7, 2, 1, 1), embed_dims=(192, 384, 384, 384),
                num_heads=(8, 16, 16, 16), reduced_dim=2)
    return _create_dynamixer('dynamixer_s', pretrained, **dict(args, **kwargs))


@register_model
def dynamixer_m(pretrained: bool = False, **kwargs) -> DynaMixer:
    """DynaMixer-M: 57.1M params, 17.0 GMACs at 224 px; paper top-1 83.7."""
    args = dict(depths=(4, 3, 14, 3), patch_sizes=(7, 1, 2, 1), embed_dims=(256, 256, 512, 512),
                num_heads=(8, 8, 16, 16), reduced_dim=2)
    return _create_dynamixer('dynamixer_m', pretrained, **dict(args, **kwargs))


@register_model
def dynamixer_l(pretrained: bool = False, **kwargs) -> DynaMixer:
    """DynaMixer-L: 97.8M params, 27.3 GMACs at 224 px; paper top-1 84.3."""
    args = dict(depths=(8, 8, 16, 4), patch_sizes=(7, 2, 1, 1), embed_dims=(256, 512, 512, 512),
                num_heads=(8, 16, 16, 16), reduced_dim=8)
    return _create_dynamixer('dynamixer_l', pretrained, **dict(args, **kwargs))


# the XS network; its variants below differ only in the options they add
_XS_ARGS = dict(depths=(2, 2, 2, 2), patch_sizes=(2, 2, 1, 1), embed_dims=(32, 96, 96, 96), num_heads=(2, 4, 4, 4),
                reduced_dim=2)


@register_model
def dynamixer_xs(pretrained: bool = False, **kwargs) -> DynaMixer:
    """DynaMixer-XS for 28-64 px images (Fashion-MNIST, CIFAR): 0.70M params, 35 MMACs at 28 px.

    2x2 patches: 2 layers of width 32 at 14x14 tokens (16x16 at 32 px), a 2x2 patch merge, 6 layers of
    width 96 at 7x7 (8x8). Sized to train many epochs on a 2-core CPU (docs/results.md).
    """
    args = dict(_XS_ARGS)
    return _create_dynamixer('dynamixer_xs', pretrained, **dict(args, **kwargs))


@register_model
def dynamixer_xs_convstem(pretrained: bool = False, **kwargs) -> DynaMixer:
    """DynaMixer-XS with a convolutional stem (`stem='conv'`): 0.70M params, 37 MMACs at 28 px.

    dynamixer_xs with two 3x3 conv-BN-GELU (16 channels, full resolution) before the 2x2 patch conv: every
    token starts with local features. On Fashion-MNIST it beat dynamixer_xs in equal-budget runs (+2.75 top-1 at
    60k images, +1.2 at 120k; docs/results.md).
    """
    args = dict(_XS_ARGS, stem='conv')
    return _create_dynamixer('dynamixer_xs_convstem', pretrained, **dict(args, **kwargs))


@register_model
def dynamixer_xs_convstem_sum(pretrained: bool = False, **kwargs) -> DynaMixer:
    """dynamixer_xs_convstem with the branches summed (`reweight=False`): 0.64M params, 37 MMACs at 28 px.

    No reweighting MLP, so 18% less time per bf16 training step on a 2-core CPU, where the Fashion-MNIST budget is
    time: in the hour it trains 20-23 epochs instead of 17, and reaches 92.69-92.83 top-1 against the reweighted
    model's 91.95; with stochastic depth 0.1 and a weight EMA, 93.26 +- 0.03 (2 seeds) in 31 epochs
    (docs/results.md 1p, 1q). With reweighting off the row, column and channel branches are simply added.
    """
    args = dict(_XS_ARGS, stem='conv', reweight=False)
    return _create_dynamixer('dynamixer_xs_convstem_sum', pretrained, **dict(args, **kwargs))


@register_model
def dynamixer_xs_convstem_sum_dw(pretrained: bool = False, **kwargs) -> DynaMixer:
    """dynamixer_xs_convstem_sum with a 3x3 depthwise conv in every channel MLP (`mlp_dwconv=True`): 0.66M params,
    38 MMACs at 28 px.

    `DwConvMlp` puts the conv between fc1 and the GELU (PVTv2's Mix-FFN): the token mixing sees whole rows and
    columns, and the channel MLP now favours a token's 3x3 neighbours. On Fashion-MNIST, 28 epochs of the shipped
    recipe gave 93.42 (seed 42) against the summed model's 93.26 +- 0.03 in 31 epochs, at about 9% more time an
    epoch (docs/results.md 1r; a second seed tracked it over the 14 epochs it ran, 1s).
    """
    args = dict(_XS_ARGS, stem='conv', reweight=False, mlp_dwconv=True)
    return _create_dynamixer('dynamixer_xs_convstem_sum_dw', pretrained, **dict(args, **kwargs))


@register_model
def dynamixer_xs_s2stem_sum(pretrained: bool = False, **kwargs) -> DynaMixer:
    """DynaMixer-XS at one resolution: a stride-2 conv stem (`stem='conv_s2'`) and 7 layers of width 96 on the 7x7
    grid (8x8 at 32 px), branches summed: 0.69M params, 34 MMACs at 28 px.

    dynamixer_xs_convstem_sum without its two layers at 14x14 and its full-resolution convs: two stride-2 3x3
    conv-BN-GELU (24, 48 channels) take a 28 px image to 7x7 tokens, and a seventh 7x7 layer keeps the size. The
    layers are grouped 1-2-2-2 in four stages of one grid, so that features_only gives four levels like the other
    variants. 1.27x its training speed on a 2-core CPU, and 0.96 behind it on Fashion-MNIST in the hour
    (docs/results.md section 1g).
    """
    args = dict(depths=(1, 2, 2, 2), patch_sizes=(4, 1, 1, 1), embed_dims=(96, 96, 96, 96), num_heads=(4, 4, 4, 4),
                reduced_dim=2, stem='conv_s2', reweight=False)
    return _create_dynamixer('dynamixer_xs_s2stem_sum', pretrained, **dict(args, **kwargs))
