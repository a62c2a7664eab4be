"""Mesh preparation: load (trimesh), normalise into the cameras' view volume, UV-unwrap (:mod:`texgen.uv`).

Conventions (see docs/texgen.md):

* World frame = the mesh file's own frame, read as glTF does: **+Y up, the object's front faces
  +Z**, right-handed, units arbitrary until :func:`normalize` scales the mesh.
* Normalisation (Hunyuan3D-2's): centre on the axis-aligned bounding-box centre, then scale so the
  farthest vertex lies at distance ``radius`` (default 0.575) from the origin (only vertices that
  some face uses count). With the default
  orthographic cameras (half-width 0.6) the whole object is inside every view.
  ``normalized = (original - center) * scale``; :attr:`Mesh.normalization` keeps
  ``(center, scale)`` so exports can restore the original placement.
* Separate index buffers: ``pos_idx`` indexes welded positions (one vertex per distinct
  position, so the mesh graph is connected across UV seams) and ``uv_idx`` indexes UV
  coordinates (split at seams). Face ``f`` is ``pos[pos_idx[f]]`` in 3D and ``uv[uv_idx[f]]``
  in the atlas; both buffers list the faces in the same order.
* UVs follow trimesh/OBJ: ``v = 0`` is the bottom row of the texture image. Texture images are
  float32 ``[H, W, 3]`` in [0, 1], image row 0 at the top (``v = 1``). Texel ``(row, col)`` has
  its centre at ``u = col / (W - 1)``, ``v = 1 - row / (H - 1)`` (Hunyuan3D's convention,
  ``render_npu`` viewport "align_corners"). Colours are display (sRGB-encoded) values.
"""
from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

import numpy as np

__all__ = ["Mesh", "Normalization", "MeshError", "TexgenWarning", "load_mesh", "from_trimesh", "merge_meshes", "normalize", "unwrap",
           "prepare_mesh", "vertex_normals", "face_normals"]

DEFAULT_RADIUS = 0.575  # Hunyuan3D-2: scale_factor 1.15 over the bounding sphere's diameter

_uid_counter = itertools.count(1)
_uid_lock = threading.Lock()


def _next_uid() -> int:
    with _uid_lock:
        return next(_uid_counter)


class MeshError(ValueError):
    """A mesh that cannot be used: unreadable file, no faces, bad shapes or indices."""


class TexgenWarning(UserWarning):
    """Something texgen did differently from what the input asked, or an input that looks wrong
    (the message says what, with numbers); the CLI prints ``texgen: warning: ...``."""


@dataclass(frozen=True)
class Normalization:
    """``normalized = (original - center) * scale`` (center float64 [3], scale > 0)."""
    center: Tuple[float, float, float]
    scale: float

    def apply(self, pos: np.ndarray) -> np.ndarray:
        """float64 [N, 3] (geometry stays float64 until export)."""
        return (np.asarray(pos, np.float64) - np.asarray(self.center)) * self.scale

    def invert(self, pos: np.ndarray) -> np.ndarray:
        """float64 [N, 3]."""
        return np.asarray(pos, np.float64) / self.scale + np.asarray(self.center)

    def then(self, other: "Normalization") -> "Normalization":
        """The composition ``other(self(x))``."""
        c = np.asarray(self.center) + np.asarray(other.center) / self.scale
        return Normalization(tuple(float(t) for t in c), self.scale * other.scale)


_GEOMETRY_FIELDS = ("pos", "pos_idx", "uv", "uv_idx")
_APPEARANCE_FIELDS = ("texture", "vertex_colors")


def _readonly(a: Optional[np.ndarray], dtype, shape_tail: Tuple[int, ...], name: str) -> Optional[np.ndarray]:
    if a is None:
        return None
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    arr = np.array(a, dtype=dtype, copy=True)
    if arr.ndim != 1 + len(shape_tail) or tuple(arr.shape[1:]) != shape_tail:
        raise MeshError(f"{name} must have shape [N, {', '.join(map(str, shape_tail))}], got {list(arr.shape)}")
    arr.setflags(write=False)
    return arr


class Mesh:
    """A triangle mesh with separate position and UV index buffers.

    Attributes (numpy arrays, stored as read-only copies: assign a new array to change one):
        pos: float64 ``[V, 3]`` welded vertex positions (world units, see module docstring).
        pos_idx: int32 ``[F, 3]`` indices into ``pos``.
        uv: float32 ``[T, 2]`` texture coordinates or None.
        uv_idx: int32 ``[F, 3]`` indices into ``uv`` or None (present iff ``uv`` is).
        texture: float32 ``[H, W, 3]`` in [0, 1], image row 0 at the top (``v = 1``), or None.
        vertex_colors: float32 ``[V, 3]`` in [0, 1] per position vertex, or None.
        file_vertex: int64 ``[V]``: the file's index of each welded vertex (its first occurrence),
            or None; exports map the vertices they add at seams back to it.
        normalization: :class:`Normalization` from the file's frame to this one, or None.
        uid: process-unique identity, never reused (unlike ``id()``).
        version: bumped whenever the geometry (``pos``, ``pos_idx``, ``uv``, ``uv_idx``) changes;
            rasterization results are cached under ``(uid, version)``.
        appearance_version: bumped when ``texture`` or ``vertex_colors`` change.
    """

    def __init__(self, pos, pos_idx, uv=None, uv_idx=None, texture=None, vertex_colors=None,
                 normalization: Optional[Normalization] = None, name: str = "mesh", file_vertex=None):
        object.__setattr__(self, "uid", _next_uid())
        object.__setattr__(self, "version", 0)
        object.__setattr__(self, "appearance_version", 0)
        object.__setattr__(self, "_init", True)
        self.name = name
        self.normalization = normalization
        self.pos = pos
        self.pos_idx = pos_idx
        self.uv = uv
        self.uv_idx = uv_idx
        self.texture = texture
        self.vertex_colors = vertex_colors
        self.file_vertex = None if file_vertex is None else _readonly(np.reshape(file_vertex, (-1, 1)), np.int64,
                                                                      (1,), "file_vertex")[:, 0]
        object.__setattr__(self, "_init", False)
        self.validate()

    # -- mutation tracking ---------------------------------------------------------------------
    def __setattr__(self, key: str, value: Any) -> None:
        if key in ("uid", "version", "appearance_version"):
            raise AttributeError(f"Mesh.{key} is maintained automatically")
        if key == "pos":  # float64: a mesh 1e6 from the origin keeps its shape (float32: 0.06 steps)
            value = _readonly(value, np.float64, (3,), "pos")
        elif key == "pos_idx":
            value = _readonly(value, np.int32, (3,), "pos_idx")
        elif key == "uv":
            value = _readonly(value, np.float32, (2,), "uv")
        elif key == "uv_idx":
            value = _readonly(value, np.int32, (3,), "uv_idx")
        elif key == "vertex_colors":
            value = _readonly(value, np.float32, (3,), "vertex_colors")
        elif key == "texture" and value is not None:
            value = _texture_array(value)
        object.__setattr__(self, key, value)
        if not self.__dict__.get("_init", False):
            if key in _GEOMETRY_FIELDS:
                self.touch()
            elif key in _APPEARANCE_FIELDS:
                object.__setattr__(self, "appearance_version", self.appearance_version + 1)

    def touch(self) -> None:
        """Declare the geometry changed (done automatically on assignment)."""
        object.__setattr__(self, "version", self.version + 1)

    # -- properties ----------------------------------------------------------------------------
    @property
    def num_faces(self) -> int:
        return int(self.pos_idx.shape[0])

    @property
    def num_vertices(self) -> int:
        return int(self.pos.shape[0])

    @property
    def has_uv(self) -> bool:
        return self.uv is not None and self.uv_idx is not None

    @property
    def has_appearance(self) -> bool:
        return (self.texture is not None and self.has_uv) or self.vertex_colors is not None

    def validate(self) -> "Mesh":
        """Raise :class:`MeshError` on inconsistent buffers."""
        if self.pos_idx.shape[0] == 0:
            raise MeshError(f"{self.name}: the mesh has no faces")
        if self.pos.shape[0] == 0:
            raise MeshError(f"{self.name}: the mesh has no vertices")
        if not np.all(np.isfinite(self.pos)):
            raise MeshError(f"{self.name}: vertex positions contain NaN or infinity")
        if self.pos_idx.min() < 0 or self.pos_idx.max() >= self.pos.shape[0]:
            raise MeshError(f"{self.name}: pos_idx values must lie in [0, {self.pos.shape[0]})")
        if (self.uv is None) != (self.uv_idx is None):
            raise MeshError(f"{self.name}: uv and uv_idx must be given together")
        if self.uv is not None:
            if self.uv_idx.shape != self.pos_idx.shape:
                raise MeshError(f"{self.name}: uv_idx has shape {list(self.uv_idx.shape)}, "
                                f"pos_idx has {list(self.pos_idx.shape)}")
            if self.uv_idx.min() < 0 or self.uv_idx.max() >= self.uv.shape[0]:
                raise MeshError(f"{self.name}: uv_idx values must lie in [0, {self.uv.shape[0]})")
        if self.file_vertex is not None and self.file_vertex.shape[0] != self.pos.shape[0]:
            raise MeshError(f"{self.name}: file_vertex has {self.file_vertex.shape[0]} entries, "
                            f"expected {self.pos.shape[0]}")
        if self.vertex_colors is not None and self.vertex_colors.shape[0] != self.pos.shape[0]:
            raise MeshError(f"{self.name}: vertex_colors has {self.vertex_colors.shape[0]} rows, "
                            f"expected {self.pos.shape[0]}")
        return self

    def copy(self, **changes) -> "Mesh":
        """A new mesh (new uid) with some fields replaced."""
        fields = dict(pos=self.pos, pos_idx=self.pos_idx, uv=self.uv, uv_idx=self.uv_idx, texture=self.texture,
                      vertex_colors=self.vertex_colors, normalization=self.normalization, name=self.name)
        fields.update(changes)
        # the file's vertices stay the file's while their count does (normalising moves them)
        fields.setdefault("file_vertex", self.file_vertex if np.shape(fields["pos"])[0] == self.num_vertices else None)
        return Mesh(**fields)

    def original_positions(self) -> np.ndarray:
        """Positions in the frame the mesh was loaded in (undoes :attr:`normalization`)."""
        return self.pos if self.normalization is None else self.normalization.invert(self.pos)

    def __repr__(self) -> str:
        tex = "none" if self.texture is None else f"{self.texture.shape[1]}x{self.texture.shape[0]}"
        return (f"Mesh({self.name!r}, V={self.num_vertices}, F={self.num_faces}, uv={self.has_uv}, "
                f"texture={tex}, vertex_colors={self.vertex_colors is not None}, uid={self.uid}, "
                f"version={self.version})")


def _texture_array(tex) -> np.ndarray:
    """PIL image / uint8 or float array / tensor -> read-only float32 [H, W, 3] in [0, 1]."""
    if hasattr(tex, "detach"):
        tex = tex.detach().cpu().numpy()
    if hasattr(tex, "convert"):  # PIL: every bit depth scaled to [0, 1] (16-bit, float, palette)
        from .images import pil_to_float

        tex = pil_to_float(tex, "texture")
    arr = np.asarray(tex)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise MeshError(f"texture must be [H, W, 3] (or 4), got {list(arr.shape)}")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / 65535.0
    else:
        out = np.clip(arr.astype(np.float32), 0.0, 1.0)
    out = np.ascontiguousarray(out)
    out.setflags(write=False)
    return out


# -- geometry helpers --------------------------------------------------------------------------------
def face_normals(pos: np.ndarray, pos_idx: np.ndarray) -> np.ndarray:
    """Unit face normals float32 [F, 3] (counter-clockwise = front); zero for degenerate faces."""
    p = pos.astype(np.float64)[pos_idx]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    ln = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(ln > 0, n / np.maximum(ln, 1e-300), 0.0).astype(np.float32)


def vertex_normals(pos: np.ndarray, pos_idx: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals float32 [V, 3] over the welded graph (smooth across UV
    seams); vertices with no non-degenerate face get (0, 0, 0)."""
    p = pos.astype(np.float64)[pos_idx]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])  # length = 2 * area
    acc = np.zeros((pos.shape[0], 3), np.float64)
    for k in range(3):
        np.add.at(acc, pos_idx[:, k], n)
    ln = np.linalg.norm(acc, axis=1, keepdims=True)
    return np.where(ln > 0, acc / np.maximum(ln, 1e-300), 0.0).astype(np.float32)


def weld(positions: np.ndarray, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge vertices with bit-identical positions: (pos float64 [V', 3], pos_idx [F, 3], first [V'])
    where ``first[i]`` is the first original vertex of welded vertex ``i``. Welded vertices keep
    the order of their first occurrence, so a file without duplicate positions keeps its vertices
    exactly (same order, same count)."""
    positions = np.ascontiguousarray(positions, dtype=np.float64)  # float32 would merge distinct far vertices
    _, first, inverse = np.unique(positions, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # unique-sorted -> first-occurrence order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    inverse = rank[inverse.reshape(-1)]
    first = first[order]
    return positions[first], inverse[faces].astype(np.int32), first


# -- loading ----------------------------------------------------------------------------------------
def load_mesh(source: Union[str, os.PathLike, Any], name: Optional[str] = None) -> Mesh:
    """Load a mesh file (OBJ, GLB/glTF, PLY, ... anything trimesh reads) or convert a
    ``trimesh.Trimesh``/``Scene``. Scenes are flattened with their node transforms. Keeps UVs,
    the base-colour texture (times its colour factor) and vertex colours when present.

    Raises :class:`MeshError` for unreadable files, point clouds and meshes without faces.
    """
    import trimesh

    if isinstance(source, Mesh):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise MeshError(f"mesh file not found: {path}")
        try:
            loaded = trimesh.load(path, process=False)
        except Exception as exc:  # trimesh raises many types
            raise MeshError(f"cannot read mesh {path!r}: {type(exc).__name__}: {exc}") from exc
        name = name or os.path.basename(path)
        if path.lower().endswith(".obj"):
            _warn_missing_material_files(path, name)
    else:
        loaded = source
        name = name or "mesh"
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0] \
            if len(loaded.geometry) else []
        if not geoms:
            raise MeshError(f"{name}: the file holds no triangle mesh with faces")
        if len(geoms) > 1:  # texgen's own merge: trimesh's texture packing can swap textures
            return merge_meshes([from_trimesh(g, name=name) for g in geoms], name=name)
        loaded = geoms[0]
    if not isinstance(loaded, trimesh.Trimesh):
        raise MeshError(f"{name}: expected a triangle mesh, got {type(loaded).__name__} "
                        f"(point clouds and paths have no faces)")
    return from_trimesh(loaded, name=name)


def _warn_missing_material_files(path: str, name: str) -> None:
    """trimesh quietly falls back to a material's flat colour when its texture file is missing."""
    import warnings

    from .files import obj_material_files

    mtls, textures = obj_material_files(path)
    missing = [f for f in mtls + textures if not os.path.isfile(f)]
    if missing:
        warnings.warn(f"texgen: {name}: {len(missing)} of the {len(mtls) + len(textures)} material/texture files "
                      f"it names are missing ({', '.join(missing)}); its appearance falls back to flat material "
                      f"colours", TexgenWarning, stacklevel=3)


def from_trimesh(tm, name: str = "mesh") -> Mesh:
    """Convert a ``trimesh.Trimesh`` (see :func:`load_mesh`)."""
    faces = np.asarray(tm.faces, dtype=np.int64).reshape(-1, 3)
    verts = np.asarray(tm.vertices, dtype=np.float64).reshape(-1, 3)
    if faces.shape[0] == 0:
        raise MeshError(f"{name}: the mesh has no faces")
    pos, pos_idx, first = weld(verts, faces)
    uv = uv_idx = texture = vcol = None
    visual = getattr(tm, "visual", None)
    kind = getattr(visual, "kind", None)
    if kind == "texture" and getattr(visual, "uv", None) is not None and len(visual.uv) == len(verts):
        uv = np.asarray(visual.uv, dtype=np.float32)
        uv_idx = faces.astype(np.int32)
        texture = _material_texture(visual.material)
    elif kind == "vertex":
        vc = np.asarray(visual.vertex_colors)[:, :3].astype(np.float32) / 255.0
        vcol = vc[first]
    elif kind == "face":
        fc = np.asarray(visual.face_colors)[:, :3].astype(np.float32) / 255.0
        acc = np.zeros((pos.shape[0], 3), np.float64)
        cnt = np.zeros(pos.shape[0], np.float64)
        for k in range(3):
            np.add.at(acc, pos_idx[:, k], fc)
            np.add.at(cnt, pos_idx[:, k], 1.0)
        vcol = (acc / np.maximum(cnt, 1)[:, None]).astype(np.float32)
    if uv is not None and texture is None:
        mat = getattr(visual, "material", None)
        factor = _material_color(mat)
        if factor is not None:  # UVs but a plain colour: keep it as vertex colours
            vcol = np.broadcast_to(factor, (pos.shape[0], 3)).astype(np.float32)
    return Mesh(pos, pos_idx, uv, uv_idx, texture=texture, vertex_colors=vcol, name=name, file_vertex=first)


def merge_meshes(meshes, name: str = "mesh") -> Mesh:
    """One mesh from several (no normalisation). Textures are packed into a grid atlas (each
    resized to the largest one; parts without a texture get a small tile of their mean vertex
    colour, or grey); without any texture, vertex colours are kept (grey for parts without)."""
    meshes = list(meshes)
    if len(meshes) == 1:
        return meshes[0]
    pos = np.concatenate([m.pos for m in meshes])
    offs = np.cumsum([0] + [m.num_vertices for m in meshes])
    pos_idx = np.concatenate([m.pos_idx + o for m, o in zip(meshes, offs)])
    textured = [m.texture is not None and m.has_uv for m in meshes]
    if not any(textured):
        vcol = None
        if any(m.vertex_colors is not None for m in meshes):
            vcol = np.concatenate([m.vertex_colors if m.vertex_colors is not None
                                   else np.full((m.num_vertices, 3), 0.5, np.float32) for m in meshes])
        return Mesh(pos, pos_idx, vertex_colors=vcol, name=name)
    from PIL import Image

    size = max(max(m.texture.shape[:2]) for m, t in zip(meshes, textured) if t)
    size = int(min(size, 4096))
    n = len(meshes)
    nc = int(np.ceil(np.sqrt(n)))
    nr = int(np.ceil(n / nc))
    atlas = np.full((nr * size, nc * size, 3), 0.5, np.float32)
    uvs, uv_idx, uoff = [], [], 0
    for i, (m, t) in enumerate(zip(meshes, textured)):
        ci, ri = i % nc, i // nc
        if t:
            tex = m.texture
            if tex.shape[:2] != (size, size):
                img = Image.fromarray((np.clip(tex, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((size, size),
                                                                                              Image.BILINEAR)
                tex = np.asarray(img, np.float32) / 255.0
            uv = np.clip(m.uv, 0.0, 1.0)
            idx = m.uv_idx
        else:
            colour = m.vertex_colors.mean(0) if m.vertex_colors is not None else np.full(3, 0.5, np.float32)
            tex = np.broadcast_to(colour, (size, size, 3))
            uv = np.full((1, 2), 0.5, np.float32)
            idx = np.zeros_like(m.pos_idx)
        atlas[ri * size:(ri + 1) * size, ci * size:(ci + 1) * size] = tex
        # onto the tile's texel centres (texel col = u (W - 1), row = (1 - v) (H - 1)); tile row ri
        # counts from the top
        col = ci * size + uv[:, 0] * (size - 1)
        row = ri * size + (1.0 - uv[:, 1]) * (size - 1)
        uvs.append(np.stack([col / (nc * size - 1), 1.0 - row / (nr * size - 1)], 1).astype(np.float32))
        uv_idx.append(idx + uoff)
        uoff += len(uv)
    return Mesh(pos, pos_idx, np.concatenate(uvs), np.concatenate(uv_idx), texture=atlas, name=name)


def _material_color(mat) -> Optional[np.ndarray]:
    for attr in ("baseColorFactor", "diffuse"):
        val = getattr(mat, attr, None)
        if val is not None:
            c = np.asarray(val, dtype=np.float32).reshape(-1)[:3]
            return c / 255.0 if c.max() > 1.0 else c
    return None


def _material_texture(mat) -> Optional[np.ndarray]:
    if mat is None:
        return None
    img = getattr(mat, "baseColorTexture", None)
    if img is None:
        img = getattr(mat, "image", None)
    if img is None:
        return None
    tex = np.array(_texture_array(img))
    if getattr(mat, "baseColorTexture", None) is not None and getattr(mat, "baseColorFactor", None) is not None:
        factor = np.asarray(mat.baseColorFactor, dtype=np.float32).reshape(-1)[:3]
        factor = factor / 255.0 if factor.max() > 1.0 else factor
        tex = tex * factor
    return tex


# -- normalisation and unwrapping ---------------------------------------------------------------------
def normalize(mesh: Mesh, radius: float = DEFAULT_RADIUS, like: Optional[Mesh] = None) -> Mesh:
    """A copy of ``mesh`` centred on its bounding-box centre with the farthest vertex at
    ``radius`` (Hunyuan3D-2's convention). With ``like`` given, apply ``like``'s normalisation
    instead (put two meshes of one object, e.g. a textured source and its decimated target, in
    one frame); ``like`` must carry a :attr:`Mesh.normalization`."""
    if like is not None:
        if like.normalization is None:
            raise ValueError("normalize(like=...) needs a mesh that carries a normalization")
        norm = like.normalization
        if mesh.normalization is not None:  # bring mesh back to its file frame first
            pos_file = mesh.normalization.invert(mesh.pos)
        else:
            pos_file = mesh.pos
        return mesh.copy(pos=norm.apply(pos_file), normalization=norm)
    pos = mesh.pos.astype(np.float64)
    used = np.unique(mesh.pos_idx)
    p = pos[used]
    center = 0.5 * (p.min(axis=0) + p.max(axis=0))
    extent = float(np.linalg.norm(p - center, axis=1).max())
    if not extent > 0:
        raise MeshError(f"{mesh.name}: all vertices coincide; cannot normalise")
    step = Normalization(tuple(float(t) for t in center), radius / extent)
    total = step if mesh.normalization is None else mesh.normalization.then(step)
    return mesh.copy(pos=step.apply(pos), normalization=total)


def unwrap(mesh: Mesh, texture_size: int = 2048, padding: Optional[int] = None, **options) -> Mesh:
    """A copy of ``mesh`` with a fresh atlas (UVs split at seams, ``pos``/``pos_idx`` unchanged;
    the old UVs and texture are dropped): :func:`texgen.uv.unwrap` (xatlas on small meshes, texgen's
    chart atlas on large ones; ``options``: ``method``, ``max_angle``, ``progress``). ``padding``:
    texels between charts (default ``max(2, texture_size // 512)``)."""
    from .uv import unwrap as _unwrap

    return _unwrap(mesh, texture_size, padding, **options)


def prepare_mesh(mesh, texture_size: int = 2048, radius: Optional[float] = DEFAULT_RADIUS,
                 unwrap_mode: str = "auto", like: Optional[Mesh] = None) -> Mesh:
    """Load (if a path), normalise (unless ``radius`` is None; or into ``like``'s frame) and unwrap.

    ``unwrap_mode`` (see :func:`texgen.uvcheck.decide_unwrap`): "auto" unwraps when the mesh has
    no UVs or its UVs cannot hold a bake (NaN, outside [0, 1], overlapping triangles; a
    :class:`TexgenWarning` says which, with numbers), "always" unwraps, "never" keeps the UVs and
    raises :class:`MeshError` (saying why) when they are missing or unusable."""
    from .uvcheck import decide_unwrap

    if unwrap_mode not in ("auto", "always", "never"):
        raise ValueError(f"unwrap_mode must be 'auto', 'always' or 'never', got {unwrap_mode!r}")
    m = load_mesh(mesh)
    if like is not None:
        m = normalize(m, like=like)
    elif radius is not None:
        m = normalize(m, radius)
    again, why = decide_unwrap(m, unwrap_mode, texture_size)
    if unwrap_mode == "never" and why:
        raise MeshError(f"{m.name}: {why}; --unwrap never (unwrap_mode='never') keeps a mesh's UVs, so texgen "
                        f"refuses: use --unwrap auto to unwrap again")
    if again:
        if why:
            import warnings

            warnings.warn(f"texgen: {m.name}: {why}; unwrapping it again "
                          f"(--unwrap never would refuse instead)", TexgenWarning, stacklevel=2)
        m = unwrap(m, texture_size)
    return m
