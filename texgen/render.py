"""Renderer over one mesh on one torch device, with a shared, bounded, thread-safe raster cache.

Every map below comes from one ``render_npu.rasterize`` call per (mesh, view, resolution),
cached in a :class:`RasterCache` keyed by :class:`RasterKey` =
``(mesh uid, mesh geometry version, view, (H, W), viewport, device, backend)``, where *view* is a
:class:`~texgen.camera.Camera` (frozen, hashable) or the string ``"uv"`` for the texture-space
raster. The standard flow (normal maps, position maps, back-projection of the same views) thus
rasterizes each view once. Changing the mesh geometry bumps ``mesh.version`` and changing the
resolution changes the key, so a stale result is never returned.

Maps are float32 torch tensors on the renderer's device, image row order (row 0 = top, see
:mod:`texgen.camera`), background zero. Cached tensors are shared: treat results as read-only.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Hashable, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

import render_npu

from .camera import Camera, Resolution, as_hw
from .mesh import Mesh, vertex_normals

__all__ = ["RasterCache", "RasterKey", "Raster", "TexelData", "Renderer", "resolve_backend", "bilinear_sample"]

VIEWPORT = "align_corners"


# texgen resolves "auto" exactly as render_npu.rasterize does: one rule, render_npu's.
resolve_backend = render_npu.resolve_backend


# -- cache ------------------------------------------------------------------------------------------
class RasterKey(NamedTuple):
    mesh_uid: int
    mesh_version: int
    view: Hashable  # Camera, "uv", or (kind, ...) for derived data
    resolution: Tuple[int, int]
    viewport: str
    device: str
    backend: str


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


class RasterCache:
    """Bounded LRU cache, safe to share between threads and renderers.

    ``get_or_compute(key, fn)`` runs ``fn`` at most once per key even when several threads ask
    for it at the same time (the others wait for the first). Bounded by ``max_entries`` and
    ``max_bytes`` (least recently used first out; a value larger than ``max_bytes`` is returned
    but not kept). Inserting a key of a mesh at a new version drops that mesh's older versions.
    """

    def __init__(self, max_entries: int = 64, max_bytes: int = 2 << 30):
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = int(max_entries)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._data: "OrderedDict[Hashable, Tuple[Any, int]]" = OrderedDict()
        self._inflight: Dict[Hashable, threading.Event] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._data

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        while True:
            with self._lock:
                hit = self._data.get(key)
                if hit is not None:
                    self._data.move_to_end(key)
                    self.hits += 1
                    return hit[0]
                event = self._inflight.get(key)
                owner = event is None
                if owner:
                    event = threading.Event()
                    self._inflight[key] = event
            if not owner:
                event.wait()
                continue  # now cached (or the owner failed, and this thread retries)
            try:
                value = compute()
            except BaseException:
                with self._lock:
                    del self._inflight[key]
                event.set()
                raise
            with self._lock:
                self.misses += 1
                self._insert(key, value)
                del self._inflight[key]
            event.set()
            return value

    def _insert(self, key, value) -> None:
        size = _nbytes(value)
        if isinstance(key, RasterKey):  # drop older geometry versions of the same mesh
            stale = [k for k in self._data if isinstance(k, RasterKey) and k.mesh_uid == key.mesh_uid
                     and k.mesh_version != key.mesh_version]
            for k in stale:
                self._bytes -= self._data.pop(k)[1]
                self.evictions += 1
        if size > self.max_bytes:
            return
        self._data[key] = (value, size)
        self._bytes += size
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            _, (_, s) = self._data.popitem(last=False)
            self._bytes -= s
            self.evictions += 1


# -- results ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Raster:
    """One rasterized view: ``rast`` float32 [H, W, 4] = (b0, b1, b2, face id + 1) and ``depth``
    float32 [H, W] NDC z/w, in image row order; ``mask`` bool [H, W] coverage; plus the compacted
    covered pixels: ``pix`` int64 [M] flat pixel indices (row-major), ``face`` int64 [M] (0-based)
    and ``bary`` float32 [M, 3]."""
    rast: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor
    pix: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor

    @property
    def resolution(self) -> Tuple[int, int]:
        return int(self.rast.shape[0]), int(self.rast.shape[1])

    @property
    def nbytes(self) -> int:
        return sum(_nbytes(t) for t in (self.rast, self.depth, self.mask, self.pix, self.face, self.bary))


@dataclass(frozen=True)
class TexelData:
    """The texture-space raster: for every texel whose centre lies inside a UV triangle
    (``mask``, bool [H, W], image row order: row 0 = v = 1), its surface point. ``index`` int64
    [N] flat texel indices (row-major), ``face`` int64 [N], ``pos_t`` float32 [3, N] world
    positions and ``normal_t`` float32 [3, N] unit interpolated vertex normals, stored
    channel-major (``pos``/``normal`` are [N, 3] views of them)."""
    mask: torch.Tensor
    index: torch.Tensor
    face: torch.Tensor
    pos_t: torch.Tensor
    normal_t: torch.Tensor

    @property
    def pos(self) -> torch.Tensor:
        return self.pos_t.T

    @property
    def normal(self) -> torch.Tensor:
        return self.normal_t.T

    @property
    def resolution(self) -> Tuple[int, int]:
        return int(self.mask.shape[0]), int(self.mask.shape[1])

    @property
    def nbytes(self) -> int:
        return sum(_nbytes(t) for t in (self.mask, self.index, self.face, self.pos_t, self.normal_t))


def _make_raster(rast: torch.Tensor, depth: torch.Tensor) -> Raster:
    H, W = rast.shape[:2]
    flat = rast.view(H * W, 4)
    mask_flat = flat[:, 3] > 0
    pix = torch.nonzero(mask_flat).squeeze(1)
    # the cached per-pixel arrays live in huge-page-backed buffers (see alloc): page faults on
    # fresh torch buffers cost more than the gathers themselves
    M = pix.numel()
    sel = torch.index_select(flat, 0, pix, out=alloc((M, 4), rast.dtype, rast.device))
    face = alloc((M,), torch.int64, rast.device).copy_(sel[:, 3]).sub_(1)
    bary = alloc((M, 3), rast.dtype, rast.device).copy_(sel[:, :3])
    return Raster(rast, depth, mask_flat.view(H, W), pix, face, bary)


def alloc(shape, dtype=torch.float32, device="cpu", zero: bool = False) -> torch.Tensor:
    """A large tensor. On the CPU it is backed by numpy, which asks the kernel for transparent
    huge pages: torch's own allocation of a fresh 48 MB buffer costs ~20 ms of page faults,
    several times the arithmetic done on it."""
    if torch.device(device).type == "cpu":
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        arr = np.zeros(shape, np_dtype) if zero else np.empty(shape, np_dtype)
        return torch.from_numpy(arr)
    return (torch.zeros if zero else torch.empty)(shape, dtype=dtype, device=device)




CHUNK = 1 << 19  # rows per step of the per-pixel work: temporaries stay well under glibc's mmap threshold


def interp_faces(table: torch.Tensor, face: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Barycentric interpolation from a per-face table [F, 3 * C] laid out as
    ``(a0, a1 - a0, a2 - a0)`` (see :func:`corner_table`): ``a0 + b1 (a1 - a0) + b2 (a2 - a0)``
    = ``sum_k b_k a_k`` for each row of ``face`` [M] and ``bary`` [M, 3] -> [M, C]."""
    C = table.shape[1] // 3
    vals = table.index_select(0, face)  # [M, 3C]
    out = torch.addcmul(vals[:, :C], vals[:, C:2 * C], bary[:, 1:2])
    return out.addcmul_(vals[:, 2 * C:], bary[:, 2:3])


def corner_table(attr: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Per-vertex ``attr`` [V, C] -> the [F, 3C] table ``(a0, a1 - a0, a2 - a0)`` of :func:`interp_faces`."""
    a = attr[faces.long()]  # [F, 3, C]
    return torch.cat([a[:, 0], a[:, 1] - a[:, 0], a[:, 2] - a[:, 0]], 1).contiguous()


def scatter_image(values: torch.Tensor, pix: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Compact per-pixel values [M, C] -> image [H, W, C], zero elsewhere."""
    out = alloc((H * W, values.shape[1]), values.dtype, values.device, zero=True)
    out.index_copy_(0, pix, values)
    return out.view(H, W, values.shape[1])


def _out_image(out: Optional[torch.Tensor], H: int, W: int, C: int, device) -> torch.Tensor:
    if out is None:
        return alloc((H, W, C), torch.float32, device)
    if tuple(out.shape) != (H, W, C) or out.dtype != torch.float32 or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous float32 tensor of shape {[H, W, C]}, got "
                         f"{out.dtype} {list(out.shape)}")
    return out


def interp_image(table: torch.Tensor, r: "Raster", normalize: bool = False,
                 rotate: Optional[torch.Tensor] = None, fill: Optional[torch.Tensor] = None,
                 out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Interpolate a corner table over a raster's covered pixels straight into an [H, W, C] image
    (chunked; optionally unit-normalised and/or multiplied by ``rotate.T``); background 0 or
    ``fill`` [C]; written into ``out`` when given."""
    H, W = r.resolution
    C = table.shape[1] // 3
    out = _out_image(out, H, W, C, table.device).view(H * W, C)
    if fill is None:
        out.zero_()
    else:
        out.copy_(fill.to(out.dtype).expand(H * W, C))
    for s in range(0, r.pix.numel(), CHUNK):
        v = interp_faces(table, r.face[s:s + CHUNK], r.bary[s:s + CHUNK])
        if normalize:
            v.div_(torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp_min_(1e-12))
        if rotate is not None:
            v = v @ rotate.T
        out.index_copy_(0, r.pix[s:s + CHUNK], v)
    return out.view(H, W, C)


def bilinear_sample(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` [H, W, C] at pixel coordinates ``x`` (column), ``y`` (row) [M] (pixel
    centres at integers, clamped to the border) -> [M, C]. Gathers from a channels-last layout."""
    H, W, C = image.shape
    flat = image.reshape(H * W, C)
    x = x.clamp(0, W - 1)
    y = y.clamp(0, H - 1)
    x0f = x.floor()
    y0f = y.floor()
    # weights materialised per channel: torch.lerp with a broadcast [M, 1] weight is several times
    # slower than with a contiguous [M, C] one (same values, same results)
    fx = (x - x0f).unsqueeze(1).expand(-1, C).contiguous()
    fy = (y - y0f).unsqueeze(1).expand(-1, C).contiguous()
    x0 = x0f.long()
    y0 = y0f.long()
    x1 = (x0 + 1).clamp_max(W - 1)
    y1 = (y0 + 1).clamp_max(H - 1)
    r0 = y0 * W
    r1 = y1 * W
    top = torch.lerp(flat.index_select(0, r0 + x0), flat.index_select(0, r0 + x1), fx)
    bot = torch.lerp(flat.index_select(0, r1 + x0), flat.index_select(0, r1 + x1), fx)
    return torch.lerp(top, bot, fy)


class _MeshTensors(NamedTuple):
    pos_idx: torch.Tensor  # int32 [F, 3]
    clip_w: torch.Tensor  # float32 [V, 4] homogeneous positions (w = 1)
    pos_table: torch.Tensor  # float32 [F, 9] corner positions (see corner_table)
    normal_table: torch.Tensor  # float32 [F, 9] corner vertex normals
    uv_idx: Optional[torch.Tensor]
    uv_clip: Optional[torch.Tensor]  # float32 [T, 4] (2u - 1, 1 - 2v, 0, 1)
    uv_table: Optional[torch.Tensor]  # float32 [F, 6]


class Renderer:
    """Renders one :class:`~texgen.mesh.Mesh` on one torch device.

    Args:
        mesh: the mesh (world frame of :mod:`texgen.camera`); may be replaced later via ``.mesh``.
        device: torch device for all tensors ("cpu", "npu:0", "cuda", ...).
        backend: render_npu backend, "auto" resolved by :func:`render_npu.resolve_backend`.
        cache: a :class:`RasterCache` to share (default: a new one).
    """

    def __init__(self, mesh: Mesh, device: Union[str, torch.device] = "cpu", backend: str = "auto",
                 cache: Optional[RasterCache] = None):
        self.device = torch.device(device)
        self.backend = resolve_backend(backend, self.device)
        self.cache = cache if cache is not None else RasterCache()
        self._lock = threading.Lock()
        self._tensors: Optional[Tuple[Tuple[int, int], _MeshTensors]] = None
        self.mesh = mesh

    # -- mesh tensors -----------------------------------------------------------------------------
    def _mesh_tensors(self) -> _MeshTensors:
        mesh = self.mesh
        ident = (mesh.uid, mesh.version)
        with self._lock:
            if self._tensors is not None and self._tensors[0] == ident:
                return self._tensors[1]
            dev = self.device
            pos = torch.from_numpy(np.array(mesh.pos, np.float32)).to(dev)  # normalised frame: float32 is exact enough
            pos_idx = torch.from_numpy(np.array(mesh.pos_idx)).to(dev)
            vn = torch.from_numpy(vertex_normals(mesh.pos, mesh.pos_idx)).to(dev)
            pl = pos_idx.long()
            clip_w = torch.cat([pos, torch.ones_like(pos[:, :1])], 1)
            uv_idx = uv_clip = uv_table = None
            if mesh.has_uv:
                uv = torch.from_numpy(np.array(mesh.uv)).to(dev)
                uv_idx = torch.from_numpy(np.array(mesh.uv_idx)).to(dev)
                uv_clip = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2, torch.zeros_like(uv[:, 0]),
                                       torch.ones_like(uv[:, 0])], 1)
                uv_table = corner_table(uv, uv_idx)
            mt = _MeshTensors(pos_idx, clip_w, corner_table(pos, pl), corner_table(vn, pl), uv_idx, uv_clip, uv_table)
            self._tensors = (ident, mt)
            return mt

    def _key(self, view: Hashable, hw: Tuple[int, int]) -> RasterKey:
        return RasterKey(self.mesh.uid, self.mesh.version, view, hw, VIEWPORT, str(self.device), self.backend)

    # -- rasterization ----------------------------------------------------------------------------
    def rasterize(self, camera: Camera, resolution: Resolution) -> Raster:
        """The cached raster of ``camera`` at ``resolution`` (int or (H, W))."""
        hw = as_hw(resolution)
        key = self._key(camera, hw)

        def compute() -> Raster:
            mt = self._mesh_tensors()
            mvp = torch.from_numpy(camera.mvp(hw)).to(self.device, torch.float32)
            clip = mt.clip_w @ mvp.T
            rast, depth = render_npu.rasterize(hw, mt.pos_idx, clip, viewport=VIEWPORT, backend=self.backend)
            return _make_raster(rast[0], depth[0])

        return self.cache.get_or_compute(key, compute)

    def uv_raster(self, texture_size: Resolution) -> Raster:
        """The cached rasterization of the UV layout at texture resolution (see :class:`TexelData`)."""
        hw = as_hw(texture_size)
        if not self.mesh.has_uv:
            raise ValueError(f"{self.mesh.name}: the mesh has no UVs (unwrap it first)")
        key = self._key("uv", hw)

        def compute() -> Raster:
            mt = self._mesh_tensors()
            rast, depth = render_npu.rasterize(hw, mt.uv_idx, mt.uv_clip, viewport=VIEWPORT, backend=self.backend)
            return _make_raster(rast[0], depth[0])

        return self.cache.get_or_compute(key, compute)

    def texels(self, texture_size: Resolution) -> TexelData:
        """Texel -> surface point for the used UV area (cached with the UV raster)."""
        hw = as_hw(texture_size)
        key = self._key(("texels", "uv"), hw)

        def compute() -> TexelData:
            r = self.uv_raster(hw)
            mt = self._mesh_tensors()
            N = r.pix.numel()
            pos = alloc((3, N), torch.float32, self.device)
            nrm = alloc((3, N), torch.float32, self.device)
            for s in range(0, N, CHUNK):
                f, b = r.face[s:s + CHUNK], r.bary[s:s + CHUNK]
                pos[:, s:s + CHUNK] = interp_faces(mt.pos_table, f, b).T
                n = interp_faces(mt.normal_table, f, b)
                nrm[:, s:s + CHUNK] = n.div_(torch.linalg.vector_norm(n, dim=1, keepdim=True).clamp_min_(1e-12)).T
            return TexelData(r.mask, r.pix, r.face, pos, nrm)

        return self.cache.get_or_compute(key, compute)

    # -- maps -------------------------------------------------------------------------------------
    def mask(self, camera: Camera, resolution: Resolution) -> torch.Tensor:
        """bool [H, W]: pixels covered by the mesh (shared with the cache: do not modify)."""
        return self.rasterize(camera, resolution).mask

    def depth_map(self, camera: Camera, resolution: Resolution, linear: bool = True) -> torch.Tensor:
        """float32 [H, W]: distance along the viewing axis (world units; ``linear=False``: NDC z/w),
        0 on the background."""
        r = self.rasterize(camera, resolution)
        if not linear:
            return r.depth
        return torch.where(r.mask, camera.linear_depth(r.depth), torch.zeros((), device=self.device))

    def position_map(self, camera: Camera, resolution: Resolution, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """float32 [H, W, 3]: world position of the visible surface (mesh's normalised frame), 0 on
        the background. Unprojected from the depth map (exact up to float rounding: the depth is
        linear in screen space on each triangle). ``out``: write into this [H, W, 3] tensor."""
        r = self.rasterize(camera, resolution)
        H, W = r.resolution
        dev = self.device
        right, up, back = camera.basis()
        X = torch.linspace(-1.0, 1.0, W, dtype=torch.float64)  # NDC at pixel centres (align_corners)
        Y = torch.linspace(-1.0, 1.0, H, dtype=torch.float64)
        aspect = W / H
        out = _out_image(out, H, W, 3, dev)
        if camera.is_ortho:
            hw = camera.ortho_half_width
            col = X[:, None] * torch.from_numpy(right * hw * aspect)[None]  # [W, 3]
            row = Y[:, None] * torch.from_numpy(-up * hw)[None] + torch.from_numpy(camera.position)[None]  # [H, 3]
            along = torch.from_numpy(-back)
        else:
            t = math.tan(math.radians(camera.fov) / 2)
            col = X[:, None] * torch.from_numpy(right * t * aspect)[None]
            row = Y[:, None] * torch.from_numpy(-up * t)[None] - torch.from_numpy(back)[None]  # ray per unit depth
        torch.add(row.float().to(dev)[:, None, :], col.float().to(dev)[None, :, :], out=out)
        dist = camera.linear_depth(r.depth).mul_(r.mask).unsqueeze(2)
        if camera.is_ortho:  # P = c + X + Y - dist * back
            out.mul_(r.mask.unsqueeze(2)).addcmul_(dist, along.float().to(dev))
        else:  # P = cam + dist * ray
            out.mul_(dist).addcmul_(r.mask.unsqueeze(2).float(), torch.from_numpy(camera.position).float().to(dev))
        return out

    def normal_map(self, camera: Camera, resolution: Resolution, space: str = "world",
                   out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """float32 [H, W, 3]: unit interpolated vertex normals, 0 on the background.

        ``space="world"``: world axes (+Y up). ``space="camera"``: (right, up, towards viewer), so a
        surface facing the camera is (0, 0, 1); encode as colours with ``(n + 1) / 2``. ``out``: write
        into this [H, W, 3] tensor."""
        if space not in ("world", "camera"):
            raise ValueError(f"space must be 'world' or 'camera', got {space!r}")
        r = self.rasterize(camera, resolution)
        R = None
        if space == "camera":
            R = torch.from_numpy(np.stack(camera.basis())).to(self.device, torch.float32)
        return interp_image(self._mesh_tensors().normal_table, r, normalize=True, rotate=R, out=out)

    def uv_map(self, camera: Camera, resolution: Resolution) -> torch.Tensor:
        """float32 [H, W, 2]: interpolated (u, v) of the visible surface, 0 on the background."""
        mt = self._mesh_tensors()
        if mt.uv_table is None:
            raise ValueError(f"{self.mesh.name}: the mesh has no UVs")
        return interp_image(mt.uv_table, self.rasterize(camera, resolution))

    def render_textured(self, camera: Camera, resolution: Resolution, texture=None,
                        background: Sequence[float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
        """float32 [H, W, 3] in [0, 1]: the mesh's colour (``texture`` or ``mesh.texture`` looked up
        bilinearly, texel centres at ``u = col / (W-1)``, ``v = 1 - row / (H-1)``, repeating when
        the UVs leave [0, 1]; else the mesh's vertex colours), unlit, on ``background``. For
        previews, checks and texture transfer."""
        mesh = self.mesh
        r = self.rasterize(camera, resolution)
        H, W = r.resolution
        mt = self._mesh_tensors()
        if texture is not None:
            tex = texture if isinstance(texture, torch.Tensor) else torch.from_numpy(np.array(texture, np.float32))
            tex = tex.to(self.device, torch.float32)[..., :3].contiguous()
        else:
            tex = self._texture_tensor()
        if tex is not None and mt.uv_table is not None:
            Ht, Wt = tex.shape[:2]

            wrap = bool(mesh.uv.min() < -1e-6 or mesh.uv.max() > 1 + 1e-6)  # glTF's default sampler repeats

            def colour(face, bary):
                uv = interp_faces(mt.uv_table, face, bary)
                if wrap:
                    uv = uv - uv.floor()
                return bilinear_sample(tex, uv[:, 0].mul_(Wt - 1), uv[:, 1].neg_().add_(1).mul_(Ht - 1))
        elif mesh.vertex_colors is not None:
            vc = torch.from_numpy(np.array(mesh.vertex_colors)).to(self.device)
            table = corner_table(vc, mt.pos_idx)

            def colour(face, bary):
                return interp_faces(table, face, bary)
        else:
            raise ValueError(f"{mesh.name}: nothing to render: no texture with UVs and no vertex colours")
        out = alloc((H * W, 3), torch.float32, self.device)
        out.copy_(torch.tensor(background, dtype=torch.float32, device=self.device).expand(H * W, 3))
        for s in range(0, r.pix.numel(), CHUNK):
            out.index_copy_(0, r.pix[s:s + CHUNK], colour(r.face[s:s + CHUNK], r.bary[s:s + CHUNK]).clamp_(0, 1))
        return out.view(H, W, 3)

    def _texture_tensor(self) -> Optional[torch.Tensor]:
        mesh = self.mesh
        if mesh.texture is None:
            return None
        ident = (mesh.uid, mesh.appearance_version, id(mesh.texture))
        with self._lock:
            cached = getattr(self, "_tex_cache", None)
            if cached is not None and cached[0] == ident:
                return cached[1]
            t = torch.from_numpy(np.array(mesh.texture, np.float32)).to(self.device)
            self._tex_cache = (ident, t)
            return t
