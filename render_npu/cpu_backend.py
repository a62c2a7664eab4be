"""Adapter for the compiled C++ backend (csrc/rasterize): torch tensors <-> numpy views, no copies."""
from __future__ import annotations

from typing import Optional

import torch

from . import _ext


def rasterize(inp, num_threads: Optional[int] = None, **_options):
    """RasterInputs (CPU tensors) -> (rast [B,H,W,4], depth [B,H,W]); ``num_threads`` defaults to
    ``torch.get_num_threads()``. The GIL is released while the C++ code runs."""
    ext = _ext.get()
    if num_threads is None:
        num_threads = torch.get_num_threads()
    if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
    B = inp.pos.shape[0]
    rast = torch.empty((B, inp.height, inp.width, 4), dtype=torch.float32)
    depth = torch.empty((B, inp.height, inp.width), dtype=torch.float32)
    ext.rasterize(inp.pos.numpy(), inp.faces.numpy(), inp.height, inp.width, inp.viewport == "opengl",
                  inp.cull_backfaces, num_threads, rast.numpy(), depth.numpy())
    return rast, depth
