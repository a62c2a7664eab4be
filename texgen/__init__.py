"""texgen: texture a mesh from per-view images on top of render_npu (docs/texgen.md).

    from texgen import TexturePipeline, ImageSource, TransferSource
    result = TexturePipeline(render_size=1024, texture_size=1024)("shape.glb", ImageSource(images))
    result.export("textured.glb")

World frame: +Y up, front facing +Z (glTF). Images: float32 [H, W, 3|4] in [0, 1], row 0 at the
top. Cameras: (elevation, azimuth, distance), orthographic by default (half-width 0.6, distance
1.45); the default views are Hunyuan3D-2's six. Submodules: mesh, camera, render, bake (``bake.bake``
back-projects and merges), inpaint, export, files (atomic writes, output checks), uvcheck (whether a
mesh's UVs can hold a bake), uv (how to unwrap: xatlas, or the chart atlas for 1M faces), sources,
pipeline, demo, cli, batch (manifests on a process pool or Ray).
"""
from importlib import import_module as _import_module
from typing import TYPE_CHECKING

# Names are imported on first use (PEP 562), so that `import texgen.batch` / `texgen.cli` does not
# import torch: a `texgen batch` parent only reads the manifest and supervises its workers, and
# would otherwise pay torch's import (about a CPU-second) on the cores its workers start on.
_EXPORTS = {
    "bake": ("BakeResult", "BakeSettings", "back_project"),
    "camera": ("HUNYUAN_AZIMUTHS", "HUNYUAN_ELEVATIONS", "HUNYUAN_WEIGHTS", "Camera", "hunyuan_cameras",
               "orbit_cameras", "parse_cameras"),
    "export": ("export_glb", "export_mesh", "export_obj", "to_trimesh"),
    "files": ("OutputError",),
    "images": ("encode_normals", "load_image", "save_image", "to_float_image"),
    "inpaint": ("inpaint_texture", "push_pull"),
    "mesh": ("Mesh", "MeshError", "Normalization", "TexgenWarning", "load_mesh", "normalize", "prepare_mesh", "unwrap"),
    "pipeline": ("PipelineConfig", "TexturePipeline", "TextureResult"),
    "render": ("RasterCache", "RasterKey", "Renderer", "resolve_backend"),
    "sources": ("ImageSource", "TransferSource", "ViewBatch", "as_view_source"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:  # static tools see the names
    from .bake import BakeResult, BakeSettings, back_project
    from .camera import (HUNYUAN_AZIMUTHS, HUNYUAN_ELEVATIONS, HUNYUAN_WEIGHTS, Camera, hunyuan_cameras,
                         orbit_cameras, parse_cameras)
    from .export import export_glb, export_mesh, export_obj, to_trimesh
    from .files import OutputError
    from .images import encode_normals, load_image, save_image, to_float_image
    from .inpaint import inpaint_texture, push_pull
    from .mesh import Mesh, MeshError, Normalization, TexgenWarning, load_mesh, normalize, prepare_mesh, unwrap
    from .pipeline import PipelineConfig, TexturePipeline, TextureResult
    from .render import RasterCache, RasterKey, Renderer, resolve_backend
    from .sources import ImageSource, TransferSource, ViewBatch, as_view_source


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'texgen' has no attribute {name!r}")
    value = getattr(_import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "Camera", "hunyuan_cameras", "orbit_cameras", "parse_cameras", "HUNYUAN_AZIMUTHS", "HUNYUAN_ELEVATIONS",
    "HUNYUAN_WEIGHTS", "Mesh", "MeshError", "OutputError", "TexgenWarning", "Normalization", "load_mesh", "normalize", "prepare_mesh", "unwrap",
    "Renderer", "RasterCache", "RasterKey", "resolve_backend", "BakeSettings", "BakeResult", "back_project",
    "inpaint_texture", "push_pull", "export_glb", "export_obj", "export_mesh", "to_trimesh", "ViewBatch",
    "ImageSource", "TransferSource", "as_view_source", "PipelineConfig", "TexturePipeline", "TextureResult",
    "load_image", "save_image", "to_float_image", "encode_normals",
]
