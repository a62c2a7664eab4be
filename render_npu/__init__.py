"""render_npu: a tile-based triangle rasterizer with compiled CPU, portable torch (NPU/CUDA/CPU)
and AscendC backends behind one contract, plus compatibility fronts for nvdiffrast, Hunyuan3D's
custom_rasterizer and mesh_processor.

    rast, depth = render_npu.rasterize((H, W), faces, pos_clip)
    normals = render_npu.interpolate(vertex_normals, rast, faces)
"""
from . import backends  # the backend packages; calling it lists the backends (render_npu/backends/__init__.py)
from ._api import RasterOutput, interpolate, rasterize
from .backends import resolve_backend

__version__ = "0.1.0"
__all__ = ["rasterize", "interpolate", "backends", "resolve_backend", "RasterOutput", "__version__"]
