"""View sources: where the per-camera images come from.

A view source is any callable ``source(batch: ViewBatch) -> Sequence[image]`` returning exactly one
image per camera in ``batch.cameras``, in order. ``batch`` carries the cameras, the render
resolution, lazily computed geometry maps of the target mesh (normal maps, position maps,
masks; computed on first access from the shared raster cache, so a source that does not use them
does not pay for them) and the optional reference image. Images: PIL images, numpy arrays
(uint8 or float in [0, 1]) or torch tensors, ``[H, W, 3]`` or ``[H, W, 4]`` (alpha multiplies the
bake weight), row 0 at the top, any size with the render's aspect ratio.

This is where a multi-view diffusion model such as Hunyuan3D-Paint plugs in::

    class PaintSource:
        def __init__(self, model): self.model = model
        def __call__(self, batch):
            normals = [encode_normals(n) for n in batch.normal_maps]      # [H, W, 3] in [0, 1]
            positions = batch.position_images()                          # [H, W, 3] in [0, 1]
            return self.model(batch.reference_image, normals, positions)  # 6 images

Shipped sources needing no weights: :class:`ImageSource` (the user's images) and
:class:`TransferSource` (renders of another mesh with a texture or vertex colours).
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np
import torch

from .camera import Camera, Resolution, as_hw
from .images import to_float_image
from .mesh import Mesh, MeshError, load_mesh, normalize
from .render import Renderer, alloc

__all__ = ["ViewBatch", "ViewSource", "ImageSource", "TransferSource", "as_view_source"]

ViewSource = Callable[["ViewBatch"], Sequence[Any]]

MIN_TRANSFER_OVERLAP = 0.5  # share of the target's view pixels the source must cover, else a warning


class ViewBatch:
    """The request handed to a view source.

    Attributes:
        cameras: list of :class:`~texgen.camera.Camera`.
        resolution: (H, W) of the geometry maps (the render size).
        reference_image: float32 [H, W, 3|4] or None (e.g. the image a shape was generated from).
        renderer: :class:`~texgen.render.Renderer` of the target mesh (normalised frame).
        mesh: the target :class:`~texgen.mesh.Mesh`.
        workers: threads computing the maps of different views in parallel.

    Lazy properties (float32 torch tensors on the renderer's device, computed once):
        normal_maps: [N, H, W, 3] world-space unit normals, 0 on the background.
        camera_normal_maps: [N, H, W, 3] camera-space normals (x right, y up, z to the viewer).
        position_maps: [N, H, W, 3] world positions (normalised frame), 0 on the background.
        masks: [N, H, W] bool coverage.
    """

    def __init__(self, renderer: Renderer, cameras: Sequence[Camera], resolution: Resolution,
                 reference_image: Any = None, progress: bool = False, workers: Optional[int] = None):
        self.renderer = renderer
        self.cameras = list(cameras)
        self.resolution = as_hw(resolution)
        self.reference_image = None if reference_image is None else to_float_image(reference_image, "reference image")
        self.progress = progress
        self.workers = int(workers) if workers else min(len(self.cameras), os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._maps: dict = {}

    @property
    def mesh(self) -> Mesh:
        return self.renderer.mesh

    def __len__(self) -> int:
        return len(self.cameras)

    def _stack(self, name: str, fn: Callable[..., torch.Tensor], channels: int = 3) -> torch.Tensor:
        """[N, H, W, C] maps of all cameras, computed once, views in parallel (``workers`` threads),
        each written straight into its slice."""
        with self._lock:
            if name not in self._maps:
                from concurrent.futures import ThreadPoolExecutor

                from tqdm.auto import tqdm

                H, W = self.resolution
                n = len(self.cameras)
                if channels:
                    out = alloc((n, H, W, channels), torch.float32, self.renderer.device)
                    jobs = [lambda i=i: fn(self.cameras[i], out[i]) for i in range(n)]
                else:
                    out = None
                    jobs = [lambda i=i: fn(self.cameras[i]) for i in range(n)]
                bar = tqdm(total=n, desc=name.replace("_", " "), unit="view", disable=not self.progress, leave=False)
                with ThreadPoolExecutor(max_workers=max(1, min(self.workers, n))) as ex:
                    results = []
                    for fut in [ex.submit(j) for j in jobs]:
                        results.append(fut.result())
                        bar.update(1)
                bar.close()
                self._maps[name] = out if out is not None else torch.stack(results)
            return self._maps[name]

    @property
    def normal_maps(self) -> torch.Tensor:
        return self._stack("normal_maps", lambda c, o: self.renderer.normal_map(c, self.resolution, out=o))

    @property
    def camera_normal_maps(self) -> torch.Tensor:
        return self._stack("camera_normal_maps",
                           lambda c, o: self.renderer.normal_map(c, self.resolution, "camera", out=o))

    @property
    def position_maps(self) -> torch.Tensor:
        return self._stack("position_maps", lambda c, o: self.renderer.position_map(c, self.resolution, out=o))

    @property
    def masks(self) -> torch.Tensor:
        return self._stack("masks", lambda c: self.renderer.mask(c, self.resolution), channels=0)

    def position_images(self, background: float = 1.0) -> List[np.ndarray]:
        """Position maps as colours ``p + 0.5`` (the normalised object spans about [-0.575, 0.575])."""
        out = []
        for p, m in zip(self.position_maps, self.masks):
            img = np.clip(p.cpu().numpy() + 0.5, 0, 1)
            out.append(np.where(m.cpu().numpy()[..., None], img, np.float32(background)).astype(np.float32))
        return out


class ImageSource:
    """The user's images, one per camera (paths, PIL images or arrays)."""

    def __init__(self, images: Sequence[Any]):
        if isinstance(images, (str, bytes)) or not hasattr(images, "__len__"):
            raise ValueError("ImageSource needs a sequence of images")
        self.images = [to_float_image(img, f"image {i}") for i, img in enumerate(images)]

    def __call__(self, batch: ViewBatch) -> List[np.ndarray]:
        if len(self.images) != len(batch.cameras):
            raise ValueError(f"got {len(self.images)} images for {len(batch.cameras)} cameras: give exactly one "
                             f"image per camera, in camera order")
        return self.images


class TransferSource:
    """Renders a *source* mesh that has a texture (with UVs) or vertex colours from the batch's
    cameras, so its appearance is re-baked onto the target's atlas (e.g. a decimated or remeshed
    copy). The source is put in the target's frame with the target's normalisation (the two must
    overlap in their original frames); a target without normalisation uses the source as is.

    Args:
        source: mesh file path, trimesh object or :class:`~texgen.mesh.Mesh`.
        background: colour of uncovered pixels (never baked: they fail the visibility test).
    """

    def __init__(self, source: Union[str, Any, Mesh],
                 background: Sequence[float] = (1.0, 1.0, 1.0)):
        self.source = load_mesh(source)
        if not self.source.has_appearance:
            raise MeshError(f"{self.source.name}: the transfer source has neither a texture with UVs nor "
                            f"vertex colours")
        self.background = tuple(float(b) for b in background)
        self._lock = threading.Lock()
        self._placed: Optional[tuple] = None

    def _placed_source(self, target: Mesh) -> Mesh:
        key = target.normalization
        with self._lock:
            if self._placed is None or self._placed[0] != key:
                src = self.source if key is None else normalize(self.source, like=target)
                self._placed = (key, src)
            return self._placed[1]

    def __call__(self, batch: ViewBatch) -> List[torch.Tensor]:
        from tqdm.auto import tqdm

        src = self._placed_source(batch.mesh)
        r = Renderer(src, batch.renderer.device, batch.renderer.backend, cache=batch.renderer.cache)
        cams = tqdm(batch.cameras, desc="render source", unit="view", disable=not batch.progress, leave=False)
        images = [r.render_textured(cam, batch.resolution, background=self.background) for cam in cams]
        self._check_overlap(batch, r)
        return images

    def _check_overlap(self, batch: ViewBatch, r: Renderer) -> None:
        """Warn when the source covers little of the target in the views: the texels it misses get
        the background colour, or are inpainted from far away."""
        import warnings

        from .mesh import TexgenWarning

        target = batch.masks
        seen = int(target.sum())
        both = sum(int((r.mask(cam, batch.resolution) & target[i]).sum()) for i, cam in enumerate(batch.cameras))
        if seen and both < MIN_TRANSFER_OVERLAP * seen:
            warnings.warn(f"texgen: the transfer source {self.source.name} covers only {100.0 * both / seen:.1f}% of "
                          f"the target's pixels in the {len(batch.cameras)} views ({both} of {seen}): source and "
                          f"target barely overlap (both are placed with the target's normalisation, so they must "
                          f"overlap in their files' frames)", TexgenWarning, stacklevel=2)


def as_view_source(source: Any) -> ViewSource:
    """A callable view source, or a sequence of images wrapped in :class:`ImageSource`."""
    if callable(source):
        return source
    if isinstance(source, (list, tuple)):
        return ImageSource(source)
    raise TypeError(f"a view source must be callable (batch -> images) or a list of images, got "
                    f"{type(source).__name__}")
