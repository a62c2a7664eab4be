"""Hunyuan3D ``custom_rasterizer``-style front: ``rasterize`` / ``interpolate`` with the argument order,
shapes and dtypes of Hunyuan3D-2's ``custom_rasterizer`` Python wrapper, as thin adapters over
:func:`render_npu.rasterize` / :func:`render_npu.interpolate` (no second rasterizer). Hunyuan3D's
``MeshRender`` can use it in place of the CUDA extension::

    import render_npu.custom_rasterizer as cr
    findices, barycentric = cr.rasterize(pos_clip[None], tri, (H, W))
    rast_out = torch.cat((barycentric, findices.unsqueeze(-1)), dim=-1).unsqueeze(0)   # MeshRender's layout
    texc = cr.interpolate(uv[None], findices, barycentric, uv_idx)                     # [1, H, W, C]

Conventions (Hunyuan3D's): screen mapping ``viewport="align_corners"`` (NDC -1 and +1 on the centres of
the edge pixels), row index grows with NDC y; ``findices`` is 0 where empty, else triangle id + 1;
``barycentric`` are perspective-correct w.r.t. the face's vertices in order, zero where empty.
Differences: ties and pixel centres on edges follow render_npu's contract (docs/rasterization.md),
triangles are clipped against the frustum (including the near plane), and the depth-prior path
(``use_depth_prior != 0``) is not supported.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch

from . import _api, _validate

__all__ = ["rasterize", "interpolate", "rasterize_image"]


def rasterize(pos: torch.Tensor, tri: torch.Tensor, resolution: Union[int, Sequence[int]],
              clamp_depth: torch.Tensor = torch.zeros(0), use_depth_prior: int = 0,
              *, backend: str = "auto") -> Tuple[torch.Tensor, torch.Tensor]:
    """Rasterize one mesh, Hunyuan3D layout.

    Args:
        pos: clip-space vertices, float ``[1, V, 4]`` (only ``pos[0]`` is used, as in Hunyuan3D) or ``[V, 4]``.
        tri: int32/int64 ``[F, 3]``, on ``pos``'s device.
        resolution: ``(H, W)`` in pixels (Hunyuan3D passes ``resolution[1]`` as the width), or an int.
        clamp_depth, use_depth_prior: Hunyuan3D's depth-prior occlusion; only ``use_depth_prior=0``
            (the default, and what MeshRender uses) is supported.
        backend: render_npu backend name (extension; default ``"auto"``).

    Returns:
        ``(findices, barycentric)``: int32 ``[H, W]`` (0 = empty, else triangle id + 1) and float32
        ``[H, W, 3]``, on ``pos``'s device; ``barycentric`` is differentiable with respect to ``pos``
        when it requires grad.
    """
    if use_depth_prior:
        raise NotImplementedError("render_npu.custom_rasterizer.rasterize: use_depth_prior != 0 (depth-prior "
                                  "occlusion against clamp_depth) is not supported")
    if not isinstance(pos, torch.Tensor):
        raise TypeError(f"pos must be a torch.Tensor, got {type(pos).__name__}")
    if pos.dim() == 3:
        if pos.shape[0] < 1:
            raise ValueError(f"pos must have shape [1, V, 4], got {list(pos.shape)}")
        pos = pos[0]
    elif pos.dim() != 2:
        raise ValueError(f"pos must have shape [1, V, 4] or [V, 4], got {list(pos.shape)}")
    out = _api.rasterize(resolution, tri, pos, viewport="align_corners", backend=backend)
    rast = out.rast[0]
    return rast[..., 3].to(torch.int32), rast[..., :3].contiguous()


def rasterize_image(V: torch.Tensor, F: torch.Tensor, D: torch.Tensor, width: int, height: int,
                    occlusion_truncation: float = 1e-6, use_depth_prior: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """The compiled ``custom_rasterizer_kernel.rasterize_image`` entry point (what Hunyuan3D's
    ``custom_rasterizer.rasterize`` calls): ``V`` float ``[N, 4]`` clip-space vertices, ``F`` int
    ``[F, 3]``, ``D`` the depth prior (unused unless ``use_depth_prior``, which is not supported),
    image ``width`` x ``height``. ``occlusion_truncation`` only matters for the depth prior.
    Returns ``(findices, barycentric)`` as :func:`rasterize`."""
    return rasterize(V, F, (height, width), D, use_depth_prior)


def interpolate(col: torch.Tensor, findices: torch.Tensor, barycentric: torch.Tensor,
                tri: torch.Tensor) -> torch.Tensor:
    """Interpolate vertex attributes, Hunyuan3D layout.

    Args:
        col: float ``[1, V, C]`` (``col[0]`` is used, as in Hunyuan3D) or ``[V, C]``.
        findices: ``[H, W]`` face index + 1 (int, or float as MeshRender passes ``rast_out[0, ..., -1]``).
        barycentric: float ``[H, W, 3]``.
        tri: int ``[F, 3]``.

    Returns:
        ``[1, H, W, C]`` = ``sum_k barycentric[..., k] * col[tri[findices - 1, k]]``, zero where ``findices == 0``;
        differentiable with respect to ``col`` and ``barycentric``; compiled on CPU (see
        :func:`render_npu.interpolate`).
    """
    if not isinstance(col, torch.Tensor) or col.dim() not in (2, 3):
        raise ValueError(f"col must be a tensor of shape [1, V, C] or [V, C], got "
                         f"{_validate.shape_of(col)}")
    attr = col[0] if col.dim() == 3 else col
    if not isinstance(findices, torch.Tensor) or findices.dim() != 2:
        raise ValueError(f"findices must be a tensor of shape [H, W], got "
                         f"{_validate.shape_of(findices)}")
    if not isinstance(barycentric, torch.Tensor) or tuple(barycentric.shape) != tuple(findices.shape) + (3,):
        raise ValueError(f"barycentric must have shape [H, W, 3] = {list(findices.shape) + [3]}, got "
                         f"{_validate.shape_of(barycentric)}")
    if not barycentric.is_floating_point():
        raise TypeError(f"barycentric must be a floating-point tensor, got {barycentric.dtype}")
    # read in place (no [H, W, 4] concatenation): MeshRender passes views of one rast tensor
    return _api.interpolate_pixels(attr, barycentric.unsqueeze(0), findices.unsqueeze(0), tri, "findices")
