"""An independent re-statement of the authors' DynaMixer, in the reference checkpoint layout.

Written from ../shared/REFERENCE.md (not copied): a flat `network` list of layer groups and one patch merge,
`patch_embed`, `attn.mix_h/mix_w/mlp_c/reweight/proj`, mixing done the way the reference does it (permute
copies and a matmul with the softmax over the source axis). The tests write checkpoints from it with random
weights and check that `dynamixer` reproduces its logits, which checks the key mapping and the semantics.
"""
import torch
import torch.nn as nn

# groups of layers, index of the downsample in `network`, dims per group, heads per group, d
LAYOUTS = {
    'dynamixer_s': ((4, 3, 8, 3), 1, (192, 384, 384, 384), (8, 16, 16, 16), 2),
    'dynamixer_m': ((4, 3, 14, 3), 2, (256, 256, 512, 512), (8, 8, 16, 16), 2),
    'dynamixer_l': ((8, 8, 16, 4), 1, (256, 512, 512, 512), (8, 16, 16, 16), 8),
}


class RefOp(nn.Module):
    def __init__(self, dim, seq_len, heads, d):
        super().__init__()
        self.heads, self.d = heads, d
        self.compress = nn.Linear(dim, heads * d)
        self.generate = nn.Linear(seq_len * d, seq_len * seq_len)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):  # (N, L, C)
        N, L, C = x.shape
        w = self.compress(x).reshape(N, L, self.heads, self.d).permute(0, 2, 1, 3).reshape(N, self.heads, -1)
        w = self.generate(w).reshape(N, self.heads, L, L).softmax(dim=-2)
        x = x.reshape(N, L, self.heads, C // self.heads).permute(0, 2, 3, 1)  # (N, G, C/G, L)
        x = torch.matmul(x, w).permute(0, 3, 1, 2).reshape(N, L, C)
        return self.out(x)


class RefMlp(nn.Module):
    def __init__(self, dim, hidden, out):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class RefMixer(nn.Module):
    def __init__(self, dim, res, heads, d):
        super().__init__()
        self.mix_h = RefOp(dim, res, heads, d)
        self.mix_w = RefOp(dim, res, heads, d)
        self.mlp_c = nn.Linear(dim, dim, bias=False)
        self.reweight = RefMlp(dim, dim // 4, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, H, W, C = x.shape
        h = self.mix_h(x.permute(0, 2, 1, 3).reshape(-1, H, C)).reshape(B, W, H, C).permute(0, 2, 1, 3)
        w = self.mix_w(x.reshape(-1, W, C)).reshape(B, H, W, C)
        c = self.mlp_c(x)
        a = (h + w + c).permute(0, 3, 1, 2).flatten(2).mean(2)
        a = self.reweight(a).reshape(B, C, 3).permute(2, 0, 1).softmax(dim=0)[:, :, None, None, :]
        return self.proj(h * a[0] + w * a[1] + c * a[2])


class RefLayer(nn.Module):
    def __init__(self, dim, res, heads, d):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = RefMixer(dim, res, heads, d)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = RefMlp(dim, dim * 3, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RefDownsample(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 2, 2)

    def forward(self, x):
        return self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class RefDynaMixer(nn.Module):
    def __init__(self, variant, img_size=224, num_classes=1000):
        super().__init__()
        groups, down_idx, dims, heads, d = LAYOUTS[variant]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dims[0], 7, 7)
        res = img_size // 7
        network = []
        for g, n in enumerate(groups):
            if len(network) == down_idx:
                network.append(RefDownsample(dims[g - 1], dims[g]))
                res //= 2
            network.append(nn.Sequential(*[RefLayer(dims[g], res, heads[g], d) for _ in range(n)]))
        self.network = nn.ModuleList(network)
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x):
        x = self.patch_embed.proj(x).permute(0, 2, 3, 1)
        for m in self.network:
            x = m(x)
        return self.head(self.norm(x).flatten(1, 2).mean(1))


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (biases and norms too), so that no mapping error can hide behind a zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.1 * noise)
            elif p.dim() == 1:
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / p[0].numel() ** 0.5)
    return model
