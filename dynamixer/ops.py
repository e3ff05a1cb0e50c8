"""The DynaMixer token mixer: dispatch between the plain module path and fused fast paths.

`dynamixer_mix(block, x)` computes `block.combine(block.branches(x))` of a `DynaMixerBlock` (everything of
the token mixer except its output projection). The plain path is the modules in `dynamixer.model`, written to
be obviously correct; fast paths must give the same outputs and gradients (tests/test_ops.py).
"""
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .model import DynaMixerBlock

GENERATORS = ('dynamic', 'static', 'dense')


def dynamixer_mix(block: 'DynaMixerBlock', x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, H, W, C): the reweighted branches of `block` for input `x`."""
    return block.combine(block.branches(x))
