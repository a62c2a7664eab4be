"""Export a textured :class:`~texgen.mesh.Mesh` through trimesh: GLB (binary glTF, texture
embedded) or OBJ + MTL + PNG.

The mesh's vertices are written first, in order (vertex ``i`` of the output is vertex ``i`` of
the mesh, which :func:`~texgen.mesh.load_mesh` keeps in file order when the file has no duplicate
positions); where a position has several UVs (a seam) the extra (position, uv) pairs are appended,
and a GLB then carries ``extras["texgen_vertex_map"]`` on its mesh: the input vertex of every
output vertex (its index in the file the mesh was loaded from, :attr:`Mesh.file_vertex`, when
known; else its index in ``mesh.pos``). By default positions are written in the frame the mesh was loaded in
(:attr:`Mesh.normalization` undone); pass ``normalized=True`` to keep the cameras' frame.
Files are written atomically (:mod:`texgen.files`): a failed export leaves any older file as it
was. An OBJ ``NAME.obj`` comes with ``NAME.mtl`` (material ``NAME``) and ``NAME.png``; existing
files of those two names are refused unless ``overwrite=True``.
Viewers sample textures with texel centres at ``(col + 0.5) / W``, texgen bakes with texel centres
at ``col / (W - 1)`` (Hunyuan3D's convention): the two differ by under half a texel.
"""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np

from .files import plan_outputs, write_files
from .images import to_uint8
from .mesh import Mesh

__all__ = ["to_trimesh", "split_vertices", "export_mesh", "export_glb", "export_obj", "VERTEX_MAP_KEY"]

VERTEX_MAP_KEY = "texgen_vertex_map"  # glTF mesh extras: output vertex -> input vertex, where seams split


def split_vertices(pos_idx: np.ndarray, uv_idx: np.ndarray, num_pos: int):
    """One output vertex per distinct (position, uv) pair, the mesh's own vertices first.

    Output vertex ``i < num_pos`` is position ``i`` with the UV of its first corner (in face
    order); the pairs a UV seam adds are appended in order of first use. Returns ``(vert_pos
    int64 [N], vert_uv int64 [N], faces int64 [F, 3])``: ``vert_pos`` maps output vertices to
    input positions (the identity on the first ``num_pos``)."""
    p = np.asarray(pos_idx, np.int64).reshape(-1)
    t = np.asarray(uv_idx, np.int64).reshape(-1)
    primary = np.zeros(num_pos, np.int64)  # unused positions keep uv 0
    used, first = np.unique(p, return_index=True)
    primary[used] = t[first]
    main = t == primary[p]
    out = np.empty_like(p)
    out[main] = p[main]
    T = int(t.max()) + 1 if t.size else 1
    key = p[~main] * T + t[~main]
    uk, kfirst, inv = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(kfirst, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    out[~main] = num_pos + rank[inv.reshape(-1)]
    extra = uk[order]
    vert_pos = np.concatenate([np.arange(num_pos, dtype=np.int64), extra // T])
    vert_uv = np.concatenate([primary, extra % T])
    return vert_pos, vert_uv, out.reshape(-1, 3)


def to_trimesh(mesh: Mesh, texture: Optional[np.ndarray] = None, normalized: bool = False,
               material_name: str = "texgen"):
    """A ``trimesh.Trimesh`` with a PBR material (named ``material_name``) whose base colour
    texture is ``texture`` (default ``mesh.texture``); without a texture, the UVs (and an
    untextured material) are kept, or the vertex colours when the mesh has them."""
    import trimesh
    from PIL import Image

    tex = mesh.texture if texture is None else texture
    pos = mesh.pos if normalized else mesh.original_positions()
    # UVs without a texture (an unwrapped mesh) are kept unless vertex colours are what it shows
    if mesh.has_uv and (tex is not None or mesh.vertex_colors is None):
        vert_pos, vert_uv, faces = split_vertices(mesh.pos_idx, mesh.uv_idx, mesh.num_vertices)
        verts = pos[vert_pos]
        uv = mesh.uv[vert_uv]
        image = None if tex is None else Image.fromarray(to_uint8(np.asarray(tex)[..., :3]))
        material = trimesh.visual.material.PBRMaterial(name=material_name, baseColorTexture=image,
                                                       baseColorFactor=[255, 255, 255, 255],
                                                       metallicFactor=0.0, roughnessFactor=1.0)
        visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
        tm = trimesh.Trimesh(vertices=verts, faces=faces, visual=visual, process=False)
        if len(vert_pos) > mesh.num_vertices:  # seams split vertices: say which input vertex each one is
            fv = mesh.file_vertex
            tm.metadata[VERTEX_MAP_KEY] = (vert_pos if fv is None else fv[vert_pos]).tolist()
        return tm
    tm = trimesh.Trimesh(vertices=pos, faces=mesh.pos_idx, process=False)
    if mesh.vertex_colors is not None:
        tm.visual = trimesh.visual.ColorVisuals(tm, vertex_colors=to_uint8(mesh.vertex_colors))
    return tm


def export_glb(mesh: Mesh, path: Union[str, os.PathLike], texture: Optional[np.ndarray] = None,
               normalized: bool = False) -> str:
    """Write a binary glTF with the texture embedded; returns the path. A mesh far from the origin
    (bounding-box centre farther than its size) is stored centred, with its offset as the node's
    translation, so float32 vertex storage does not move it."""
    import trimesh

    path = os.fspath(path)
    plan_outputs(path, option="path", kind=".glb")
    tm = to_trimesh(mesh, texture, normalized)
    v = np.asarray(tm.vertices, np.float64)
    center = 0.5 * (v.min(0) + v.max(0))
    extent = float(np.abs(v - center).max())
    if np.abs(center).max() > max(extent, 1e-30):
        # far from the origin: glTF stores float32 positions (0.06 steps at 1e6); keep them small
        # and put the offset in the node's transform, which glTF keeps as a JSON (float64) number
        tm.vertices = v - center
        scene = trimesh.Scene()
        scene.add_geometry(tm, transform=trimesh.transformations.translation_matrix(center))
        data = scene.export(file_type="glb")
    else:
        data = tm.export(file_type="glb")
    write_files({path: data})
    return path


def export_obj(mesh: Mesh, path: Union[str, os.PathLike], texture: Optional[np.ndarray] = None,
               normalized: bool = False, overwrite: bool = False) -> str:
    """Write ``NAME.obj``, ``NAME.mtl`` (material ``NAME``) and ``NAME.png`` next to it; returns
    the OBJ path. Raises :class:`~texgen.files.OutputError` if ``NAME.mtl`` or ``NAME.png``
    exist and ``overwrite`` is False."""
    from trimesh.exchange.obj import export_obj as _export_obj

    path = os.fspath(path)
    plan_outputs(path, overwrite=overwrite, option="path", kind=".obj")
    folder = os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    tm = to_trimesh(mesh, texture, normalized, material_name=stem)
    result = _export_obj(tm, include_normals=False, include_texture=True, return_texture=True,
                         mtl_name=f"{stem}.mtl")
    text, files = result if isinstance(result, tuple) else (result, {})
    expected = {f"{stem}.mtl", f"{stem}.png"}
    if not set(files) <= expected:  # trimesh names the files after the material: guard that contract
        raise RuntimeError(f"trimesh wrote {sorted(files)}, expected {sorted(expected)}")
    out = {os.path.join(folder, name): data for name, data in files.items()}
    out[path] = text
    write_files(out)
    return path


def export_mesh(mesh: Mesh, path: Union[str, os.PathLike], texture: Optional[np.ndarray] = None,
                normalized: bool = False, overwrite: bool = False) -> str:
    """GLB or OBJ by the file extension (``overwrite``: see :func:`export_obj`)."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".glb":
        return export_glb(mesh, path, texture, normalized)
    if ext == ".obj":
        return export_obj(mesh, path, texture, normalized, overwrite)
    raise ValueError(f"unsupported output format {ext!r}: use .glb or .obj")
