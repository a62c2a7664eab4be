"""``TexturePipeline(...)(mesh, view_source)``: prepare the mesh, rasterize the views once, ask the
view source for one image per camera, back-project and merge, inpaint, return a textured mesh.

Stages (``TextureResult.timings``, seconds): ``prepare`` (load, normalise, unwrap), ``render``
(rasterize every view and the UV layout into the shared cache; texel positions and normals),
``source`` (the view source, including any normal/position maps it asks for), ``bake``
(back-projection and weighted merge) and ``inpaint``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from .bake import BakeResult, BakeSettings, bake
from .camera import HUNYUAN_WEIGHTS, Camera, as_hw, hunyuan_cameras
from .export import export_mesh
from .inpaint import inpaint_texture
from .mesh import DEFAULT_RADIUS, Mesh, prepare_mesh
from .render import RasterCache, Renderer
from .sources import ViewBatch, as_view_source

__all__ = ["PipelineConfig", "TexturePipeline", "TextureResult"]


@dataclass
class PipelineConfig:
    """Pipeline options.

    Attributes:
        render_size: resolution (int or (H, W)) of the views' geometry maps and depth tests
            (Hunyuan3D-2: 2048).
        texture_size: atlas resolution, int or (H, W) (Hunyuan3D-2: 2048).
        cameras: the views (default: Hunyuan3D-2's six, :func:`~texgen.camera.hunyuan_cameras`).
        view_weights: bake weight per camera (default: Hunyuan3D-2's for the default cameras,
            else all 1).
        bake: :class:`~texgen.bake.BakeSettings` (``bake_exp`` 4, ``max_angle`` 75, ...).
        inpaint: "harmonic" (default), "pushpull", "ns" or "telea" (see :mod:`texgen.inpaint`).
        vertex_inpaint: run render_npu's mesh-graph inpaint before the image-space fill.
        radius: normalisation radius (None: use the mesh's coordinates as they are).
        unwrap: "auto" (a fresh atlas, :func:`texgen.uv.unwrap`, when the mesh has no usable UVs),
            "always" or "never".
        device: torch device for rendering and baking.
        backend: render_npu backend ("auto", "cpu", "torch", "reference", "ascendc").
        progress: tqdm progress bars.
        cache_entries, cache_bytes: bounds of the shared raster cache.
    """
    render_size: Any = 2048
    texture_size: Any = 2048
    cameras: Optional[Sequence[Camera]] = None
    view_weights: Optional[Sequence[float]] = None
    bake: BakeSettings = field(default_factory=BakeSettings)
    inpaint: str = "harmonic"
    vertex_inpaint: bool = True
    radius: Optional[float] = DEFAULT_RADIUS
    unwrap: str = "auto"
    device: str = "cpu"
    backend: str = "auto"
    progress: bool = True
    cache_entries: int = 64
    cache_bytes: int = 2 << 30

    def resolved_views(self):
        cams = list(self.cameras) if self.cameras is not None else hunyuan_cameras()
        if self.view_weights is not None:
            weights = [float(w) for w in self.view_weights]
        elif self.cameras is None:
            weights = list(HUNYUAN_WEIGHTS)
        else:
            weights = [1.0] * len(cams)
        if len(weights) != len(cams):
            raise ValueError(f"{len(weights)} view weights for {len(cams)} cameras")
        if not cams:
            raise ValueError("at least one camera is needed")
        return cams, weights


@dataclass
class TextureResult:
    """What the pipeline returns.

    Attributes:
        mesh: the prepared mesh (normalised frame, UVs) with ``texture`` set.
        texture: float32 [T, T, 3] final atlas (row 0 = v = 1).
        raw_texture: float32 [T, T, 3] merged bake before inpainting (0 where unbaked).
        baked, used: bool [T, T] texels that received colour / texel centres inside a UV triangle.
        images: the view images that were baked, float32 [H, W, 3|4].
        cameras, view_weights: the views.
        timings: seconds per stage.
        renderer: the target mesh's renderer (its raster cache holds the views).
    """
    mesh: Mesh
    texture: np.ndarray
    raw_texture: np.ndarray
    baked: np.ndarray
    used: np.ndarray
    images: List[np.ndarray]
    cameras: List[Camera]
    view_weights: List[float]
    timings: Dict[str, float]
    renderer: Renderer

    @property
    def coverage(self) -> float:
        """Fraction of the used UV area that was baked from some view (before inpainting)."""
        return float((self.baked & self.used).sum()) / max(int(self.used.sum()), 1)

    def export(self, path, normalized: bool = False, overwrite: bool = False) -> str:
        """Write ``.glb`` or ``.obj`` (+ ``.mtl`` + ``.png``, refused if they exist unless
        ``overwrite``), atomically; original frame unless ``normalized``."""
        return export_mesh(self.mesh, path, normalized=normalized, overwrite=overwrite)


class TexturePipeline:
    """Texture a mesh from per-view images. ``TexturePipeline(config, **overrides)``; overrides
    are :class:`PipelineConfig` fields (``bake_exp``/``max_angle``/``workers`` go to
    ``config.bake``). Reusable across meshes; the raster cache is shared between calls."""

    def __init__(self, config: Optional[PipelineConfig] = None, **overrides):
        cfg = config or PipelineConfig()
        bake_fields = {k: overrides.pop(k) for k in list(overrides) if k in BakeSettings.__dataclass_fields__}
        cfg = replace(cfg, **overrides)
        if bake_fields:
            cfg = replace(cfg, bake=replace(cfg.bake, **bake_fields))
        if min(as_hw(cfg.render_size)) < 2 or min(as_hw(cfg.texture_size)) < 2:
            raise ValueError("render_size and texture_size must be >= 2")
        self.config = cfg
        self.cache = RasterCache(cfg.cache_entries, cfg.cache_bytes)

    def prepare(self, mesh: Any, like: Optional[Mesh] = None) -> Mesh:
        """Load / normalise / unwrap ``mesh`` as the pipeline would (a new Mesh object)."""
        m = prepare_mesh(mesh, max(as_hw(self.config.texture_size)), self.config.radius, self.config.unwrap,
                         like=like)
        return m.copy() if m is mesh else m

    def renderer(self, mesh: Mesh) -> Renderer:
        return Renderer(mesh, self.config.device, self.config.backend, cache=self.cache)

    def __call__(self, mesh: Any, view_source: Any, reference_image: Any = None) -> TextureResult:
        cfg = self.config
        cams, weights = cfg.resolved_views()
        source = as_view_source(view_source)
        timings: Dict[str, float] = {}

        t0 = time.perf_counter()
        m = self.prepare(mesh)
        timings["prepare"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        renderer = self.renderer(m)
        from tqdm.auto import tqdm

        for cam in tqdm(cams, desc="rasterize", unit="view", disable=not cfg.progress, leave=False):
            renderer.rasterize(cam, cfg.render_size)
        renderer.texels(cfg.texture_size)
        timings["render"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        batch = ViewBatch(renderer, cams, cfg.render_size, reference_image, progress=cfg.progress,
                          workers=cfg.bake.workers)
        images = source(batch)
        if images is None or not hasattr(images, "__len__") or len(images) != len(cams):
            got = "None" if images is None else (len(images) if hasattr(images, "__len__") else type(images).__name__)
            raise ValueError(f"the view source returned {got} images for {len(cams)} cameras")
        timings["source"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        res: BakeResult = bake(renderer, cams, images, cfg.texture_size, cfg.render_size, weights, cfg.bake,
                               progress=cfg.progress)
        timings["bake"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        raw = res.texture.cpu().numpy()
        baked = res.baked.cpu().numpy()
        used = res.used.cpu().numpy()
        tex = inpaint_texture(raw, baked, used, m, cfg.inpaint, cfg.vertex_inpaint)
        timings["inpaint"] = time.perf_counter() - t0
        m.texture = tex  # appearance only: the raster cache stays valid
        images = [img.cpu().numpy() if isinstance(img, torch.Tensor) else img for img in res.images]
        return TextureResult(m, m.texture, raw, baked, used, images, cams, weights, timings, renderer)
