"""Back-projection of view images into the UV atlas, and the weighted multi-view merge.

For every texel of the used UV area (:meth:`Renderer.texels`: its surface point ``p`` and unit
normal ``n``) and every view ``i`` with image ``I_i`` and view weight ``w_i``:

* ``cos_i = n . d_i``, ``d_i`` the unit direction from ``p`` towards the camera (constant for
  orthographic views). Texels with ``cos_i <= cos(max_angle)`` get nothing from view ``i``.
* ``p`` is projected into the view; the texel is *visible* when its distance along the viewing
  axis matches the view's depth map at the nearest pixel within ``depth_tolerance`` render
  pixels (world size of a pixel at that depth), and *reliable* when that pixel is not within
  ``border`` pixels of a depth discontinuity or of the silhouette (depths within a 3x3
  neighbourhood differing by more than ``edge_jump`` pixel sizes, more than any surface inside the
  angle limit produces; the background counts as infinitely far). Baked colour
  goes wrong exactly there: generated images are not pixel-aligned with the geometry, and the
  rim of a silhouette is seen at a grazing angle.
* colour ``c_i = I_i(p)`` bilinearly (the image may have any resolution with the render's aspect
  ratio: it is sampled in normalised coordinates), weight ``W_i = w_i * cos_i ** bake_exp`` (times
  the image's alpha when it has one), 0 when not visible or not reliable.

The texture is ``sum_i W_i c_i / sum_i W_i`` where ``sum_i W_i > 0``. Views are back-projected in a
thread pool; the merge consumes their results strictly in view order, so the texture is bitwise
identical to the single-threaded one whatever order the views finish in.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, List, NamedTuple, Optional, Sequence

import numpy as np
import torch

from render_npu._threads import split_intra_op_threads
from render_npu.contract import screen_transform

from .camera import Camera, Resolution, as_hw
from .images import to_float_image
from .render import (CHUNK, VIEWPORT, Raster, Renderer, TexelData, alloc,
                     bilinear_sample)

__all__ = ["BakeSettings", "BakeResult", "ViewContribution", "bake", "back_project", "reliable_mask",
           "prepare_images"]


@dataclass(frozen=True)
class BakeSettings:
    """Back-projection parameters (see the module docstring).

    Attributes:
        bake_exp: exponent on the cosine weight (Hunyuan3D-2: 4).
        max_angle: degrees between normal and view direction beyond which a view contributes 0.
        depth_tolerance: visibility tolerance, in render pixels.
        edge_jump: depth range over a pixel's 3x3 neighbourhood, in pixel sizes, that counts as a
            discontinuity. None: ``1.25 * 2 sqrt(2) tan(max_angle)`` (13.2 for 75 degrees), just
            above what a continuous surface inside the angle limit produces, so only real jumps
            and silhouettes are masked, never merely steep surfaces.
        border: pixels masked around discontinuities and silhouettes; None = ``max(2, round(R/512))``
            for render size R.
        workers: threads for the per-view work; None = ``min(views, os.cpu_count())``; 1 = inline.
            While bake's own pool runs, torch's intra-op threads are divided among the workers
            (restored afterwards; the results do not depend on it).
    """
    bake_exp: float = 4.0
    max_angle: float = 75.0
    depth_tolerance: float = 3.0
    edge_jump: Optional[float] = None
    border: Optional[int] = None
    workers: Optional[int] = None

    def __post_init__(self):
        # a NaN or negative exponent silently gives a grey texture: refuse it here, naming the field
        checks = (("bake_exp", self.bake_exp, 0.0, 64.0), ("max_angle", self.max_angle, 0.0, 90.0),
                  ("depth_tolerance", self.depth_tolerance, 0.0, math.inf), ("edge_jump", self.edge_jump, 0.0, math.inf))
        for name, val, lo, hi in checks:
            if val is None:
                continue
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) \
                    or not lo <= val <= hi or (name == "max_angle" and val == 0):
                where = "in (0, 90]" if name == "max_angle" else (f"in [0, {hi:g}]" if hi < math.inf else ">= 0")
                raise ValueError(f"BakeSettings.{name} must be a finite number {where}, got {val!r}")
        for name, val in (("border", self.border), ("workers", self.workers)):
            if val is not None and (isinstance(val, bool) or not isinstance(val, int)
                                    or val < (1 if name == "workers" else 0)):
                raise ValueError(f"BakeSettings.{name} must be None or an int >= {1 if name == 'workers' else 0}, "
                                 f"got {val!r}")

    def edge_jump_px(self) -> float:
        if self.edge_jump is not None:
            return float(self.edge_jump)
        return 1.25 * 2.0 * math.sqrt(2.0) * math.tan(math.radians(min(self.max_angle, 89.0)))

    def border_px(self, resolution: Resolution) -> int:
        if self.border is not None:
            return int(self.border)
        return max(2, int(round(max(as_hw(resolution)) / 512)))


class ViewContribution(NamedTuple):
    """One view's share: ``texel`` int64 [K] positions in ``TexelData.index`` order, ``weight``
    float32 [K] > 0, ``color`` float32 [K, 3]."""
    texel: torch.Tensor
    weight: torch.Tensor
    color: torch.Tensor


@dataclass
class BakeResult:
    """``texture`` float32 [H, W, 3] (0 where nothing was baked), ``weight`` float32 [H, W] (sum of
    the view weights), ``baked`` bool [H, W] (weight > 0), ``used`` bool [H, W] (texel centre inside
    a UV triangle); torch tensors on the renderer's device, image row order. ``view_texels``: how
    many texels each view contributed to; ``images``: the views' images as baked (float32 in [0, 1])."""
    texture: torch.Tensor
    weight: torch.Tensor
    baked: torch.Tensor
    used: torch.Tensor
    view_texels: List[int] = field(default_factory=list)
    images: List[Any] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Fraction of the used UV area that received colour."""
        used = int(self.used.sum())
        return float((self.baked & self.used).sum()) / max(used, 1)


def prepare_images(images: Sequence[Any], n_views: int, resolution: Resolution) -> List[Any]:
    """Check count and aspect ratio; convert to float32 [H, W, 3|4] in [0, 1] (numpy arrays, or
    torch tensors kept on their device)."""
    if images is None or isinstance(images, (str, bytes)) or not hasattr(images, "__len__"):
        raise ValueError(f"expected a sequence of {n_views} images, got {type(images).__name__}")
    if len(images) != n_views:
        raise ValueError(f"expected {n_views} images (one per camera), got {len(images)}")
    H, W = as_hw(resolution)
    out = []
    for i, img in enumerate(images):
        if isinstance(img, torch.Tensor) and img.is_floating_point() and img.dim() == 3 and img.shape[2] in (3, 4):
            arr = torch.nan_to_num(img.detach().float(), 0.0).clamp_(0.0, 1.0)
        else:
            arr = to_float_image(img, name=f"view image {i}")
        h, w = arr.shape[:2]
        if abs(w * H - h * W) > max(H, W, h, w):  # aspect ratios differ by more than ~1 pixel
            raise ValueError(f"view image {i} is {w}x{h} (WxH) but the render is {W}x{H}: the aspect "
                             f"ratios must match")
        out.append(arr)
    return out


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    if radius <= 0:
        return mask
    if mask.device.type == "cpu":
        import cv2

        k = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
        return torch.from_numpy(cv2.dilate(mask.numpy().view(np.uint8), k) > 0)
    m = mask.float()[None, None]
    m = torch.nn.functional.max_pool2d(m, (1, 2 * radius + 1), 1, (0, radius))
    m = torch.nn.functional.max_pool2d(m, (2 * radius + 1, 1), 1, (radius, 0))
    return m[0, 0] > 0


def _local_range(x: torch.Tensor) -> torch.Tensor:
    """max - min over each pixel's 3x3 neighbourhood (the image border replicates)."""
    if x.device.type == "cpu":
        import cv2

        a = np.ascontiguousarray(x.numpy())
        k = np.ones((3, 3), np.uint8)
        hi = cv2.dilate(a, k, borderType=cv2.BORDER_REPLICATE)
        lo = cv2.erode(a, k, borderType=cv2.BORDER_REPLICATE)
        return torch.from_numpy(hi - lo)
    p = torch.nn.functional.pad(x[None, None], (1, 1, 1, 1), mode="replicate")
    hi = torch.nn.functional.max_pool2d(p, 3, 1)
    lo = -torch.nn.functional.max_pool2d(-p, 3, 1)
    return (hi - lo)[0, 0]


def reliable_mask(raster: Raster, camera: Camera, settings: BakeSettings) -> torch.Tensor:
    """bool [H, W]: covered pixels farther than ``border`` pixels from any depth discontinuity or
    silhouette (see the module docstring)."""
    H, W = raster.resolution
    covered = raster.mask
    lin = camera.linear_depth(raster.depth)
    lin.masked_fill_(~covered, camera.far * 4.0 + 1e3)  # the background is far away
    rng = _local_range(lin)
    if camera.is_ortho:
        thr = settings.edge_jump_px() * camera.pixel_size((H, W))
    else:
        thr = settings.edge_jump_px() * camera.pixel_size((H, W), lin.clamp_max(camera.far))
    edge = rng > thr
    return covered & ~_dilate(edge, settings.border_px((H, W)))


def _affine(rows: torch.Tensor, coef: Sequence[float], const: float = 0.0) -> torch.Tensor:
    """``coef[0] rows[0] + coef[1] rows[1] + coef[2] rows[2] + const`` for channel-major rows [3, M]:
    elementwise (no BLAS), so bitwise reproducible whatever the threading."""
    out = rows[0] * float(coef[0])
    out.add_(rows[1], alpha=float(coef[1])).add_(rows[2], alpha=float(coef[2]))
    return out.add_(float(const)) if const else out


def _as_image_tensor(image: Any, device: torch.device) -> torch.Tensor:
    img = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(image))
    return img.to(device=device, dtype=torch.float32).contiguous()


def back_project(renderer: Renderer, camera: Camera, image: Any, texels: TexelData, resolution: Resolution,
                 settings: BakeSettings = BakeSettings(), view_weight: float = 1.0) -> ViewContribution:
    """One view's contribution to the texels (see the module docstring). ``image``: float
    [Hi, Wi, 3|4] (numpy or torch), row 0 at the top; ``resolution``: render size (H, W) used for
    visibility."""
    dev = renderer.device
    H, W = as_hw(resolution)
    empty = ViewContribution(torch.zeros(0, dtype=torch.long, device=dev), torch.zeros(0, device=dev),
                             torch.zeros((0, 3), device=dev))
    if view_weight <= 0:
        return empty
    raster = renderer.rasterize(camera, (H, W))
    reliable = reliable_mask(raster, camera, settings).reshape(-1)
    img = _as_image_tensor(image, dev)
    parts = list(_project_chunks(camera, img, texels, (H, W), raster.depth, reliable, settings, view_weight))
    if not parts:
        return empty
    if len(parts) == 1:
        return parts[0]
    return ViewContribution(*(torch.cat(list(t)) for t in zip(*parts)))


def _project_chunks(camera: Camera, img: torch.Tensor, texels: TexelData, hw, depth: torch.Tensor,
                    reliable: torch.Tensor, settings: BakeSettings, view_weight: float):
    """Steps 1-4 of :func:`back_project` over the texels in chunks of ``CHUNK`` (every step is per
    texel, so chunking changes no bit): the temporaries stay small enough for glibc to recycle
    instead of mapping fresh pages (page faults cost as much as the arithmetic). Yields the
    non-empty chunks' contributions in texel order."""
    N = int(texels.pos_t.shape[1])
    for s in range(0, N, CHUNK):
        e = min(N, s + CHUNK)
        vc = _project(camera, img, texels.pos_t[:, s:e], texels.normal_t[:, s:e], hw, depth, reliable, settings,
                      view_weight)
        if vc is not None:
            yield vc if s == 0 else ViewContribution(vc.texel.add_(s), vc.weight, vc.color)


def _project(camera: Camera, img: torch.Tensor, pos_t: torch.Tensor, normal_t: torch.Tensor, hw, depth: torch.Tensor,
             reliable: torch.Tensor, settings: BakeSettings, view_weight: float) -> Optional[ViewContribution]:
    H, W = hw
    Hi, Wi, C = (int(t) for t in img.shape)
    dev = pos_t.device
    right, up, back = camera.basis()
    cam = camera.position
    cos_min = math.cos(math.radians(settings.max_angle))
    # 1. facing the camera, not grazing
    if camera.is_ortho:
        cos = _affine(normal_t, back)
        cand = torch.nonzero(cos > cos_min).squeeze(1)
        p = pos_t.index_select(1, cand)
        c = cos.index_select(0, cand)
    else:
        to_cam = torch.tensor(cam, dtype=torch.float32, device=dev).unsqueeze(1) - pos_t
        cos = (normal_t * to_cam).sum(0) / torch.linalg.vector_norm(to_cam, dim=0).clamp_min(1e-12)
        del to_cam
        cand = torch.nonzero(cos > cos_min).squeeze(1)
        p = pos_t.index_select(1, cand)
        c = cos.index_select(0, cand)
    if cand.numel() == 0:
        return None
    # 2. project: pixel coordinates (column px, row py, pixel centres at integers) and depth
    aspect = W / H
    # render_npu's screen mapping (contract.screen_transform, the "align_corners" viewport the
    # renders use) in pixel-index units (centres at integers): X * A + (B - 1/2), and B - 1/2 = A
    sx, sy = (float(screen_transform(n, VIEWPORT)[0]) for n in (W, H))
    off = -np.stack([right, up, back]) @ cam  # camera-space translation
    dist = _affine(p, -back, -off[2])
    if camera.is_ortho:
        kx = sx / (camera.ortho_half_width * aspect)
        ky = -sy / camera.ortho_half_width
        px = _affine(p, right * kx, off[0] * kx + sx)
        py = _affine(p, up * ky, off[1] * ky + sy)
    else:
        t = math.tan(math.radians(camera.fov) / 2)
        inv = 1.0 / dist.clamp_min(1e-12)
        px = _affine(p, right * (sx / (t * aspect)), off[0] * sx / (t * aspect)).mul_(inv).add_(sx)
        py = _affine(p, up * (-sy / t), off[1] * (-sy / t)).mul_(inv).add_(sy)
    del p
    # 3. visible (depth test at the nearest pixel) and reliable (away from edges)
    flat = py.round().clamp_(0, H - 1).mul_(W).add_(px.round().clamp_(0, W - 1)).long()
    map_dist = camera.linear_depth(depth.reshape(-1).index_select(0, flat))
    tol = settings.depth_tolerance * (camera.pixel_size((H, W)) if camera.is_ortho else camera.pixel_size((H, W), dist))
    ok = reliable.index_select(0, flat)
    ok &= map_dist.sub_(dist).abs_() <= tol
    ok &= (px - sx).abs_() < sx + 0.5
    ok &= (py - sy).abs_() < sy + 0.5
    if not camera.is_ortho:
        ok &= (dist > camera.near) & (dist < camera.far)
    keep = torch.nonzero(ok).squeeze(1)
    if keep.numel() == 0:
        return None
    # 4. colour (bilinear, the image in normalised coordinates) and weight
    px = px.index_select(0, keep)
    py = py.index_select(0, keep)
    if (Hi, Wi) != (H, W):
        px.mul_((Wi - 1) / max(W - 1, 1))
        py.mul_((Hi - 1) / max(H - 1, 1))
    sample = bilinear_sample(img, px, py)
    w = c.index_select(0, keep)
    w = w.pow_(settings.bake_exp) if settings.bake_exp != 4.0 else w.square_().square_()
    w.mul_(float(view_weight))
    texel = cand.index_select(0, keep)
    if C == 4:
        w.mul_(sample[:, 3])
        sel = torch.nonzero(w > 0).squeeze(1)
        return ViewContribution(texel.index_select(0, sel), w.index_select(0, sel),
                                sample[:, :3].index_select(0, sel))
    return ViewContribution(texel, w, sample)


def bake(renderer: Renderer, cameras: Sequence[Camera], images: Sequence[Any], texture_size: Resolution,
         render_size: Resolution, view_weights: Optional[Sequence[float]] = None,
         settings: BakeSettings = BakeSettings(), executor: Optional[Executor] = None,
         progress: bool = False) -> BakeResult:
    """Back-project ``images`` (one per camera) into the mesh's atlas and merge them.

    Args:
        renderer: renderer of the (UV-mapped) target mesh.
        cameras: the views; ``images[i]`` was seen from ``cameras[i]``.
        images: float [H, W, 3|4] arrays/tensors or PIL images, any size with the render's aspect.
        texture_size: atlas size (int or (H, W)).
        render_size: resolution of the depth maps used for visibility.
        view_weights: per-view weights (default all 1).
        settings: :class:`BakeSettings`.
        executor: run the per-view work on this executor (default: a thread pool of
            ``settings.workers`` threads; inline when that is 1).
        progress: show a tqdm bar.
    """
    n = len(cameras)
    if n == 0:
        raise ValueError("bake needs at least one camera")
    weights = [1.0] * n if view_weights is None else [float(w) for w in view_weights]
    if len(weights) != n:
        raise ValueError(f"got {len(weights)} view weights for {n} cameras")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"view weights must be finite and >= 0, got {weights}")
    imgs = prepare_images(images, n, render_size)
    texels = renderer.texels(texture_size)
    dev = renderer.device
    N = int(texels.index.numel())
    acc_c = torch.zeros((N, 3), dtype=torch.float32, device=dev)
    acc_w = torch.zeros(N, dtype=torch.float32, device=dev)
    counts: List[int] = []

    def task(i: int) -> ViewContribution:
        return back_project(renderer, cameras[i], imgs[i], texels, render_size, settings, weights[i])

    def merge(vc: ViewContribution) -> None:
        acc_w.index_add_(0, vc.texel, vc.weight)
        acc_c.index_add_(0, vc.texel, vc.color.mul_(vc.weight.unsqueeze(1)))
        counts.append(int(vc.texel.numel()))

    from tqdm.auto import tqdm

    bar = tqdm(total=n, desc="back-project", unit="view", disable=not progress, leave=False)
    workers = settings.workers if settings.workers is not None else min(n, os.cpu_count() or 1)
    try:
        if executor is None and workers <= 1:
            for i in range(n):
                merge(task(i))
                bar.update(1)
        else:
            own = executor is None
            ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="texgen-bake") if own else executor
            try:
                with split_intra_op_threads(workers if own else 1, dev):
                    futures = [ex.submit(task, i) for i in range(n)]
                    for fut in futures:  # view order, not completion order
                        merge(fut.result())
                        bar.update(1)
            finally:
                if own:
                    ex.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()

    Ht, Wt = texels.resolution
    color = acc_c.div_(acc_w.clamp_min(1e-30).unsqueeze(1))  # 0 where no weight (acc_c is 0 there)
    tex = alloc((Ht * Wt, 3), torch.float32, dev, zero=True)
    tex.index_copy_(0, texels.index, color)
    wmap = torch.zeros(Ht * Wt, dtype=torch.float32, device=dev)
    wmap.index_copy_(0, texels.index, acc_w)
    wmap = wmap.view(Ht, Wt)
    return BakeResult(tex.view(Ht, Wt, 3), wmap, wmap > 0, texels.mask, counts, imgs)
