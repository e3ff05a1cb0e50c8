"""Fused GPU kernels (Triton), each opt-in until measured on a GPU; their PyTorch references are in dynamixer.ops."""
from .mix import triton_mix, triton_mix_enabled

__all__ = ['triton_mix', 'triton_mix_enabled']
