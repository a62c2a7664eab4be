"""Run Hunyuan3D-2 (``hy3dgen`` 2.0.2) and Hunyuan3D-2.1 (``hy3dpaint``) texture code on render_npu.

Three lines in the user's script, before or after Hunyuan3D is imported::

    import render_npu.hunyuan3d
    render_npu.hunyuan3d.enable(accelerate=True)
    # ... the unmodified Hunyuan3D script ...

:func:`enable` maps the modules Hunyuan3D imports to render_npu's fronts through ``sys.modules``
(no installed file changes):

* ``custom_rasterizer`` and ``custom_rasterizer_kernel`` -> :mod:`render_npu.custom_rasterizer`;
* ``hy3dgen.texgen.differentiable_renderer.mesh_processor`` (2.0) and
  ``DifferentiableRenderer.mesh_inpaint_processor`` (2.1, also under ``hy3dpaint.``) ->
  :mod:`render_npu.mesh_processor` (``method="smooth"`` and ``"forward"``).

With ``accelerate=True`` the hot methods of both versions' ``MeshRender`` (:data:`ACCELERATED`)
and the pipelines' ``bake_from_multiview`` (:data:`PIPELINE_MODULES`) are replaced by
implementations with the same signatures and return types: one raster per
(mesh, camera, resolution) in a bounded cache shared by the renders and the back-projection, the
compiled interpolate and bilinear splat (``csrc/``), OpenCV morphology in place of 17x17
convolutions, compiled mesh inpaint, views baked in threads and merged in view order. What is
kept from upstream, what differs and why: docs/hunyuan3d.md.

:func:`disable` undoes all of it. Both are idempotent and thread-safe.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import sys
import threading
import types
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ._memory import plain_empty, plain_zeros
from ._threads import one_intra_op_thread, split_intra_op_threads

__all__ = ["enable", "disable", "is_enabled", "import_mesh_render", "ACCELERATED", "ALIASES", "RENDER_MODULES",
           "PIPELINE_MODULES"]

#: module name -> render_npu module that stands in for it
ALIASES: Dict[str, str] = {
    "custom_rasterizer": "render_npu.custom_rasterizer",
    "custom_rasterizer_kernel": "render_npu.custom_rasterizer",
    "hy3dgen.texgen.differentiable_renderer.mesh_processor": "render_npu.mesh_processor",
    "DifferentiableRenderer.mesh_inpaint_processor": "render_npu.mesh_processor",
    "hy3dpaint.DifferentiableRenderer.mesh_inpaint_processor": "render_npu.mesh_processor",
}
#: modules holding a ``MeshRender`` class -> Hunyuan3D version
RENDER_MODULES: Dict[str, str] = {
    "hy3dgen.texgen.differentiable_renderer.mesh_render": "2.0",
    "DifferentiableRenderer.MeshRender": "2.1",
    "hy3dpaint.DifferentiableRenderer.MeshRender": "2.1",
}
#: modules holding the pipeline class whose ``bake_from_multiview`` is replaced -> (version, class)
PIPELINE_MODULES: Dict[str, Tuple[str, str]] = {
    "hy3dgen.texgen.pipelines": ("2.0", "Hunyuan3DPaintPipeline"),
    "utils.pipeline_utils": ("2.1", "ViewProcessor"),
    "hy3dpaint.utils.pipeline_utils": ("2.1", "ViewProcessor"),
}
#: MeshRender methods replaced by ``enable(accelerate=True)``, per version
ACCELERATED: Dict[str, Tuple[str, ...]] = {
    "2.0": ("render_normal", "render_position", "render_depth", "uv_feature_map", "back_project",
            "bake_texture", "fast_bake_texture", "uv_inpaint"),
    "2.1": ("render_normal", "render_position", "render_alpha", "uv_feature_map", "extract_textiles",
            "back_project", "bake_texture", "fast_bake_texture", "uv_inpaint"),
}

_lock = threading.RLock()
_enabled = False
_accelerate = False
_saved_modules: Dict[str, Any] = {}  # alias name -> previous sys.modules entry (or _MISSING)
_patches: List[Tuple[Any, str, Any]] = []  # (object, attribute, previous value or _MISSING)
_finder: Optional["_Finder"] = None
_MISSING = object()


# -- public API ----------------------------------------------------------------------------------------
def enable(accelerate: bool = True) -> None:
    """Route Hunyuan3D's imports to render_npu (see the module docstring). ``accelerate``: also
    replace ``MeshRender``'s hot methods, now for classes already imported and at import time for
    the others. Calling it again with another ``accelerate`` switches modes."""
    global _enabled, _accelerate, _finder
    if not isinstance(accelerate, bool):
        raise TypeError(f"accelerate must be a bool, got {type(accelerate).__name__}")
    with _lock:
        if _enabled:
            if accelerate == _accelerate:
                return
            disable()
        for name, target in ALIASES.items():
            _saved_modules[name] = sys.modules.get(name, _MISSING)
            sys.modules[name] = importlib.import_module(target)
        _enabled, _accelerate = True, accelerate
        _finder = _Finder()
        sys.meta_path.insert(0, _finder)
        for name in list(RENDER_MODULES) + list(PIPELINE_MODULES):
            module = sys.modules.get(name)
            if module is not None:
                _patch_module(module, name)


def disable() -> None:
    """Undo :func:`enable`: previous ``sys.modules`` entries, module globals and ``MeshRender``
    methods come back. ``MeshRender`` objects created while enabled keep the ``raster`` module
    they were given (render_npu's front)."""
    global _enabled, _accelerate, _finder
    with _lock:
        if not _enabled:
            return
        if _finder is not None and _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        _finder = None
        for obj, attr, old in reversed(_patches):
            if old is _MISSING:
                try:
                    delattr(obj, attr)
                except AttributeError:
                    pass
            else:
                setattr(obj, attr, old)
        _patches.clear()
        for name, old in _saved_modules.items():
            if old is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
        _saved_modules.clear()
        _accels.clear()
        _enabled = _accelerate = False


def is_enabled() -> Tuple[bool, bool]:
    """``(enabled, accelerate)``."""
    return _enabled, _accelerate


def import_mesh_render(version: str = "2.0") -> types.ModuleType:
    """Import the module holding Hunyuan3D's ``MeshRender`` without running ``hy3dgen.texgen``'s
    package ``__init__`` (which imports diffusers and the models): ``"2.0"`` needs ``hy3dgen``
    installed (``pip install --no-deps hy3dgen==2.0.2``), ``"2.1"`` a Hunyuan3D-2.1 checkout's
    ``hy3dpaint`` folder on ``sys.path``. For 2.0, an empty ``hy3dgen.texgen`` package stands in
    when the real one is not imported yet (the real one cannot be imported afterwards in this
    process). Call :func:`enable` first: MeshRender imports ``custom_rasterizer``."""
    if version == "2.0":
        name = "hy3dgen.texgen.differentiable_renderer.mesh_render"
        if "hy3dgen.texgen" not in sys.modules:
            spec = importlib.util.find_spec("hy3dgen")
            if spec is None or not spec.submodule_search_locations:
                raise ImportError("hy3dgen is not installed: pip install --no-deps hy3dgen==2.0.2")
            stub = types.ModuleType("hy3dgen.texgen")
            stub.__path__ = [os.path.join(list(spec.submodule_search_locations)[0], "texgen")]
            stub.__package__ = "hy3dgen.texgen"
            importlib.import_module("hy3dgen")
            sys.modules["hy3dgen.texgen"] = stub
        return importlib.import_module(name)
    if version == "2.1":
        return importlib.import_module("DifferentiableRenderer.MeshRender")
    raise ValueError(f"version must be '2.0' or '2.1', got {version!r}")


# -- import hook: patch MeshRender modules imported after enable() --------------------------------------
class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in RENDER_MODULES and name not in PIPELINE_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(spec.loader, name)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, inner, name: str):
        self.inner, self.name = inner, name

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        with _lock:
            if _enabled:
                _patch_module(module, self.name)

    def __getattr__(self, item):  # get_source, get_filename, ... of the real loader
        return getattr(self.inner, item)


def _set(obj: Any, attr: str, value: Any) -> None:
    old = obj.__dict__.get(attr, _MISSING) if isinstance(obj, type) else getattr(obj, attr, _MISSING)
    _patches.append((obj, attr, old))
    setattr(obj, attr, value)


def _patch_module(module: types.ModuleType, name: str) -> None:
    if getattr(module, "_render_npu_patched", False):
        return
    if name in PIPELINE_MODULES:
        version, cls_name = PIPELINE_MODULES[name]
        cls = getattr(module, cls_name, None)
        _set(module, "_render_npu_patched", True)
        if _accelerate and isinstance(cls, type) and "bake_from_multiview" in cls.__dict__:
            _set(cls, "bake_from_multiview", _wrap(_pipeline_bake(version), cls.__dict__["bake_from_multiview"],
                                                   "bake_from_multiview"))
        return
    version = RENDER_MODULES[name]
    from . import mesh_processor

    _set(module, "_render_npu_patched", True)
    if hasattr(module, "meshVerticeInpaint") or version == "2.1":  # bound at upstream import time
        _set(module, "meshVerticeInpaint", mesh_processor.meshVerticeInpaint)
    cls = getattr(module, "MeshRender", None)
    if _accelerate and isinstance(cls, type):
        methods = _methods(module, version)
        for name in ACCELERATED[version]:
            if name in methods and name in cls.__dict__:
                original = cls.__dict__[name]
                _set(cls, name, _wrap(methods[name], original, name))


def _pipeline_bake(version: str) -> Callable:
    """The pipelines' ``bake_from_multiview`` (2.0: ``Hunyuan3DPaintPipeline``, 2.1:
    ``ViewProcessor``): back_project every view, weight ``w * cos ** bake_exp``, fast_bake_texture,
    ``trust > 1e-8`` -- with the views baked in threads (results merged in view order), and 2.1's
    merge done once instead of after every view (its last merge is the result)."""

    def bake_from_multiview(self, original, views, camera_elevs, camera_azims, view_weights, *args, **kwargs):
        render = self.render
        rmod = type(render).__module__
        method = (args[0] if args else kwargs.get("method", "graphcut")) if version == "2.0" else "fast"
        mode = getattr(render, "bake_mode", None)
        if (method != "fast" or rmod not in RENDER_MODULES or sys.modules.get(rmod) is None
                or not (mode == "linear" or (RENDER_MODULES[rmod] == "2.1" and mode == "back_sample"))):
            return original(self, views, camera_elevs, camera_azims, view_weights, *args, **kwargs)
        from PIL import Image

        dev = _device(render)
        items = [(v if isinstance(v, Image.Image) else _image_tensor(v, dev), e, a)  # PIL: converted at the bake
                 for v, e, a in zip(views, camera_elevs, camera_azims)]
        results = _bake_views(sys.modules[rmod], RENDER_MODULES[rmod], render, items, None, None)
        exp = self.config.bake_exp
        textures = [r[0] for r in results]
        cos_maps = [w * (r[1] ** exp) for r, w in zip(results, view_weights)]
        texture, trust = render.fast_bake_texture(textures, cos_maps)
        return texture, trust > 1e-8

    return bake_from_multiview


def _wrap(fast: Callable, original: Callable, name: str) -> Callable:
    def method(self, *args, **kwargs):
        return fast(self, original, *args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"MeshRender.{name}"
    method.__doc__ = (f"render_npu-accelerated ``MeshRender.{name}`` (same signature and results; "
                      f"see render_npu.hunyuan3d and docs/hunyuan3d.md).\n\n" + (original.__doc__ or ""))
    method.__wrapped__ = original
    return method


# -- per-MeshRender state: the raster cache ------------------------------------------------------------
class _Entry:
    """One view (camera, resolution) of one mesh: its raster and what is derived from it."""

    def __init__(self, **items):
        self.__dict__.update(items)
        self.lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return sum(v.element_size() * v.nelement() for v in self.__dict__.values() if isinstance(v, torch.Tensor))


class _Accel:
    def __init__(self):
        from texgen.render import RasterCache

        self.key: Any = None
        self.refs: Tuple = ()
        # 2048^2 views hold ~150 MB each (raster + bake geometry): 12 views, both resolutions' renders
        self.cache = RasterCache(max_entries=32, max_bytes=3 << 30)
        self.lock = threading.Lock()
        self.mesh: Dict[str, Any] = {}


_accels: "weakref.WeakKeyDictionary[Any, _Accel]" = weakref.WeakKeyDictionary()


def _mesh_key(mr) -> Tuple[Tuple, Tuple]:
    refs, key = [], []
    for name in ("vtx_pos", "pos_idx", "vtx_uv", "uv_idx"):
        t = getattr(mr, name, None)
        refs.append(t)
        # identity + in-place version: set_mesh makes new tensors, in-place edits bump _version
        key.append(None if t is None else (id(t), t._version, t.data_ptr(), tuple(t.shape), str(t.device)))
    key.append(getattr(mr, "scale_factor", None))
    return tuple(key), tuple(refs)


def _acc(mr) -> _Accel:
    with _lock:
        a = _accels.get(mr)
        if a is None:
            a = _accels[mr] = _Accel()
    key, refs = _mesh_key(mr)
    with a.lock:
        if a.key != key:
            a.cache.clear()
            a.mesh = {}
            a.key, a.refs = key, refs  # the refs keep ids from being reused while cached
    return a


def _device(mr) -> torch.device:
    return mr.vtx_pos.device


def _hw(resolution, default) -> Tuple[int, int]:
    if resolution is None:
        resolution = default
    if isinstance(resolution, (int, float)):
        return int(resolution), int(resolution)
    h, w = resolution
    return int(h), int(w)


def _mesh_item(mr, a: _Accel, name: str, fn: Callable[[], Any]) -> Any:
    value = a.mesh.get(name)
    if value is None:
        value = a.mesh[name] = fn()
    return value


def _view(mod, mr, elev, azim, camera_distance, center, hw: Tuple[int, int]) -> _Entry:
    """The raster of one view, cached by (mesh, camera, resolution)."""

    a = _acc(mr)
    r_mv = mod.get_mv_matrix(elev=elev, azim=azim,
                             camera_distance=mr.camera_distance if camera_distance is None else camera_distance,
                             center=center)
    proj = np.asarray(mr.camera_proj_mat)
    key = ("view", r_mv.tobytes(), str(r_mv.dtype), proj.tobytes(), str(proj.dtype), hw)

    def compute() -> _Entry:
        # upstream's own transforms, with one intra-op thread: a [V, 4] @ [4, 4] matmul took 16 ms
        # on 2 threads against 0.2 ms on one (the same bits: checked in tests/test_hunyuan3d.py)
        with _small_ops() if mr.vtx_pos.device.type == "cpu" else contextlib.nullcontext():
            pos_camera = mod.transform_pos(r_mv, mr.vtx_pos, keepdim=True)
            pos_clip = mod.transform_pos(proj, pos_camera)
        pos = pos_clip[0] if pos_clip.dim() == 3 else pos_clip
        rast = _raster(hw, mr.pos_idx, pos.float())
        return _Entry(r_mv=r_mv, proj=proj, pos_camera=pos_camera, pos_clip=pos_clip, rast=rast, hw=hw)

    return a.cache.get_or_compute(key, compute)


def _raster(hw: Tuple[int, int], faces: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """The rast [1, H, W, 4] of a cached view or UV raster ("align_corners", as MeshRender). On the
    CPU into lazily zeroed pages that only the covered pixels touch (``out_zeroed``): a 2048²
    raster is 64 MB, and its first-touch page faults cost more than rasterizing it (the default
    output asks for transparent huge pages: 30-100 ms a raster measured after a pipeline's memory
    churn here, against ~30 ms this way)."""
    import render_npu

    if pos.device.type != "cpu":
        return render_npu.rasterize(hw, faces, pos, viewport="align_corners").rast
    H, W = hw
    out = torch.from_numpy(plain_zeros((1, H, W, 4), np.float32)), torch.from_numpy(plain_zeros((1, H, W), np.float32))
    return render_npu.rasterize(hw, faces, pos, viewport="align_corners", out=out, out_zeroed=True).rast


def _interp(attr: torch.Tensor, rast: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[V, C] at a [1, H, W, 4] rast -> [1, H, W, C]: the same kernel, so the same bits, as
    MeshRender's raster_interpolate through the custom_rasterizer front."""
    import render_npu

    return render_npu.interpolate(attr, rast, faces)


_scratch_local = threading.local()


def _scratch(name: str, shape, device) -> torch.Tensor:
    """A float32 buffer of ``shape`` owned by the calling thread, reused across calls with the
    same name (its contents are garbage). CPU: numpy-backed; elsewhere a new tensor."""
    if torch.device(device).type != "cpu":
        return torch.empty(tuple(shape), dtype=torch.float32, device=device)
    bufs = getattr(_scratch_local, "bufs", None)
    if bufs is None:
        bufs = _scratch_local.bufs = {}
    n = int(np.prod(shape))
    buf = bufs.get(name)
    if buf is None or buf.size < n or buf.size > 2 * n:
        buf = bufs[name] = np.empty(n, np.float32)
    return torch.from_numpy(buf[:n]).view(tuple(shape))


def _face_normals(pos3: torch.Tensor, pos_idx: torch.Tensor) -> torch.Tensor:
    """Unit face normals [F, 3] as MeshRender computes them (cross product of the edges from corner 0)."""
    import torch.nn.functional as F

    idx = pos_idx.long()
    v0, v1, v2 = pos3[idx[:, 0]], pos3[idx[:, 1]], pos3[idx[:, 2]]
    return F.normalize(torch.cross(v1 - v0, v2 - v0, dim=-1), dim=-1)


def _vertex_normals(mr, face_normals: torch.Tensor) -> torch.Tensor:
    """Area-unweighted mean of the face normals at each vertex, with the library MeshRender uses
    (trimesh), so the normals are the same bits; its face-to-vertex sparse matrix is built once
    per mesh instead of once per call."""
    import trimesh

    a = _acc(mr)
    faces = _mesh_item(mr, a, "faces_np", lambda: mr.pos_idx.cpu().numpy())
    sparse = _mesh_item(mr, a, "vertex_face_sparse",
                        lambda: trimesh.geometry.index_sparse(mr.vtx_pos.shape[0], faces))
    vn = trimesh.geometry.mean_vertex_normals(vertex_count=mr.vtx_pos.shape[0], faces=faces,
                                              face_normals=face_normals.cpu().numpy(), sparse=sparse)
    return torch.from_numpy(np.asarray(vn)).float().to(_device(mr)).contiguous()


def _camera_normals(mr, e: _Entry, shader: str) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The view's face normals [F, 3] and (not for face shading) vertex normals [V, 3] in camera
    space, computed once per view and kept in the entry (render_normal and the bake both read
    them). The caller holds ``e.lock``."""
    with _small_ops():
        if not hasattr(e, "face_normals_cam"):
            e.face_normals_cam = _face_normals(_camera_pos3(e), mr.pos_idx)
            e.vertex_normals_cam = None
        if shader != "face" and e.vertex_normals_cam is None:
            e.vertex_normals_cam = _vertex_normals(mr, e.face_normals_cam)
    return e.face_normals_cam, e.vertex_normals_cam


def _small_ops():
    """A context for torch ops on per-vertex or per-face arrays (tens of thousands of rows): one
    intra-op thread on the CPU (render_npu._threads: a 1 ms face-normal computation took 70 ms
    with two on a busy machine)."""
    return one_intra_op_thread("cpu")


def _camera_pos3(entry: _Entry) -> torch.Tensor:
    pc = entry.pos_camera
    return pc[:, :3] / pc[:, 3:4]


def _format(image: torch.Tensor, return_type: str, squeeze: bool = False, offset: float = 0.0, scale: float = 1.0):
    """MeshRender's return types for a map of ours, after ``(image + offset) * scale`` in float32
    (the normal render's ``(n + 1) * 0.5``; (0, 1) changes nothing). "pl": bytes of ``x * 255``
    truncated to uint8 as upstream; on the CPU one compiled pass (``floats_to_u8``), which leaves
    ``image`` as it is; otherwise ``image`` itself is scaled in place."""
    if return_type == "pl":
        from PIL import Image

        arr = image.squeeze(-1) if squeeze else image
        ext = _compiled()
        if ext is not None and arr.device.type == "cpu" and arr.dtype == torch.float32 and arr.is_contiguous():
            u8 = plain_empty(arr.shape, np.uint8)
            ext.floats_to_u8(arr.detach().numpy().reshape(-1), offset, scale, u8.reshape(-1), torch.get_num_threads())
            return Image.fromarray(u8)
        if (offset, scale) != (0.0, 1.0):
            arr = (arr + offset) * scale
        return Image.fromarray((arr.cpu().numpy() * 255).astype(np.uint8))
    if (offset, scale) != (0.0, 1.0):
        image = image.add_(offset).mul_(scale)
    return image.cpu().numpy() if return_type == "np" else image


def _interp_bg(attr: torch.Tensor, rast: torch.Tensor, faces: torch.Tensor, bg_color,
               scratch: Optional[str] = None) -> torch.Tensor:
    """``interp * mask + bg * (1 - mask)`` for MeshRender's 0/1 mask, as the interpolation writing
    ``bg`` on empty pixels (CPU: one compiled pass; elsewhere a select). The same values for finite
    inputs (``v * 1 + bg * 0 == v``; a -0.0 may stay -0.0 where the blend gives +0.0).
    ``scratch``: write into the thread's scratch buffer of that name (a result not returned)."""
    ext = _compiled()
    bg = torch.tensor(bg_color, dtype=torch.float32)
    if (ext is not None and rast.device.type == "cpu" and attr.dtype == torch.float32 and rast.is_contiguous()
            and bg.numel() == attr.shape[-1]):
        a = attr.detach().contiguous()
        B, H, W = rast.shape[:3]
        shape = (B * H * W, a.shape[-1])
        out = _scratch(scratch, shape, "cpu").numpy() if scratch else plain_empty(shape, np.float32)
        faces32 = faces.detach().to(torch.int32).contiguous()
        r = rast.detach().numpy()
        bad = ext.interpolate(a.numpy()[None], r, r[..., 3], faces32.numpy(), B, torch.get_num_threads(),
                              out=out, background=bg.numpy())
        if bad < 0:
            return torch.from_numpy(out).view(B, H, W, -1)
    values = _interp(attr, rast, faces)  # (raises the ValueError for bad ids)
    return torch.where(rast[..., 3:] > 0, values, bg.to(values.device))


# -- accelerated methods ---------------------------------------------------------------------------------
def _methods(mod, version: str) -> Dict[str, Callable]:
    """The accelerated MeshRender methods for one upstream module (``mod`` supplies the camera
    helpers, so the matrices are upstream's own)."""

    def render_normal(self, original, elev, azim, camera_distance=None, center=None, resolution=None,
                      bg_color=[1, 1, 1], use_abs_coor=False, normalize_rgb=True, return_type="th"):
        hw = _hw(resolution, self.default_resolution)
        e = _view(mod, self, elev, azim, camera_distance, center, hw)
        shader = getattr(self, "shader_type", "vertex") if version == "2.1" else "vertex"
        if use_abs_coor:
            a = _acc(self)
            fn = _mesh_item(self, a, "face_normals_abs", lambda: _face_normals(self.vtx_pos, self.pos_idx))
            vn = None if shader == "face" else _mesh_item(self, a, "vertex_normals_abs",
                                                          lambda: _vertex_normals(self, fn))
        else:
            with e.lock:
                fn, vn = _camera_normals(self, e, shader)
        if shader == "face":
            out = torch.where(e.rast[..., 3:] > 0, _face_map(fn, e.rast),
                              torch.tensor(bg_color, dtype=torch.float32, device=e.rast.device))
        else:
            # a PIL result only needs the floats until it is made: the thread's scratch buffer
            out = _interp_bg(vn, e.rast, self.pos_idx, bg_color, scratch="render" if return_type == "pl" else None)
        return _format(out[0], return_type, offset=1.0 if normalize_rgb else 0.0, scale=0.5 if normalize_rgb else 1.0)

    def render_position(self, original, elev, azim, camera_distance=None, center=None, resolution=None,
                        bg_color=[1, 1, 1], return_type="th"):
        hw = _hw(resolution, self.default_resolution)
        e = _view(mod, self, elev, azim, camera_distance, center, hw)
        a = _acc(self)
        tex_position = _mesh_item(self, a, "tex_position_render",
                                  lambda: (0.5 - self.vtx_pos[:, :3] / self.scale_factor).contiguous())
        out = _interp_bg(tex_position, e.rast, self.pos_idx, bg_color,
                         scratch="render" if return_type == "pl" else None)
        return _format(out[0], return_type, squeeze=True)

    def render_depth(self, original, elev, azim, camera_distance=None, center=None, resolution=None,
                     return_type="th"):
        hw = _hw(resolution, self.default_resolution)
        e = _view(mod, self, elev, azim, camera_distance, center, hw)
        depth = _interp(_camera_pos3(e)[:, 2:3].contiguous(), e.rast, self.pos_idx)
        visible = torch.clamp(e.rast[..., -1:], 0, 1)
        sel = depth[visible > 0]
        dmax, dmin = sel.max(), sel.min()
        depth = (depth - dmin) / (dmax - dmin) * visible
        return _format(depth[0], return_type, squeeze=True)

    def render_alpha(self, original, elev, azim, camera_distance=None, center=None, resolution=None,
                     return_type="th"):
        if return_type == "pl":
            raise Exception("PIL format not supported for alpha rendering")  # upstream's message and type
        hw = _hw(resolution, self.default_resolution)
        e = _view(mod, self, elev, azim, camera_distance, center, hw)
        return _format(e.rast[..., -1:].long(), return_type)

    def uv_feature_map(self, original, vert_feat, bg=None):
        rast = _uv_raster(self)
        feat = _interp(vert_feat, rast, self.uv_idx)[0]
        if bg is not None:
            visible = torch.clamp(rast[..., -1:], 0, 1)[0]
            feat[(visible == 0).expand_as(feat) if feat.shape[-1] != 1 else visible == 0] = bg
        return feat

    def extract_textiles(self, original):
        return _extract_textiles(self)

    def back_project(self, original, image, elev, azim, camera_distance=None, center=None, method=None):
        method = self.bake_mode if method is None else method
        if method != "linear" and not (version == "2.1" and method == "back_sample"):
            return original(self, image, elev, azim, camera_distance, center, method)
        return _back_project(mod, version, self, image, elev, azim, camera_distance, center, method, threads=None)

    def bake_texture(self, original, colors, elevs, azims, camera_distance=None, center=None, exp=6, weights=None):
        from PIL import Image

        dev = _device(self)
        if isinstance(colors, torch.Tensor) and version == "2.1":
            colors = [colors[i, ...].float().permute(1, 2, 0) for i in range(colors.shape[0])]
        colors = [c if isinstance(c, Image.Image) else _image_tensor(c, dev) for c in colors]  # PIL: at the bake
        if weights is None:  # upstream 2.0.2 iterates range(colors) here (TypeError); 2.1 uses 1.0 per view
            weights = [1.0 for _ in range(len(colors))]
        views = list(zip(colors, elevs, azims))
        results = _bake_views(mod, version, self, views, camera_distance, center)
        textures, cos_maps = [], []
        for (texture, cos_map, _), weight in zip(results, weights):
            textures.append(texture)
            cos_maps.append(weight * (cos_map ** exp))
        return self.fast_bake_texture(textures, cos_maps)

    def fast_bake_texture(self, original, textures, cos_maps):
        merged = _merge_views(self, textures, cos_maps)
        return original(self, textures, cos_maps) if merged is None else merged

    def uv_inpaint(self, original, texture, mask, vertex_inpaint=True, method="NS", return_float=False):
        if version == "2.1" and (method != "NS" or return_float):
            return original(self, texture, mask, vertex_inpaint, method, return_float)
        return _uv_inpaint(self, texture, mask, vertex_inpaint=vertex_inpaint if version == "2.1" else True)

    if version == "2.0":
        uv_inpaint_20 = uv_inpaint

        def uv_inpaint(self, original, texture, mask):  # noqa: F811  (2.0.2's signature)
            return uv_inpaint_20(self, original, texture, mask)

    return {"render_normal": render_normal, "render_position": render_position, "render_depth": render_depth,
            "render_alpha": render_alpha, "uv_feature_map": uv_feature_map, "extract_textiles": extract_textiles,
            "back_project": back_project, "bake_texture": bake_texture, "fast_bake_texture": fast_bake_texture,
            "uv_inpaint": uv_inpaint}


def _face_map(face_normals: torch.Tensor, rast: torch.Tensor) -> torch.Tensor:
    """Per-pixel face normal (2.1's ``shader_type="face"``), 0 where empty: [1, H, W, 3]."""
    ids = rast[..., 3].long()
    out = face_normals[(ids - 1).clamp_min(0)]
    return torch.where((ids > 0).unsqueeze(-1), out, torch.zeros((), dtype=out.dtype, device=out.device))


def _uv_raster(mr) -> torch.Tensor:
    """The texture-space raster (UVs as clip-space x, y; z = 0, w = 1) at ``texture_size``, cached."""

    a = _acc(mr)
    hw = _hw(mr.texture_size, None)

    def compute() -> _Entry:
        uv = mr.vtx_uv * 2 - 1.0
        pos = torch.cat([uv, torch.zeros_like(uv[:, :1]), torch.ones_like(uv[:, :1])], dim=1)
        return _Entry(rast=_raster(hw, mr.uv_idx, pos.float()))

    return a.cache.get_or_compute(("uv", hw), compute).rast


def _image_tensor(image, device) -> torch.Tensor:
    """MeshRender's image conversion: PIL -> /255, numpy as is, 2-D gets a channel; float32 on the
    renderer's device. Upstream divides in float64 and rounds to float32; for the 256 byte values
    float32(x) / 255 rounds to the same floats (checked exhaustively), at a quarter of the cost."""
    from PIL import Image

    if isinstance(image, Image.Image):
        arr = np.array(image)  # a writable copy (PIL's buffer is read-only)
        if arr.dtype == np.uint8:
            image = torch.from_numpy(arr).to(device).float().div_(255)
        else:
            image = torch.tensor(arr / 255.0)
    elif isinstance(image, np.ndarray):
        image = torch.tensor(image)
    if image.dim() == 2:
        image = image.unsqueeze(-1)
    return image.float().to(device)


def _compiled():
    """render_npu's compiled module, or None (then torch ops, as on devices)."""
    from . import _ext

    return _ext.get()


def _on_host(t: torch.Tensor) -> bool:
    """Whether host-only code (OpenCV) may take ``t`` without a device round trip."""
    return t.device.type == "cpu"


def _erode_dilate(visible: torch.Tensor, sketch: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Binary erosion of ``visible`` and dilation of ``sketch`` ([H, W] bool) by a (2k+1)^2 square, the
    image border not counting (what MeshRender's box convolutions with zero padding compute)."""
    size = 2 * k + 1
    if _on_host(visible):
        import cv2

        kernel = np.ones((size, size), np.uint8)
        vis = cv2.erode(visible.numpy().view(np.uint8), kernel) > 0
        sk = cv2.dilate(sketch.numpy().view(np.uint8), kernel) > 0
        return torch.from_numpy(vis), torch.from_numpy(sk)
    import torch.nn.functional as F

    pool = lambda m: F.max_pool2d(m[None, None].float(), size, stride=1, padding=k)[0, 0] > 0  # noqa: E731
    return ~pool(~visible), pool(sketch)


def _bake_geometry(mod, version: str, mr, e: _Entry) -> _Entry:
    """Everything back_project derives from the view and not from the image, cached in the view:
    the eroded visibility, the dilated depth-edge sketch, the pixels that bake, their UVs and
    cosines (and 2.1's depth map). Same operations (and bits) as MeshRender: on the CPU with the
    compiled module, three compiled passes (:func:`_bake_geometry_compiled`); elsewhere torch ops."""
    with e.lock:
        geo = getattr(e, "bake", None)
        if geo is None:
            geo = _bake_geometry_compiled(version, mr, e)
            if geo is None:
                geo = _bake_geometry_torch(version, mr, e)
            e.bake = geo
        return geo


def _bake_settings(version: str, mr) -> Tuple[str, float, int]:
    """(shader type, cosine threshold, unreliable-border kernel size) of a MeshRender."""
    shader = getattr(mr, "shader_type", "vertex") if version == "2.1" else "vertex"
    return shader, float(np.cos(mr.bake_angle_thres / 180 * np.pi)), int(mr.bake_unreliable_kernel_size)


def _visible_and_sketch(version: str, hit: torch.Tensor, depth_u8: np.ndarray, k: int):
    """MeshRender's baking mask from the hit mask [H, W] bool and the uint8 depth image: Canny
    edges of the depth image (the sketch); then, in 2.0 or with a kernel k > 0, the hit mask eroded
    and the sketch dilated by a (2k+1)^2 square, and the sketch taken out of the mask."""
    import cv2

    sketch = torch.from_numpy(cv2.Canny(depth_u8, 30, 80) > 0).to(hit.device)
    if version == "2.0" or k > 0:
        vis, sketch = _erode_dilate(hit, sketch, k)
        return vis & ~sketch, sketch
    return hit.clone(), sketch


def _bake_geometry_compiled(version: str, mr, e: _Entry) -> Optional[_Entry]:
    """:func:`_bake_geometry` in compiled passes (csrc/bake), or None where they do not apply
    (no compiled module, tensors off the CPU, no hit pixel or a bad raster: the torch path then
    runs, and raises what upstream raises). ``view_depth`` interpolates only the depth over the
    image (and makes the edge detector's uint8 image); ``select_samples`` interpolates the UVs and
    normals at the baking pixels only. The same arithmetic as interpolate, so the same bits."""
    ext = _compiled()
    rast = e.rast
    if (ext is None or not hasattr(ext, "view_depth") or not _on_host(rast) or rast.dtype != torch.float32
            or rast.shape[0] != 1 or not rast.is_contiguous() or mr.vtx_uv.dtype != torch.float32):
        return None
    a = _acc(mr)
    H, W = rast.shape[1:3]
    P = H * W
    threads = torch.get_num_threads()
    shader, cos_thres, k = _bake_settings(version, mr)
    fn, vn = _camera_normals(mr, e, shader)
    faces = _mesh_item(mr, a, "pos_idx_i32", lambda: mr.pos_idx.detach().to(torch.int32).contiguous().numpy())
    uv_faces = _mesh_item(mr, a, "uv_idx_i32", lambda: mr.uv_idx.detach().to(torch.int32).contiguous().numpy())
    r = rast.detach().numpy().reshape(P, 4)
    # 2.1's back_sample reads the depth map later: its own array; 2.0's lives in the thread's scratch
    depth = plain_empty((H, W, 1), np.float32) if version == "2.1" else _scratch("depth", (H, W, 1), "cpu").numpy()
    hit, depth_u8 = _scratch_u8("hit", P), _scratch_u8("depth_u8", P)
    z = _camera_pos3(e)[:, 2].detach().float().contiguous().numpy()
    if ext.view_depth(r, faces, z, depth.reshape(P), hit, depth_u8, threads) <= 0:
        return None
    vis, sketch = _visible_and_sketch(version, torch.from_numpy(hit.view(np.bool_).reshape(H, W)),
                                      depth_u8.reshape(H, W), k)
    vis_u8 = vis.numpy().view(np.uint8).reshape(-1)
    n = int(np.count_nonzero(vis_u8))  # (torch's bool sum is ~20x slower)
    # the sketch row of extra is written only where 1: zero pages, untouched in 2.0 (always 0 there)
    idx, coords, extra = plain_empty((n,), np.int64), plain_empty((n, 2), np.float32), plain_zeros((2, n), np.float32)
    if shader == "face":
        normal = dict(normal=_face_map(fn, rast)[0].contiguous().numpy().reshape(P, 3))
    else:
        normal = dict(vtx_normal=vn.contiguous().numpy(), normal_faces=faces)
    found = ext.select_samples(vis_u8, sketch.numpy().view(np.uint8).reshape(-1), None, None, idx, coords, extra,
                               threads, rast=r, uv_faces=uv_faces, vtx_uv=mr.vtx_uv.detach().contiguous().numpy(),
                               cos_thres=cos_thres, **normal)
    if found != n:
        raise RuntimeError(f"select_samples: {found} visible pixels, expected {n}")
    return _Entry(idx=torch.from_numpy(idx), coords=torch.from_numpy(coords), extra=torch.from_numpy(extra),
                  sketch=sketch, visible=vis, depth=torch.from_numpy(depth) if version == "2.1" else None,
                  hw=(H, W))


def _bake_geometry_torch(version: str, mr, e: _Entry) -> _Entry:
    """:func:`_bake_geometry` in torch ops (NPU, CUDA; the CPU without the compiled module)."""
    rast = e.rast
    H, W = rast.shape[1:3]
    shader, cos_thres, k = _bake_settings(version, mr)
    pos3 = _camera_pos3(e)
    fn, vn = _camera_normals(mr, e, shader)
    if shader == "face":
        normal = _face_map(fn, rast)[0]
        depth = _interp(pos3[:, 2:3].contiguous(), rast, mr.pos_idx)[0]
    else:  # normals and depth in one pass (per channel the same arithmetic)
        nd = _interp(torch.cat([vn, pos3[:, 2:3]], 1), rast, mr.pos_idx)[0]
        normal, depth = nd[..., :3], nd[..., 3:]
    hit = rast[0, ..., 3] > 0
    hit_idx = torch.nonzero(hit.reshape(-1)).squeeze(1)
    sel = depth.reshape(-1).index_select(0, hit_idx)
    dmax, dmin = sel.max(), sel.min()
    # upstream: ((depth - dmin) / (dmax - dmin) * visible) * 255 in float32, to uint8
    depth_image = torch.sub(depth, dmin).div_(dmax - dmin).mul_(hit.unsqueeze(-1)).mul_(255)
    vis, sketch = _visible_and_sketch(version, hit, depth_image.cpu().numpy().astype(np.uint8)[..., 0], k)
    uv = _interp(mr.vtx_uv, rast, mr.uv_idx)[0]
    idx = torch.nonzero(vis.reshape(-1)).squeeze(1)
    n_vis = normal.reshape(-1, 3).index_select(0, idx)
    # F.cosine_similarity([0, 0, -1], n): sum_k (n_k / max(|n|, 1e-8)) * l_k, for this l exactly
    # -(n_z / max(|n|, 1e-8)); torch's float32 norm on CPU is sqrt(fma(z, z, fma(y, y, x * x)))
    norm = torch.linalg.vector_norm(n_vis, dim=-1).clamp_min_(1e-8)
    cos_vis = torch.div(n_vis[:, 2], norm).neg_()
    cos_vis[cos_vis < cos_thres] = 0
    extra = torch.stack([cos_vis, sketch.reshape(-1).index_select(0, idx).float()])
    return _Entry(idx=idx, coords=uv.reshape(-1, 2).index_select(0, idx).flip(1), extra=extra, sketch=sketch,
                  visible=vis, depth=depth.clone() if version == "2.1" else None, hw=(H, W))


def _scratch_u8(name: str, n: int) -> np.ndarray:
    """A uint8 buffer of ``n`` bytes owned by the calling thread (see :func:`_scratch`)."""
    return _scratch(name, ((n + 3) // 4,), "cpu").numpy().view(np.uint8)[:n]


def _merge_views(mr, textures, cos_maps) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """MeshRender.fast_bake_texture in one compiled pass per view (csrc/bake: the same skip rule,
    products, sums and division as upstream's torch code, so the same bits), or None where it
    does not apply (tensors off the CPU, other dtypes or shapes): then upstream runs. Upstream
    runs under ``torch.no_grad()``, so this detaches too."""
    ext = _compiled()
    Ht, Wt = _hw(mr.texture_size, None)
    if (ext is None or not isinstance(textures, (list, tuple)) or not isinstance(cos_maps, (list, tuple))
            or not textures or len(textures) != len(cos_maps) or torch.device(mr.device).type != "cpu"):
        return None
    items = list(textures) + list(cos_maps)
    if not all(isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.dtype == torch.float32 for t in items):
        return None
    C = textures[0].shape[-1]
    if (any(tuple(t.shape) != (Ht, Wt, C) for t in textures)
            or any(tuple(c.shape) != (Ht, Wt, 1) for c in cos_maps)):
        return None
    out, trust = plain_empty((Ht * Wt, C), np.float32), plain_empty((Ht * Wt,), np.float32)  # (zeroed by the kernel)
    ext.merge_views([t.detach().contiguous().numpy().reshape(-1, C) for t in textures],
                    [c.detach().contiguous().numpy().reshape(-1) for c in cos_maps], out, trust,
                    torch.get_num_threads())
    return torch.from_numpy(out).view(Ht, Wt, C), torch.from_numpy(trust).view(Ht, Wt, 1) > 1e-8


def _u8_pixels(image) -> Optional[np.ndarray]:
    """A PIL image's uint8 pixels [H, W] or [H, W, C] (no copy where PIL allows), or None for
    anything else (other modes, numpy, tensors: upstream does not divide those by 255)."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        return None
    arr = np.asarray(image)
    return arr if arr.dtype == np.uint8 and arr.ndim in (2, 3) and arr.flags.c_contiguous else None


def _splat_bake(geo: _Entry, img, Ht: int, Wt: int, threads: int):
    """MeshRender's ``linear`` bake of one view: every baking pixel splats its colour, cosine and
    boundary value bilinearly at its UV (csrc/splat on CPU: one pass, gathers the colour from the
    image itself; index_add_ elsewhere), each divided by the splatted weight where it is > 0.
    Returns the texture [Ht, Wt, C], cosine map and boundary map [Ht, Wt, 1], contiguous."""
    if isinstance(img, np.ndarray):  # uint8 pixels (_u8_pixels): the kernel reads b / 255
        flat = img.reshape(img.shape[0] * img.shape[1], -1)
        C, values = flat.shape[1], flat
    else:
        C = img.shape[-1]
        flat = img.reshape(-1, C)
        values = np.ascontiguousarray(flat.numpy(), np.float32) if flat.device.type == "cpu" else None
    ext = _compiled()
    if values is not None and ext is not None and Ht >= 2 and Wt >= 2:
        # zeroed by the kernel's page mapping (calloc), not by a pass: the kernel writes only the
        # texels this view reaches, so the pages of the rest of the atlas are never touched
        out, out_extra = plain_zeros((Ht, Wt, C), np.float32), plain_zeros((2, Ht, Wt), np.float32)
        ext.splat_bilinear(geo.coords.numpy(), values, geo.idx.numpy(),
                           geo.extra.numpy(), out, out_extra, None, True, threads)
        extra = torch.from_numpy(out_extra)
        return torch.from_numpy(out), extra[0].unsqueeze(-1), extra[1].unsqueeze(-1)
    if isinstance(flat, np.ndarray):
        flat = torch.from_numpy(np.array(flat)).float().div_(255)  # what _image_tensor makes of the bytes
    coords, dev = geo.coords, flat.device
    values = torch.cat([flat[geo.idx], geo.extra.T], 1)
    idx = coords * torch.tensor([Ht - 1, Wt - 1], dtype=torch.float32, device=dev)
    i00 = idx.floor().long()
    i00[:, 0].clamp_(0, Ht - 2)
    i00[:, 1].clamp_(0, Wt - 2)
    h = idx[:, 0] - i00[:, 0].float()
    w = idx[:, 1] - i00[:, 1].float()
    t00 = i00[:, 0] * Wt + i00[:, 1]
    flat4 = torch.cat([t00, t00 + 1, t00 + Wt, t00 + Wt + 1])
    w4 = torch.cat([(1 - h) * (1 - w), (1 - h) * w, h * (1 - w), h * w])
    out = torch.zeros(Ht * Wt, C + 2, device=dev).index_add_(0, flat4, values.repeat(4, 1) * w4.unsqueeze(1))
    count = torch.zeros(Ht * Wt, 1, device=dev).index_add_(0, flat4, w4.unsqueeze(1))
    out = out / torch.where(count > 0, count, torch.ones((), device=dev))  # x / 1 == x where empty
    out = out.view(Ht, Wt, C + 2)
    return out[..., :C].contiguous(), out[..., C:C + 1].contiguous(), out[..., C + 1:].contiguous()


def _back_project(mod, version, mr, image, elev, azim, camera_distance, center, method, threads: Optional[int]):
    """MeshRender.back_project of ``image`` (PIL, numpy or tensor, as upstream takes it) in the
    ``linear`` or 2.1's ``back_sample`` mode. A PIL uint8 image baked by the compiled splat is
    read as bytes (b / 255 in the kernel: the float image upstream makes is never built)."""
    dev = _device(mr)
    pixels = _u8_pixels(image) if method == "linear" and dev.type == "cpu" and _compiled() is not None else None
    img = _image_tensor(image, dev) if pixels is None else pixels
    H, W = int(img.shape[0]), int(img.shape[1])
    e = _view(mod, mr, elev, azim, camera_distance, center, (H, W))
    geo = _bake_geometry(mod, version, mr, e)
    if method == "back_sample":
        return _back_sample(mr, e, geo, img)
    Ht, Wt = int(mr.texture_size[1]), int(mr.texture_size[0])  # MeshRender's (H, W) argument order
    return _splat_bake(geo, img, Ht, Wt, threads or torch.get_num_threads())


def _back_sample(mr, e: _Entry, geo: _Entry, img: torch.Tensor):
    """2.1's ``back_sample`` bake: every texel of the UV raster (extract_textiles) is projected into
    the view and, where its depth agrees with the view's depth within 3e-3 and the pixel bakes,
    samples the image bilinearly. Same rule as MeshRender; the geometry is cached per view."""
    with e.lock:
        bs = getattr(e, "back_sample", None)
        if bs is None:
            bs = e.back_sample = _back_sample_geometry(mr, e, geo)
    H, W = e.hw
    C = img.shape[-1]
    rgb = img.reshape(-1, C)
    wx, wy = bs.wx, bs.wy
    sampled = (rgb[bs.i00] * (1 - wx) + rgb[bs.i01] * wx) * (1 - wy) + (rgb[bs.i10] * (1 - wx) + rgb[bs.i11] * wx) * wy
    Ht, Wt = int(mr.texture_size[0]), int(mr.texture_size[1])
    texture = torch.zeros(Ht * Wt, C, device=img.device)
    texture[bs.texels] = sampled
    return texture.view(Ht, Wt, C), bs.cos_map, bs.boundary_map


def _back_sample_geometry(mr, e: _Entry, geo: _Entry) -> _Entry:
    H, W = e.hw
    proj, r_mv = e.proj, e.r_mv
    dev = mr.tex_position.device
    img_proj = torch.from_numpy(np.array(((proj[0, 0], 0, 0, 0), (0, proj[1, 1], 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)))
                                ).to(mr.tex_position)
    w2c = torch.from_numpy(r_mv).to(mr.tex_position)
    v = mr.tex_position @ w2c.T @ img_proj
    inner = (v[:, 0] <= 1.0) & (v[:, 0] >= -1.0) & (v[:, 1] <= 1.0) & (v[:, 1] >= -1.0)
    # upstream indexes pixels as y * H + x with x scaled by H and y by W (square renders only agree)
    x = torch.clamp(((v[:, 0].clamp(-1, 1) * 0.5 + 0.5) * H).long(), 0, H - 1)
    y = torch.clamp(((v[:, 1].clamp(-1, 1) * 0.5 + 0.5) * W).long(), 0, W - 1)
    pix = y * H + x
    sampled_z = geo.depth.reshape(-1)[pix]
    sampled_m = geo.visible.reshape(-1).float()[pix]
    # the view's cosine map: the baking pixels' cosines, 0 elsewhere
    sampled_w = torch.zeros(H * W, device=dev).index_copy_(0, geo.idx, geo.extra[0])[pix]
    valid = (torch.abs(v[:, 2] - sampled_z) < 3e-3) & (sampled_m * sampled_w > 0) & inner
    vi = torch.nonzero(valid).squeeze(1)
    pix = pix[vi]
    wx = ((v[:, 0] * 0.5 + 0.5) * H - x)[vi].reshape(-1, 1)
    wy = ((v[:, 1] * 0.5 + 0.5) * W - y)[vi].reshape(-1, 1)
    xs, ys = x[vi], y[vi]
    xr = torch.clamp(xs + 1, 0, H - 1)
    yr = torch.clamp(ys + 1, 0, W - 1)
    Ht, Wt = int(mr.texture_size[0]), int(mr.texture_size[1])
    texels = mr.tex_grid[vi, 0] * Wt + mr.tex_grid[vi, 1]
    cos_map = torch.zeros(Ht * Wt, device=dev)
    boundary = torch.zeros(Ht * Wt, device=dev)
    cos_map[texels] = sampled_w[vi]
    # upstream samples the eroded-and-dilated (or raw, when the kernel is 0) sketch
    boundary[texels] = geo.sketch.reshape(-1).float()[pix]
    return _Entry(i00=pix, i01=ys * H + xr, i10=yr * H + xs, i11=yr * H + xr, wx=wx, wy=wy, texels=texels,
                  cos_map=cos_map.view(Ht, Wt, 1), boundary_map=boundary)  # upstream leaves it flat [Ht * Wt]


def _extract_textiles(mr) -> None:
    """2.1's ``extract_textiles``: the surface point and normal of every covered texel."""
    rast = _uv_raster(mr)
    position = _interp(mr.vtx_pos, rast, mr.pos_idx)[0]
    fn = _face_normals(mr.vtx_pos, mr.pos_idx)
    ids = rast[0, ..., 3]
    hit = ids > 0
    # upstream replaces the interpolated vertex normals by the face normal on every covered texel
    normal = _face_map(fn, rast)[0]
    Ht, Wt = int(mr.texture_size[0]), int(mr.texture_size[1])
    flat = torch.nonzero(hit.reshape(-1)).squeeze(1)
    grid = torch.stack([flat // hit.shape[1], flat % hit.shape[1]], -1)
    pos = position.reshape(-1, 3)[flat]
    mr.tex_position = torch.cat([pos, torch.ones_like(pos[:, :1])], -1)
    mr.tex_normal = normal.reshape(-1, 3)[flat]
    mr.tex_grid = grid
    indices = torch.full((Ht, Wt), -1, dtype=torch.long, device=mr.vtx_pos.device)
    indices.view(-1)[grid[:, 0] * Wt + grid[:, 1]] = torch.arange(grid.shape[0], device=mr.vtx_pos.device)
    mr.texture_indices = indices


def _bake_views(mod, version, mr, views, camera_distance, center) -> List[Tuple]:
    """back_project of several (image, elev, azim) views in a thread pool; results in view order."""
    method = mr.bake_mode
    n = len(views)
    workers = min(n, os.cpu_count() or 1)

    def one(i):
        img, elev, azim = views[i]
        if method != "linear" and not (version == "2.1" and method == "back_sample"):
            return mr.back_project(img, elev, azim, camera_distance, center)
        return _back_project(mod, version, mr, img, elev, azim, camera_distance, center, method, threads=1)

    if workers <= 1 or _device(mr).type != "cpu" or threading.current_thread().name.startswith("hy3d-bake"):
        return [one(i) for i in range(n)]
    with split_intra_op_threads(workers, "cpu"):
        return list(_bake_pool().map(one, range(n)))


_pool: Optional[ThreadPoolExecutor] = None


def _bake_pool() -> ThreadPoolExecutor:
    """One view pool for the process (``os.cpu_count()`` workers), reused by every bake: its
    threads keep their scratch buffers (:func:`_scratch`) from one bake to the next."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="hy3d-bake")
        return _pool


def _uv_inpaint(mr, texture, mask, vertex_inpaint: bool = True) -> np.ndarray:
    """MeshRender.uv_inpaint: compiled mesh-vertex inpaint (the same rule and bits as upstream's
    ``meshVerticeInpaint``), then every still-empty texel filled by render_npu texgen's harmonic
    fill instead of ``cv2.inpaint(..., INPAINT_NS)``: uint8 [H, W, C] as upstream."""
    from PIL import Image

    from texgen.inpaint import _grow, harmonic_fill
    from .mesh_processor import meshVerticeInpaint

    if isinstance(texture, torch.Tensor):
        tex = texture.detach().cpu().numpy()
    elif isinstance(texture, Image.Image):
        tex = np.array(texture) / 255.0
    else:
        tex = np.asarray(texture)
    if isinstance(mask, torch.Tensor):  # 2.1 accepts the trust map as a tensor
        mask = (mask.squeeze(-1).cpu().numpy() * 255).astype(np.uint8)
    mask = np.asarray(mask)
    owned = False
    if vertex_inpaint:
        tex, mask = meshVerticeInpaint(tex, mask, *_mesh_arrays(mr))
        owned = True  # a new array: ours to edit
    known = np.asarray(mask) > 0
    if owned and isinstance(tex, np.ndarray) and tex.dtype == np.float32 and tex.flags.c_contiguous \
            and tex.flags.writeable:
        tex32 = tex
    else:
        tex32 = plain_empty(np.shape(tex), np.float32)
        np.copyto(tex32, tex, casting="unsafe")
    # upstream: uint8 of texture * 255 (truncation) where known, cv2.inpaint's fill elsewhere
    if known.all() or not known.any() or tex32.ndim != 3:
        return (tex32 * np.float32(255)).astype(np.uint8) if known.all() or tex32.ndim != 3 else _all_unknown(tex32)
    H, W = known.shape
    used = (_uv_raster(mr)[0, ..., 3] > 0).cpu().numpy()
    if used.shape == (H, W):
        # the used UV area and a margin (what a render or a mip-map reads) gets the harmonic fill;
        # the rest of the atlas, which nothing reads, the mean colour (cv2.inpaint fills it too)
        region = _grow(used, max(2, W // 256)) | known
    else:  # a texture of another size than texture_size: fill all of it
        region = None
    np.multiply(tex32, known[..., None], out=tex32)
    C = tex32.shape[-1]
    mean = np.zeros(C, np.float32)
    if region is not None:  # the known texels' mean (zero elsewhere now): one BLAS pass, no copy
        flat = tex32.reshape(-1, C)
        mean = (np.ones(flat.shape[0], np.float32) @ flat) / np.float32(max(int(np.count_nonzero(known)), 1))
    # compiled (csrc/inpaint/harmonic.cpp) with the caller's threads; the torch fallback is hundreds
    # of small ops, which run on one intra-op thread (OpenMP teams spinning between them made it
    # 1.5-8x slower on a busy machine)
    threads = torch.get_num_threads()
    with split_intra_op_threads(threads, "cpu"):
        filled = harmonic_fill(tex32, known, region, inplace=True, num_threads=threads)  # (known texels unchanged)
    # the known texels' own bytes (x * 255 truncated), the fill's uint8(clip(x, 0, 1) * 255 + 0.5),
    # the mean's outside the region
    mean_u8 = (np.clip(mean, 0, 1) * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    ext = _compiled()
    if ext is not None:
        out = plain_empty(filled.shape, np.uint8)
        ext.inpaint_bytes(filled.reshape(-1, C), known.reshape(-1).view(np.uint8),
                          None if region is None else region.reshape(-1).view(np.uint8), mean_u8, out.reshape(-1, C),
                          torch.get_num_threads())
        return out
    t = torch.from_numpy(filled)
    fill_u8 = t.clamp(0, 1).mul_(255).add_(0.5).to(torch.uint8)
    if region is not None:
        fill_u8 = torch.where(torch.from_numpy(region)[..., None], fill_u8, torch.from_numpy(mean_u8))
    own = torch.from_numpy((filled * np.float32(255)).astype(np.uint8))
    return torch.where(torch.from_numpy(known)[..., None], own, fill_u8).numpy()


def _mesh_arrays(mr):
    """``MeshRender.get_mesh()``'s (vtx_pos, vtx_uv, pos_idx, uv_idx) in the file's frame (axes
    swapped back, v flipped back), on copies: upstream's get_mesh edits numpy views of the CPU
    tensors in place, which silently moves a CPU MeshRender's mesh (docs/hunyuan3d.md)."""
    pos = mr.vtx_pos.detach().cpu().numpy().copy()
    pos[:, [1, 2]] = pos[:, [2, 1]]
    pos[:, [0, 1]] = -pos[:, [0, 1]]
    uv = mr.vtx_uv.detach().cpu().numpy().copy()
    uv[:, 1] = 1.0 - uv[:, 1]
    return pos, uv, mr.pos_idx.cpu().numpy(), mr.uv_idx.cpu().numpy()


def _all_unknown(tex32: np.ndarray) -> np.ndarray:
    """No texel known: nothing to propagate (cv2.inpaint returns black then too)."""
    return np.zeros(tex32.shape, np.uint8)
