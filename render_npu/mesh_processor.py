"""Hunyuan3D's ``mesh_processor`` front: ``meshVerticeInpaint`` with its signature and results,
over :mod:`render_npu.inpaint` (compiled C++ with a bit-identical numpy fallback)::

    from render_npu.mesh_processor import meshVerticeInpaint
    texture, mask = meshVerticeInpaint(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx)
"""
from __future__ import annotations

from .inpaint import BACKENDS, METHODS, InpaintStats, mesh_vertex_inpaint

__all__ = ["meshVerticeInpaint", "meshVerticeInpaint_smooth", "meshVerticeInpaint_forward", "mesh_vertex_inpaint",
           "InpaintStats", "METHODS", "BACKENDS"]


def meshVerticeInpaint(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx, method: str = "smooth",
                       backend: str = "auto"):
    """Hunyuan3D's ``meshVerticeInpaint``: returns ``(texture, mask)``, new arrays. Arguments as
    :func:`render_npu.inpaint.mesh_vertex_inpaint`; ``method="forward"`` is Hunyuan3D-2.1's."""
    return mesh_vertex_inpaint(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx, method=method, backend=backend)


def meshVerticeInpaint_smooth(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx, backend: str = "auto"):
    """``meshVerticeInpaint(..., method="smooth")`` (Hunyuan3D's function of the same name)."""
    return meshVerticeInpaint(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx, "smooth", backend)


def meshVerticeInpaint_forward(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx, backend: str = "auto"):
    """``meshVerticeInpaint(..., method="forward")`` (Hunyuan3D-2.1's function of the same name)."""
    return meshVerticeInpaint(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx, "forward", backend)
