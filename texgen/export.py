"""Export a textured :class:`~texgen.mesh.Mesh` through trimesh: GLB (binary glTF, texture
embedded) or OBJ + MTL + PNG.

Vertices are split where a position has several UVs (one output vertex per distinct
(position, uv) pair). By default positions are written in the frame the mesh was loaded in
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

__all__ = ["to_trimesh", "export_mesh", "export_glb", "export_obj"]


def to_trimesh(mesh: Mesh, texture: Optional[np.ndarray] = None, normalized: bool = False,
               material_name: str = "texgen"):
    """A ``trimesh.Trimesh`` with a PBR material (named ``material_name``) whose base colour
    texture is ``texture`` (default ``mesh.texture``); vertex colours are kept when there is no
    texture."""
    import trimesh
    from PIL import Image

    tex = mesh.texture if texture is None else texture
    pos = mesh.pos if normalized else mesh.original_positions()
    if tex is not None and mesh.has_uv:
        F = mesh.num_faces
        pairs = np.stack([mesh.pos_idx.reshape(-1), mesh.uv_idx.reshape(-1)], 1).astype(np.int64)
        uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
        faces = inverse.reshape(F, 3)
        verts = pos[uniq[:, 0]]
        uv = mesh.uv[uniq[:, 1]]
        image = Image.fromarray(to_uint8(np.asarray(tex)[..., :3]))
        material = trimesh.visual.material.PBRMaterial(name=material_name, baseColorTexture=image,
                                                       baseColorFactor=[255, 255, 255, 255],
                                                       metallicFactor=0.0, roughnessFactor=1.0)
        visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
        return trimesh.Trimesh(vertices=verts, faces=faces, visual=visual, process=False)
    tm = trimesh.Trimesh(vertices=pos, faces=mesh.pos_idx, process=False)
    if mesh.vertex_colors is not None:
        tm.visual = trimesh.visual.ColorVisuals(tm, vertex_colors=to_uint8(mesh.vertex_colors))
    return tm


def export_glb(mesh: Mesh, path: Union[str, os.PathLike], texture: Optional[np.ndarray] = None,
               normalized: bool = False) -> str:
    """Write a binary glTF with the texture embedded; returns the path."""
    path = os.fspath(path)
    plan_outputs(path, option="path")
    data = to_trimesh(mesh, texture, normalized).export(file_type="glb")
    write_files({path: data})
    return path


def export_obj(mesh: Mesh, path: Union[str, os.PathLike], texture: Optional[np.ndarray] = None,
               normalized: bool = False, overwrite: bool = False) -> str:
    """Write ``NAME.obj``, ``NAME.mtl`` (material ``NAME``) and ``NAME.png`` next to it; returns
    the OBJ path. Raises :class:`~texgen.files.OutputError` if ``NAME.mtl`` or ``NAME.png``
    exist and ``overwrite`` is False."""
    from trimesh.exchange.obj import export_obj as _export_obj

    path = os.fspath(path)
    plan_outputs(path, overwrite=overwrite, option="path")
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
