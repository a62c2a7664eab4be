"""Argument checking for the public API: the one place where inputs are checked before any
backend (and so any compiled code) sees them. Every error names the argument.

After :func:`rasterize_inputs`, a backend may rely on:
  * ``pos``: float32, contiguous, shape [B, V, 4], B >= 1 (B may be 0 only if the caller asked)
  * ``faces``: int32, contiguous, shape [F, 3], every value in [0, V), F <= 2**24
  * 1 <= H, W <= 16384; viewport in {"align_corners", "opengl"}; all tensors on one device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import torch

MAX_RESOLUTION = 16384
MAX_FACES = 2 ** 24  # ids are stored as float32 in rast[..., 3]: exact up to 2**24
VIEWPORTS = ("align_corners", "opengl")


@dataclass(frozen=True)
class RasterInputs:
    height: int
    width: int
    faces: torch.Tensor  # int32 [F, 3]
    pos: torch.Tensor  # float32 [B, V, 4]
    viewport: str
    cull_backfaces: bool
    squeeze_batch: bool  # the caller passed [V, 4]



def shape_of(x) -> str:
    """For error messages: a tensor's shape as a list, else the type's name."""
    return str(list(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__

def resolution(value: Union[int, Sequence[int]], name: str = "resolution") -> Tuple[int, int]:
    """``int`` or ``(H, W)`` -> (H, W), each in 1..16384."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{name} must be an int or a pair (H, W) of ints, got {type(value).__name__}")
    if isinstance(value, int) or (hasattr(value, "__index__") and not isinstance(value, (list, tuple))):
        h = w = int(value)
    else:
        try:
            items = list(value)
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair (H, W) of ints, got {type(value).__name__}") from None
        if len(items) != 2:
            raise ValueError(f"{name} must be an int or a pair (H, W), got {len(items)} values")
        for v in items:
            if isinstance(v, bool) or not hasattr(v, "__index__"):
                raise TypeError(f"{name} must hold ints, got {type(v).__name__}")
        h, w = int(items[0]), int(items[1])
    if not (1 <= h <= MAX_RESOLUTION and 1 <= w <= MAX_RESOLUTION):
        raise ValueError(f"{name} must be within 1..{MAX_RESOLUTION} on each side, got (H, W) = ({h}, {w})")
    return h, w


def not_meta(t: torch.Tensor, name: str) -> None:
    """Refuse tensors on the data-less 'meta' device, whatever their size: they hold no values to
    check or rasterize, and all their data pointers are 0 (so overlap checks would be meaningless)."""
    if t.device.type == "meta":
        raise ValueError(f"{name} is on the 'meta' device, which holds no values; pass real tensors")


def byte_span(t: torch.Tensor) -> Tuple[int, int]:
    """``[lo, hi)``: the address range a strided tensor can touch (empty tensors: an empty range)."""
    if t.numel() == 0:
        return 0, 0
    esize = t.element_size()
    lo = hi = t.data_ptr()
    for size, stride in zip(t.shape, t.stride()):
        if stride < 0:
            lo += stride * (size - 1) * esize
        else:
            hi += stride * (size - 1) * esize
    return lo, hi + esize


def overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors on one device may share memory (conservative for strided views)."""
    if a.device != b.device:
        return False
    (alo, ahi), (blo, bhi) = byte_span(a), byte_span(b)
    return alo < bhi and blo < ahi


def pos_clip(pos: torch.Tensor, name: str = "pos_clip") -> Tuple[torch.Tensor, bool]:
    """[V, 4] or [B, V, 4], any float dtype -> float32 contiguous [B, V, 4], and whether B was implicit."""
    if not isinstance(pos, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(pos).__name__}")
    if not pos.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {pos.dtype}")
    if pos.dim() not in (2, 3) or pos.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [V, 4] or [B, V, 4], got {list(pos.shape)}")
    squeeze = pos.dim() == 2
    if squeeze:
        pos = pos.unsqueeze(0)
    return pos.to(torch.float32).contiguous(), squeeze


def faces(tri: torch.Tensor, num_vertices: int, name: str = "faces") -> torch.Tensor:
    """[F, 3] int32/int64 with values in [0, V) -> int32 contiguous. One host sync (min/max)."""
    if not isinstance(tri, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tri).__name__}")
    if tri.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{name} must be int32 or int64, got {tri.dtype}")
    if tri.dim() != 2 or tri.shape[1] != 3:
        raise ValueError(f"{name} must have shape [F, 3], got {list(tri.shape)}")
    if tri.shape[0] > MAX_FACES:
        raise ValueError(f"{name}: {tri.shape[0]} faces is more than 2**24 = {MAX_FACES}; triangle ids "
                         "are stored in float32 and would no longer be exact")
    not_meta(tri, name)  # even with no faces: no values to range-check, and no results to return
    if tri.numel() > 0 and not torch.compiler.is_compiling():  # a value check: eager calls only
        if tri.device.type == "cpu":
            # numpy, single-threaded: a parallel torch op here leaves torch's OpenMP workers
            # spinning for milliseconds, stealing the cores from the compiled backend's threads.
            t = tri.detach().numpy()
            lo, hi = int(t.min()), int(t.max())
        else:
            lo, hi = torch.aminmax(tri)
            lo, hi = int(lo), int(hi)
        if lo < 0 or hi >= num_vertices:
            raise ValueError(f"{name} must index vertices in [0, {num_vertices}), found values in [{lo}, {hi}]")
    return tri.to(torch.int32).contiguous()


def viewport(value: str) -> str:
    if value not in VIEWPORTS:
        raise ValueError(f"viewport must be one of {VIEWPORTS}, got {value!r}")
    return value


def rasterize_inputs(resolution_, faces_, pos_clip_, viewport_, cull_backfaces) -> RasterInputs:
    h, w = resolution(resolution_)
    pos, squeeze = pos_clip(pos_clip_)
    if not isinstance(faces_, torch.Tensor):
        raise TypeError(f"faces must be a torch.Tensor, got {type(faces_).__name__}")
    if faces_.device != pos.device:
        raise ValueError(f"faces and pos_clip must be on one device, got faces on {faces_.device} "
                         f"and pos_clip on {pos.device}")
    tri = faces(faces_, pos.shape[1])
    not_meta(pos, "pos_clip")
    if not isinstance(cull_backfaces, bool):
        raise TypeError(f"cull_backfaces must be a bool, got {type(cull_backfaces).__name__}")
    return RasterInputs(h, w, tri, pos, viewport(viewport_), cull_backfaces, squeeze)


def out_buffers(out, batch: int, height: int, width: int, device: torch.device, inputs=()):
    """``out=(rast, depth)`` for rasterize: contiguous float32 [B, H, W, 4] and [B, H, W] on ``device``,
    sharing no memory with each other nor with ``inputs`` (``(name, tensor)`` pairs: the caller's
    own tensors, which a backend reads while it writes ``out``)."""
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        raise TypeError("out must be a pair (rast, depth) of torch.Tensors")
    for t, shape, name in ((out[0], (batch, height, width, 4), "out[0] (rast)"),
                           (out[1], (batch, height, width), "out[1] (depth)")):
        not_meta(t, name)
        if t.dtype != torch.float32:
            raise TypeError(f"{name} must be float32, got {t.dtype}")
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(t.shape)}")
        if t.device != device:
            raise ValueError(f"{name} must be on {device}, the input device, got {t.device}")
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous")
        if t.requires_grad:
            raise ValueError(f"{name} must not require grad")
    if overlaps(out[0], out[1]):
        raise ValueError("out[0] (rast) and out[1] (depth) share memory; pass two separate buffers")
    for name, t in inputs:
        for o, oname in ((out[0], "out[0] (rast)"), (out[1], "out[1] (depth)")):
            if isinstance(t, torch.Tensor) and overlaps(o, t):
                raise ValueError(f"{oname} shares memory with the input {name}; the output must not alias an input")
    return tuple(out)
