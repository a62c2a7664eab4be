"""Procedural meshes and camera matrices used by the demo, tests and benchmarks.

Conventions: right-handed world, y up; cameras look down their -z axis (OpenGL). Clip space
``(x, y, z, w)`` as OpenGL: NDC z in [-1, 1], -1 at the near plane. Matrices are float32 [4, 4]
and act on column vectors: ``clip = P @ V @ [x, y, z, 1]``.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np


def uv_sphere(n_lat: int, n_lon: int, radius: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """Closed UV sphere: ``n_lon * (2 * n_lat - 2)`` triangles (quads split, one triangle fan at
    each pole). Returns vertices float32 [V, 3] and faces int32 [F, 3], outward counter-clockwise."""
    if n_lat < 2 or n_lon < 3:
        raise ValueError(f"n_lat must be >= 2 and n_lon >= 3, got {n_lat}, {n_lon}")
    theta = np.linspace(0.0, math.pi, n_lat + 1)[1:-1]  # interior rings, from +y down
    phi = np.linspace(0.0, 2.0 * math.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), -np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]]) * radius
    top, bottom = 0, len(verts) - 1

    def vid(i, j):
        return 1 + i * n_lon + (j % n_lon)

    faces = []
    for j in range(n_lon):
        faces.append((top, vid(0, j), vid(0, j + 1)))
        faces.append((bottom, vid(n_lat - 2, j + 1), vid(n_lat - 2, j)))
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b, c, d = vid(i, j), vid(i, j + 1), vid(i + 1, j), vid(i + 1, j + 1)
            faces.append((a, c, d))
            faces.append((a, d, b))
    return verts.astype(np.float32), np.asarray(faces, dtype=np.int32)


def sphere_with_faces(n_faces: int, radius: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """A UV sphere with about ``n_faces`` triangles (n_lon = 2 n_lat)."""
    n_lat = max(2, int(round(math.sqrt(n_faces / 4.0))))
    return uv_sphere(n_lat, 2 * n_lat, radius)


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World-to-camera matrix float32 [4, 4] (camera looks down -z). ``up`` must not be parallel
    to the view direction."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    f = target - eye
    f /= np.linalg.norm(f)
    s = np.cross(f, up)
    if np.linalg.norm(s) < 1e-12:
        raise ValueError("look_at: up is parallel to the view direction; pass another up vector")
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m.astype(np.float32)


def orthographic(half_width: float, near: float, far: float, aspect: float = 1.0) -> np.ndarray:
    """Orthographic projection float32 [4, 4]: x in [-hw*aspect, hw*aspect], y in [-hw, hw]."""
    m = np.zeros((4, 4))
    m[0, 0] = 1.0 / (half_width * aspect)
    m[1, 1] = 1.0 / half_width
    m[2, 2] = -2.0 / (far - near)
    m[2, 3] = -(far + near) / (far - near)
    m[3, 3] = 1.0
    return m.astype(np.float32)


def perspective(fov_y_deg: float, near: float, far: float, aspect: float = 1.0) -> np.ndarray:
    """OpenGL perspective projection float32 [4, 4] (vertical field of view in degrees)."""
    f = 1.0 / math.tan(math.radians(fov_y_deg) / 2.0)
    m = np.zeros((4, 4))
    m[0, 0] = f / aspect
    m[1, 1] = f
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2.0 * far * near / (near - far)
    m[3, 2] = -1.0
    return m.astype(np.float32)


def to_clip(verts: np.ndarray, mvp: np.ndarray) -> np.ndarray:
    """float [V, 3] world positions -> float32 [V, 4] clip positions (``mvp @ [x, y, z, 1]``)."""
    hom = np.concatenate([verts.astype(np.float32), np.ones((len(verts), 1), np.float32)], 1)
    return (hom @ mvp.T).astype(np.float32)
