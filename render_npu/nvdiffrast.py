"""nvdiffrast-style front: nvdiffrast's ``torch`` API (contexts, ``rasterize``, ``interpolate``, ``texture``,
``texture_construct_mip``, ``antialias``, ``antialias_construct_topology_hash``, ``DepthPeeler``) with its
argument order, defaults and output layout, as thin adapters over :func:`render_npu.rasterize` /
:func:`render_npu.interpolate` (no second rasterizer) and the torch ops in :mod:`render_npu.ops`.
Code written against ``nvdiffrast.torch`` can do::

    import render_npu.nvdiffrast as dr
    glctx = dr.RasterizeCudaContext()          # or None
    rast, rast_db = dr.rasterize(glctx, pos_clip, tri, resolution=(H, W))
    texc, texd = dr.interpolate(uv, rast, uv_idx, rast_db=rast_db, diff_attrs="all")
    color = dr.antialias(dr.texture(tex, texc, texd), rast, pos_clip, tri)

Layout (from nvdiffrast's documentation):

* ``rast``: float32 ``[B, H, W, 4]`` = ``(u, v, z/w, triangle_id + 1)``, where ``u``, ``v`` are the
  barycentrics of the triangle's first and second vertex (the third is ``1 - u - v``); all zeros where
  no triangle covers the pixel. Screen mapping is nvdiffrast's/OpenGL's (``viewport="opengl"``: NDC -1
  and +1 on the image borders), row 0 is the bottom row (NDC y = -1), as in nvdiffrast.
* ``rast_db``: ``(du/dX, du/dY, dv/dX, dv/dY)`` at each pixel centre, X/Y in pixels, computed exactly
  from the covering triangle's clip coordinates (:mod:`render_npu.ops.derivatives`) and differentiable
  with respect to ``pos``; zeros on empty pixels; an empty ``[B, H, W, 0]`` tensor for a
  ``RasterizeGLContext(output_db=False)``, as nvdiffrast does.
* ``interpolate`` returns ``(out [B, H, W, A], out_db)``; ``out_db`` is ``[B, H, W, 2 * len(diff_attrs)]``
  holding ``(dA/dX, dA/dY)`` per selected attribute when both ``rast_db`` and ``diff_attrs`` are given;
  otherwise an empty ``[B, H, W, 0]`` tensor.

Differences from nvdiffrast: a 2-D ``pos`` without ``ranges`` is rendered as one image (B = 1); any float
dtype and int32/int64 ``tri`` are accepted and tensors may live on any device a backend supports;
``rast``'s ``(u, v, z/w)`` and ``rast_db`` are differentiable with respect to ``pos`` (``DepthPeeler``'s
layers too);
texture/antialias differences are listed in their modules. Triangles are clipped against the view
frustum, ties between equal depths go to the lowest triangle id (see docs/rasterization.md).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch

from . import _api, _validate, resolve
# the torch-op forwards below run on one intra-op thread on CPU, as the torch backend does (its
# docstring: per-op OpenMP barriers stall for a scheduler slice whenever other processes load the
# cores; single-threaded they cost ~10 % more on a quiet machine)
from .backends.torch.driver import _cpu_threads
from .ops import derivatives
from .ops import antialias as _antialias
from .ops import peel as _peel
from .ops import texture as _texture

__all__ = ["RasterizeGLContext", "RasterizeCudaContext", "rasterize", "interpolate", "texture",
           "texture_construct_mip", "antialias", "antialias_construct_topology_hash", "DepthPeeler"]


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


def _ranges(ranges: torch.Tensor, F: int) -> list:
    """Validated range-mode ``ranges`` -> list of (start, count) pairs."""
    if not isinstance(ranges, torch.Tensor) or ranges.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"ranges must be an int32 torch.Tensor [B, 2], got "
                        f"{ranges.dtype if isinstance(ranges, torch.Tensor) else type(ranges).__name__}")
    if ranges.dim() != 2 or ranges.shape[1] != 2:
        raise ValueError(f"ranges must have shape [B, 2] (start, count), got {list(ranges.shape)}")
    pairs = [(int(a), int(b)) for a, b in ranges.tolist()]
    for s, c in pairs:
        if s < 0 or c < 0 or s + c > F:
            raise ValueError(f"ranges: (start, count) = ({s}, {c}) is outside the {F} triangles of tri")
    return pairs


def rasterize(glctx: Optional[RasterizeCudaContext], pos: torch.Tensor, tri: torch.Tensor,
              resolution: Union[int, Sequence[int]], ranges: Optional[torch.Tensor] = None,
              grad_db: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rasterize triangles, nvdiffrast layout.

    Args:
        glctx: a context from this module, or ``None`` (backend ``"auto"``).
        pos: clip-space vertex positions, float ``[B, V, 4]`` (instanced mode) or ``[V, 4]`` (range
            mode with ``ranges``; one image without).
        tri: int32/int64 ``[F, 3]`` vertex indices.
        resolution: ``(height, width)`` (or an int for a square image), each 1..16384.
        ranges: range mode: int ``[B, 2]`` ``(start, count)`` per image: image b renders
            ``tri[start:start + count]``; triangle ids stay indices into the whole ``tri``.
        grad_db: whether gradients flow from ``rast_db`` into ``pos``.
        ``pos`` may require grad: ``(u, v, z/w)`` are then differentiable with respect to it
        (docs/rasterization.md section 3); ids carry no gradient.

    Returns:
        ``(rast, rast_db)``: float32 ``[B, H, W, 4]`` = ``(u, v, z/w, triangle_id + 1)`` and
        ``[B, H, W, 4]`` = ``(du/dX, du/dY, dv/dX, dv/dY)`` in pixels at each pixel centre, exact
        and differentiable with respect to ``pos`` (float32, or float64 for a float64 ``pos``;
        ``[B, H, W, 0]`` if ``glctx.output_db`` is False).
    """
    if glctx is not None and not isinstance(glctx, RasterizeCudaContext):
        raise TypeError(f"glctx must be a RasterizeGLContext/RasterizeCudaContext from render_npu.nvdiffrast or None, "
                        f"got {type(glctx).__name__}")
    backend = "auto" if glctx is None else glctx.backend
    if ranges is None:
        out = _api.rasterize(resolution, tri, pos, viewport="opengl", backend=backend)
        bary, depth = out.rast, out.depth
        pos_b = pos if pos.dim() == 3 else pos.unsqueeze(0)
    else:
        if not isinstance(pos, torch.Tensor) or pos.dim() != 2:
            raise ValueError(f"pos must have shape [V, 4] in range mode (ranges given), got "
                             f"{_validate.shape_of(pos)}")
        if not isinstance(tri, torch.Tensor):
            raise TypeError(f"tri must be a torch.Tensor, got {type(tri).__name__}")
        parts = []
        for s, c in _ranges(ranges, tri.shape[0] if tri.dim() == 2 else 0):
            o = _api.rasterize(resolution, tri[s:s + c], pos, viewport="opengl", backend=backend)
            r = o.rast
            r = torch.cat([r[..., :3], torch.where(r[..., 3:] > 0, r[..., 3:] + s, r[..., 3:])], -1)
            parts.append((r, o.depth))
        H, W = _validate.resolution(resolution)
        bary = torch.cat([p[0] for p in parts]) if parts else pos.new_zeros((0, H, W, 4), dtype=torch.float32)
        depth = torch.cat([p[1] for p in parts]) if parts else pos.new_zeros((0, H, W), dtype=torch.float32)
        pos_b = pos.unsqueeze(0)
    return _nv_layout(glctx, bary, depth, pos_b, tri, grad_db)


def _nv_layout(glctx, bary: torch.Tensor, depth: torch.Tensor, pos_b: torch.Tensor, tri: torch.Tensor,
               grad_db: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Core (rast, depth) -> nvdiffrast's (rast, rast_db); rast_db from the [B or 1, V, 4] positions."""
    rast = torch.stack([bary[..., 0], bary[..., 1], depth, bary[..., 3]], dim=-1)
    B, H, W = depth.shape
    if glctx is not None and not glctx.output_db:
        return rast, rast.new_zeros((B, H, W, 0))
    p = pos_b if grad_db else pos_b.detach()
    if p.dtype != torch.float64:
        p = p.float()
    with _cpu_threads(p.device):
        rast_db = derivatives.bary_pixel_derivatives(p, tri, rast[..., 3].long())
    return rast, rast_db


def _to_render_npu(rast: torch.Tensor) -> torch.Tensor:
    """nvdiffrast ``(u, v, z/w, id + 1)`` -> render_npu ``(b0, b1, b2, id + 1)`` (b2 = 1 - u - v, 0 if empty)."""
    if not isinstance(rast, torch.Tensor) or rast.dim() != 4 or rast.shape[-1] != 4:
        raise ValueError(f"rast must be the [B, H, W, 4] output of rasterize(), got "
                         f"{_validate.shape_of(rast)}")
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
    B, H, W = r.shape[:3]
    if rast_db is None or diff_attrs is None:
        out = _api.interpolate(attr, r, tri)
        return out, out.new_zeros((B, H, W, 0))
    _api._check_attr(attr)
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
                         f"{_validate.shape_of(rast_db)}")
    if idx and idx == list(range(A)):  # value and derivatives in one compiled pass where no gradient is needed
        both = _api.interpolate_with_db(attr, r, rast[..., 3], tri, rast_db, "rast[..., 3]")
        if both is not None:
            return both
    out = _api.interpolate(attr, r, tri)
    if not idx:
        return out, out.new_zeros((B, H, W, 0))
    tri_ok = _validate.faces(tri, attr.shape[-2], "tri")
    # two more interpolates (compiled on CPU, on their own threads): not under _cpu_threads
    return out, derivatives.attribute_pixel_derivatives(attr, rast[..., 3], tri_ok, rast_db, idx)


def texture(tex: torch.Tensor, uv: torch.Tensor, uv_da: Optional[torch.Tensor] = None,
            mip_level_bias: Optional[torch.Tensor] = None, mip=None, filter_mode: str = "auto",
            boundary_mode: str = "wrap", max_mip_level: Optional[int] = None) -> torch.Tensor:
    """nvdiffrast's ``texture``: sample ``tex`` ``[B, Ht, Wt, C]`` (cube: ``[B, 6, Ht, Wt, C]``) at ``uv``
    ``[B, H, W, 2]`` (cube: directions ``[B, H, W, 3]``) -> ``[B, H, W, C]``. Filter modes ``nearest``,
    ``linear``, ``linear-mipmap-nearest``, ``linear-mipmap-linear`` (``auto``: mipmapped when ``uv_da`` or
    ``mip_level_bias`` is given); boundary modes ``wrap``, ``clamp``, ``zero``, ``cube``. Differentiable
    with respect to ``tex``, ``uv``, ``uv_da`` and ``mip_level_bias``. Conventions:
    :mod:`render_npu.ops.texture`."""
    return _texture.texture(tex, uv, uv_da, mip_level_bias, mip, filter_mode, boundary_mode, max_mip_level)


def texture_construct_mip(tex: torch.Tensor, max_mip_level: Optional[int] = None, cube_mode: bool = False):
    """Build a mip stack of ``tex`` to pass as ``texture(..., mip=...)`` when one texture is sampled
    several times; gradients reaching the stack flow back to ``tex``."""
    return _texture.construct_mip(tex, max_mip_level, cube_mode)


def antialias(color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor,
              topology_hash: Optional[torch.Tensor] = None, pos_gradient_boost: float = 1.0) -> torch.Tensor:
    """nvdiffrast's ``antialias``: analytic antialiasing of silhouette edges.

    Args:
        color: float ``[B, H, W, C]`` shaded image.
        rast: ``[B, H, W, 4]`` from :func:`rasterize` for the same ``pos``/``tri``.
        pos: float ``[B, V, 4]`` (or ``[V, 4]``, range mode) clip-space positions.
        tri: int ``[F, 3]``.
        topology_hash: from :func:`antialias_construct_topology_hash` (built here when None).
        pos_gradient_boost: factor applied to the gradient with respect to ``pos``.

    Returns:
        ``[B, H, W, C]``, differentiable with respect to ``color`` and ``pos``. Method and
        conventions: :mod:`render_npu.ops.antialias`.
    """
    if not isinstance(color, torch.Tensor) or not color.is_floating_point() or color.dim() != 4:
        raise ValueError(f"color must be a floating-point tensor [B, H, W, C], got "
                         f"{(color.dtype, list(color.shape)) if isinstance(color, torch.Tensor) else type(color).__name__}")
    if not isinstance(rast, torch.Tensor) or tuple(rast.shape) != tuple(color.shape[:3]) + (4,):
        raise ValueError(f"rast must have shape {list(color.shape[:3]) + [4]} (color's [B, H, W] and 4), got "
                         f"{_validate.shape_of(rast)}")
    if not isinstance(pos, torch.Tensor) or not pos.is_floating_point() or pos.dim() not in (2, 3) \
            or pos.shape[-1] != 4 or (pos.dim() == 3 and pos.shape[0] not in (1, color.shape[0])):
        raise ValueError(f"pos must be a float tensor [B, V, 4] or [V, 4] with B = {color.shape[0]}, got "
                         f"{_validate.shape_of(pos)}")
    tri = _validate.faces(tri, pos.shape[-2], "tri")
    if topology_hash is not None and (not isinstance(topology_hash, torch.Tensor)
                                      or tuple(topology_hash.shape) != (tri.shape[0], 3)):
        raise ValueError(f"topology_hash must come from antialias_construct_topology_hash(tri) for these "
                         f"{tri.shape[0]} triangles")
    if not isinstance(pos_gradient_boost, (int, float)) or isinstance(pos_gradient_boost, bool) \
            or not math.isfinite(pos_gradient_boost):
        raise ValueError(f"pos_gradient_boost must be a finite number, got {pos_gradient_boost!r}")
    if tri.shape[0] == 0:
        return color.clone()
    with _cpu_threads(color.device):
        return _antialias.antialias(color, rast, pos, tri, topology_hash, float(pos_gradient_boost))


def antialias_construct_topology_hash(tri: torch.Tensor) -> torch.Tensor:
    """Edge adjacency of ``tri`` for :func:`antialias` (an int64 ``[F, 3]`` table: per edge, the face
    across it, -1 on boundaries, -2 on non-manifold edges); build once per mesh topology."""
    if not isinstance(tri, torch.Tensor) or tri.dtype not in (torch.int32, torch.int64) or tri.dim() != 2 \
            or tri.shape[1] != 3:
        raise ValueError(f"tri must be an int32/int64 tensor [F, 3], got "
                         f"{(tri.dtype, list(tri.shape)) if isinstance(tri, torch.Tensor) else type(tri).__name__}")
    return _antialias.construct_topology_hash(tri)


class DepthPeeler:
    """nvdiffrast's ``DepthPeeler(glctx, pos, tri, resolution, ranges=None, grad_db=True)``: a context
    manager whose :meth:`rasterize_next_layer` returns ``(rast, rast_db)`` for successive depth layers
    (layer 0 is the nearest fragment of each pixel, layer k the k-th in depth order; pixels without
    one are empty). Runs on the torch backend (any device): see :mod:`render_npu.ops.peel`. Each layer's
    ``(u, v, z/w)`` and ``rast_db`` are differentiable with respect to ``pos`` as :func:`rasterize`'s are
    (the parent-triangle resolve of the layer's fragments)."""

    def __init__(self, glctx: Optional[RasterizeCudaContext], pos: torch.Tensor, tri: torch.Tensor,
                 resolution: Union[int, Sequence[int]], ranges: Optional[torch.Tensor] = None, grad_db: bool = True):
        if glctx is not None and not isinstance(glctx, RasterizeCudaContext):
            raise TypeError(f"glctx must be a RasterizeGLContext/RasterizeCudaContext from render_npu.nvdiffrast "
                            f"or None, got {type(glctx).__name__}")
        self.glctx, self.pos, self.tri, self.grad_db = glctx, pos, tri, grad_db
        pos_in = pos.detach() if isinstance(pos, torch.Tensor) else pos
        if ranges is None:
            self._parts = [(_peel.Peeler(pos_in, tri, resolution), 0)]
        else:
            if not isinstance(pos, torch.Tensor) or pos.dim() != 2:
                raise ValueError("pos must have shape [V, 4] in range mode (ranges given)")
            self._parts = [(_peel.Peeler(pos_in, tri[s:s + c], resolution), s)
                           for s, c in _ranges(ranges, tri.shape[0])]
        self._active = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._active = False
        self._parts = []
        return False

    def rasterize_next_layer(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The next depth layer as ``(rast, rast_db)``, laid out as :func:`rasterize`'s output."""
        if not self._active:
            raise RuntimeError("DepthPeeler: rasterize_next_layer() called outside its 'with' block")
        bary, depth = [], []
        pos_g = self.pos if self.pos.dim() == 3 else self.pos.unsqueeze(0)
        for peeler, start in self._parts:
            r, d = peeler.next_layer()
            # (u, v, z/w) differentiable w.r.t. pos as rasterize's: the parent-triangle resolve of the
            # layer's fragments (it needs only their ids, whatever layer they come from)
            r, d = resolve.attach(pos_g, peeler.inp.faces, "opengl", r, d)
            if start:
                r = torch.cat([r[..., :3], torch.where(r[..., 3:] > 0, r[..., 3:] + start, r[..., 3:])], -1)
            bary.append(r)
            depth.append(d)
        return _nv_layout(self.glctx, torch.cat(bary), torch.cat(depth), pos_g, self.tri, self.grad_db)
