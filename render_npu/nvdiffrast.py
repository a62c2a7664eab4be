"""nvdiffrast-style front: ``rasterize`` / ``interpolate`` with nvdiffrast's argument order and output
layout, as thin adapters over :func:`render_npu.rasterize` / :func:`render_npu.interpolate` (no second
rasterizer). Code written against ``nvdiffrast.torch`` can do::

    import render_npu.nvdiffrast as dr
    glctx = dr.RasterizeCudaContext()          # or None
    rast, rast_db = dr.rasterize(glctx, pos_clip, tri, resolution=(H, W))
    texc, _ = dr.interpolate(uv, rast, uv_idx)

Layout (from nvdiffrast's documentation):

* ``rast``: float32 ``[B, H, W, 4]`` = ``(u, v, z/w, triangle_id + 1)``, where ``u``, ``v`` are the
  barycentrics of the triangle's first and second vertex (the third is ``1 - u - v``); all zeros where
  no triangle covers the pixel. Screen mapping is nvdiffrast's/OpenGL's (``viewport="opengl"``: NDC -1
  and +1 on the image borders), row 0 is the bottom row (NDC y = -1), as in nvdiffrast.
* ``rast_db``: image-space derivatives of ``(u, v)`` as ``(du/dX, du/dY, dv/dX, dv/dY)``. This front
  does not compute them: it returns **zeros** of shape ``[B, H, W, 4]`` (or an empty ``[B, H, W, 0]``
  tensor for a ``RasterizeGLContext(output_db=False)``, as nvdiffrast does), so mip-level selection
  downstream sees "no minification" (the finest level).
* ``interpolate`` returns ``(out [B, H, W, A], out_db)``; ``out_db`` is ``[B, H, W, 2 * len(diff_attrs)]``
  holding ``(dA/dX, dA/dY)`` per selected attribute, computed from ``rast_db`` by the chain rule (so
  zeros with this front's ``rast_db``), when both ``rast_db`` and ``diff_attrs`` are given; otherwise an
  empty ``[B, H, W, 0]`` tensor.

Differences from nvdiffrast: range mode (``ranges``) is not supported (``NotImplementedError``); a 2-D
``pos`` without ``ranges`` is rendered as one image (B = 1); any float dtype and int32/int64 ``tri`` are
accepted and tensors may live on any device a backend supports; no gradients with respect to ``pos``
(point-sampled coverage has none, and there is no antialiasing op); ``interpolate`` is differentiable
with respect to ``attr``. Triangles are clipped against the view frustum, ties between equal depths go
to the lowest triangle id (see docs/rasterization.md).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from . import _api

__all__ = ["RasterizeGLContext", "RasterizeCudaContext", "rasterize", "interpolate"]


class RasterizeCudaContext:
    """Stand-in for ``nvdiffrast.torch.RasterizeCudaContext(device=None)``: holds no state but the
    ``backend`` (``"auto"`` or a name from :func:`render_npu.backends`) used by :func:`rasterize`."""

    output_db = True

    def __init__(self, device=None, *, backend: str = "auto"):
        self.device = None if device is None else torch.device(device)
        self.backend = backend


class RasterizeGLContext(RasterizeCudaContext):
    """Stand-in for ``nvdiffrast.torch.RasterizeGLContext(output_db=True, mode='automatic', device=None)``;
    no OpenGL is involved. ``set_context``/``release_context`` exist for ``mode='manual'`` code and do nothing."""

    def __init__(self, output_db: bool = True, mode: str = "automatic", device=None, *, backend: str = "auto"):
        if mode not in ("automatic", "manual"):
            raise ValueError(f"mode must be 'automatic' or 'manual', got {mode!r}")
        super().__init__(device, backend=backend)
        self.output_db = bool(output_db)
        self.mode = mode

    def set_context(self):
        pass

    def release_context(self):
        pass


def rasterize(glctx: Optional[RasterizeCudaContext], pos: torch.Tensor, tri: torch.Tensor,
              resolution: Union[int, Sequence[int]], ranges: Optional[torch.Tensor] = None,
              grad_db: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rasterize triangles, nvdiffrast layout.

    Args:
        glctx: a context from this module, or ``None`` (backend ``"auto"``).
        pos: clip-space vertex positions, float ``[B, V, 4]`` (instanced mode) or ``[V, 4]`` (one image).
        tri: int32/int64 ``[F, 3]`` vertex indices.
        resolution: ``(height, width)`` (or an int for a square image), each 1..16384.
        ranges: range mode is not supported; must be ``None``.
        grad_db: accepted for compatibility (``rast_db`` is zero and carries no gradient).
        ``pos`` may require grad: ``(u, v, z/w)`` are then differentiable with respect to it
        (docs/rasterization.md section 3); ids carry no gradient.

    Returns:
        ``(rast, rast_db)``: float32 ``[B, H, W, 4]`` = ``(u, v, z/w, triangle_id + 1)`` and the zero
        derivative tensor ``[B, H, W, 4]`` (``[B, H, W, 0]`` if ``glctx.output_db`` is False).
    """
    if ranges is not None:
        raise NotImplementedError("render_npu.nvdiffrast.rasterize: range mode (ranges=...) is not supported; "
                                  "pass pos as [B, V, 4] (instanced mode) or render each range separately")
    if glctx is not None and not isinstance(glctx, RasterizeCudaContext):
        raise TypeError(f"glctx must be a RasterizeGLContext/RasterizeCudaContext from render_npu.nvdiffrast or None, "
                        f"got {type(glctx).__name__}")
    backend = "auto" if glctx is None else glctx.backend
    out = _api.rasterize(resolution, tri, pos, viewport="opengl", backend=backend)
    bary, depth = out.rast, out.depth
    rast = torch.stack([bary[..., 0], bary[..., 1], depth, bary[..., 3]], dim=-1)
    B, H, W = depth.shape
    n_db = 4 if (glctx is None or glctx.output_db) else 0
    rast_db = torch.zeros((B, H, W, n_db), dtype=torch.float32, device=rast.device)
    return rast, rast_db


def _to_render_npu(rast: torch.Tensor) -> torch.Tensor:
    """nvdiffrast ``(u, v, z/w, id + 1)`` -> render_npu ``(b0, b1, b2, id + 1)`` (b2 = 1 - u - v, 0 if empty)."""
    if not isinstance(rast, torch.Tensor) or rast.dim() != 4 or rast.shape[-1] != 4:
        raise ValueError(f"rast must be the [B, H, W, 4] output of rasterize(), got "
                         f"{list(rast.shape) if isinstance(rast, torch.Tensor) else type(rast).__name__}")
    u, v, tid = rast[..., 0], rast[..., 1], rast[..., 3]
    w = torch.where(tid > 0, 1 - u - v, torch.zeros_like(u))
    return torch.stack([u, v, w, tid], dim=-1)


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor, rast_db: Optional[torch.Tensor] = None,
                diff_attrs=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Interpolate vertex attributes, nvdiffrast layout.

    Args:
        attr: float ``[V, A]`` or ``[B, V, A]`` (broadcast over the minibatch when its batch is 1).
        rast: ``[B, H, W, 4]`` from :func:`rasterize`.
        tri: int ``[F, 3]``, the triangles that were rasterized.
        rast_db: optional ``[B, H, W, 4]`` barycentric derivatives ``(du/dX, du/dY, dv/dX, dv/dY)``.
        diff_attrs: ``None``, ``'all'`` or a list of attribute indices to differentiate.

    Returns:
        ``(out, out_db)``: ``out`` ``[B, H, W, A]`` (zeros where no triangle), differentiable w.r.t.
        ``attr``; ``out_db`` ``[B, H, W, 2 * len(diff_attrs)]`` = ``(dA/dX, dA/dY)`` per selected
        attribute when ``rast_db`` and ``diff_attrs`` are given, else an empty ``[B, H, W, 0]`` tensor.
    """
    r = _to_render_npu(rast)
    out = _api.interpolate(attr, r, tri)
    B, H, W = r.shape[:3]
    if rast_db is None or diff_attrs is None:
        return out, out.new_zeros((B, H, W, 0))
    A = attr.shape[-1]
    if isinstance(diff_attrs, str):
        if diff_attrs != "all":
            raise ValueError(f"diff_attrs must be None, 'all' or a list of attribute indices, got {diff_attrs!r}")
        idx = list(range(A))
    else:
        idx = [int(i) for i in diff_attrs]
        if any(i < 0 or i >= A for i in idx):
            raise ValueError(f"diff_attrs must index attributes in [0, {A}), got {idx}")
    if not isinstance(rast_db, torch.Tensor) or tuple(rast_db.shape) != (B, H, W, 4):
        raise ValueError(f"rast_db must have shape [{B}, {H}, {W}, 4], got "
                         f"{list(rast_db.shape) if isinstance(rast_db, torch.Tensor) else type(rast_db).__name__}")
    if not idx:
        return out, out.new_zeros((B, H, W, 0))
    # A = u A0 + v A1 + (1 - u - v) A2  =>  dA/dX = (A0 - A2) du/dX + (A1 - A2) dv/dX (likewise for Y)
    sel = attr[..., idx]
    e = torch.zeros_like(r[..., :3])
    e0, e1 = e.clone(), e.clone()
    hit = r[..., 3:] > 0
    e0[..., 0], e0[..., 2] = 1, -1
    e1[..., 1], e1[..., 2] = 1, -1
    d0 = _api.interpolate(sel, torch.cat([torch.where(hit, e0, e), r[..., 3:]], -1), tri)  # A0 - A2
    d1 = _api.interpolate(sel, torch.cat([torch.where(hit, e1, e), r[..., 3:]], -1), tri)  # A1 - A2
    db = rast_db.to(out.dtype)
    dx = d0 * db[..., 0:1] + d1 * db[..., 2:3]
    dy = d0 * db[..., 1:2] + d1 * db[..., 3:4]
    out_db = torch.stack([dx, dy], dim=-1).reshape(B, H, W, 2 * len(idx))
    return out, out_db
