"""dynamixer: the DynaMixer vision MLP (ICML 2022) for timm.

Importing the package registers `dynamixer_s`, `dynamixer_m`, `dynamixer_l` and `dynamixer_xs` with timm,
so `timm.create_model("dynamixer_s")` works.
"""
__version__ = '0.1.0'

from .model import DynaMixer, DynaMixerBlock, DynaMixerLayer, DynaMixerOp, checkpoint_filter_fn  # noqa: F401
