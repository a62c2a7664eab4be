"""Depth peeling on the torch backend's fragment stream (any device it runs on).

Layer k of a pixel is its k-th fragment in the rasterizer's visibility order (the key buffer of
:mod:`render_npu.backends.torch.driver`: depth, then piece rank), so layer 0 equals the torch
backend's :func:`render_npu.rasterize`, and every fragment of every pixel appears in exactly one
layer. Each layer reruns the backend's raster pass with the previous layer's keys as a floor.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .. import _validate
from ..backends.torch import driver
from ..backends.torch.setup import _I64_MAX


class Peeler:
    """State of one peel: validated inputs (OpenGL viewport) and the previous layer's keys."""

    def __init__(self, pos: torch.Tensor, tri: torch.Tensor, resolution):
        self.inp = _validate.rasterize_inputs(resolution, tri, pos, "opengl", False)
        self.floor: Optional[torch.Tensor] = None

    def next_layer(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(rast float32 [B, H, W, 4] = (b0, b1, b2, id + 1), depth float32 [B, H, W]) of the next layer."""
        inp = self.inp
        B, H, W = inp.pos.shape[0], inp.height, inp.width
        dev = inp.pos.device
        rast = torch.zeros((B, H, W, 4), dtype=torch.float32, device=dev)
        depth = torch.zeros((B, H, W), dtype=torch.float32, device=dev)
        with driver._cpu_threads(dev):
            run, edge_arith = driver._prepare(inp, None, "auto")
            if run.pc is None:
                return rast, depth
            fb = torch.full((B * run.Hp * run.Wp,), _I64_MAX, dtype=torch.int64, device=dev)
            floor = self.floor
            if floor is None:
                driver._raster_pass(run, edge_arith, lambda idx, key: fb.scatter_reduce_(0, idx, key, "amin"))
            else:  # only fragments behind the previous layer's (depth, rank) key compete
                big = torch.tensor(_I64_MAX, dtype=torch.int64, device=dev)
                driver._raster_pass(run, edge_arith, lambda idx, key: fb.scatter_reduce_(
                    0, idx, torch.where(key > floor.index_select(0, idx), key, big), "amin"))
            self.floor = fb
            return driver.resolve_output(run, fb, rast, depth, inp)
