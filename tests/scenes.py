"""Deterministic test scenes for the golden tests (tests/golden/) and the OpenGL comparison.

Every scene is built from numpy arithmetic only (fixed seeds where there is randomness), so
``build(name)`` returns the same arrays on every machine; tests/golden/make_golden.py stores
them with the reference's output, and tests/test_golden.py checks that the stored inputs still
equal what this module builds.

A :class:`Scene` holds
  * ``pos``: float32 ``[V, 4]`` or ``[B, V, 4]`` clip-space ``(x, y, z, w)``;
  * ``faces``: int32 ``[F, 3]``;
  * ``H``, ``W`` (pixels), ``viewport`` ("align_corners" / "opengl"), ``cull_backfaces``;
  * ``meta``: scene-specific facts the property tests use (documented per scene below).

Conventions: clip space as OpenGL (NDC z in [-1, 1], near -> -1); cameras look down -z in view
space; projection matrices are OpenGL's ``glFrustum``/``gluPerspective`` form.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List

import numpy as np

F32 = np.float32


@dataclass
class Scene:
    name: str
    pos: np.ndarray  # float32 [V, 4] or [B, V, 4]
    faces: np.ndarray  # int32 [F, 3]
    H: int
    W: int
    viewport: str = "align_corners"
    cull_backfaces: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def resolution(self):
        return (self.H, self.W)


# ----------------------------------------------------------------------------- geometry helpers

def perspective(fovy_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    """OpenGL perspective projection (float64 [4, 4]); maps view depth -near -> NDC z -1, -far -> +1."""
    f = 1.0 / np.tan(np.radians(fovy_deg) / 2)
    return np.array([[f / aspect, 0, 0, 0],
                     [0, f, 0, 0],
                     [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
                     [0, 0, -1, 0]], np.float64)


def orthographic(half_w: float, half_h: float, near: float, far: float) -> np.ndarray:
    """OpenGL orthographic projection (float64 [4, 4]) of the box [-hw, hw] x [-hh, hh] x [-far, -near]."""
    return np.array([[1 / half_w, 0, 0, 0],
                     [0, 1 / half_h, 0, 0],
                     [0, 0, -2 / (far - near), -(far + near) / (far - near)],
                     [0, 0, 0, 1]], np.float64)


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """View matrix (float64 [4, 4]) of a camera at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(a, np.float64) for a in (eye, target, up))
    f = target - eye
    f /= np.linalg.norm(f)
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    M = np.eye(4)
    M[0, :3], M[1, :3], M[2, :3] = s, u, -f
    M[:3, 3] = -M[:3, :3] @ eye
    return M


def to_clip(verts: np.ndarray, mvp: np.ndarray) -> np.ndarray:
    """World positions float [V, 3] -> clip float32 [V, 4] (computed in float64)."""
    v = np.concatenate([np.asarray(verts, np.float64), np.ones((len(verts), 1))], axis=1)
    return (v @ mvp.T).astype(F32)


def icosphere(subdivisions: int) -> (np.ndarray, np.ndarray):
    """Unit icosphere: vertices float64 [V, 3], faces int32 [F, 3] counter-clockwise seen from outside."""
    t = (1 + 5 ** 0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
         (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
         (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, np.float64) / np.linalg.norm(p) for p in v]
    faces = list(f)
    for _ in range(subdivisions):
        cache: Dict[tuple, int] = {}

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts), np.array(faces, np.int32)


def uv_sphere(n_lat: int, n_lon: int) -> (np.ndarray, np.ndarray):
    """Closed unit UV sphere (poles shared): vertices float64 [V, 3], faces int32 [F, 3], CCW from outside."""
    verts = [(0.0, 1.0, 0.0)]
    for i in range(1, n_lat):
        th = np.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * np.pi * j / n_lon
            verts.append((np.sin(th) * np.cos(ph), np.cos(th), -np.sin(th) * np.sin(ph)))
    verts.append((0.0, -1.0, 0.0))
    S = len(verts) - 1

    def ring(i, j):
        return 1 + (i - 1) * n_lon + (j % n_lon)

    faces = []
    for j in range(n_lon):
        faces.append((0, ring(1, j), ring(1, j + 1)))
        faces.append((S, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)))
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            faces += [(a, c, d), (a, d, b)]
    verts, faces = np.array(verts), np.array(faces, np.int32)
    # orient every face outward (CCW seen from outside)
    n = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    flip = (n * verts[faces].mean(axis=1)).sum(axis=1) < 0
    faces[flip] = faces[flip][:, ::-1]
    return verts, faces


def screen_to_ndc(s, size: int, viewport: str):
    """Inverse screen mapping: pixel coordinate ``s`` (centre of pixel p is p + 0.5) -> NDC."""
    s = np.asarray(s, np.float64)
    if viewport == "align_corners":
        return (s - 0.5) / (size - 1) * 2 - 1
    return s / size * 2 - 1


def ndc_to_screen(X, size: int, viewport: str):
    X = np.asarray(X, np.float64)
    if viewport == "align_corners":
        return (X * 0.5 + 0.5) * (size - 1) + 0.5
    return (X * 0.5 + 0.5) * size


def screen_verts(sx, sy, H: int, W: int, viewport: str, z=0.0, w=1.0) -> np.ndarray:
    """Clip-space float32 [V, 4] for screen positions (pixel units), depth ``z`` (NDC) and ``w``."""
    X, Y = screen_to_ndc(sx, W, viewport), screen_to_ndc(sy, H, viewport)
    n = len(X)
    z = np.broadcast_to(np.asarray(z, np.float64), (n,))
    w = np.broadcast_to(np.asarray(w, np.float64), (n,))
    return np.stack([X * w, Y * w, z * w, w], axis=1).astype(F32)


def random_scene(seed: int, H: int, W: int, n: int, size_px: float, clipped: bool, batch: int = 1):
    """``n`` separate triangles of about ``size_px`` pixels anywhere on screen, perspective w in
    [0.3, 4]; ``clipped``: ~20% of the vertices get w in [-1, 0.05] (behind or at the eye).
    Returns (pos float32 [batch, 3n, 4], faces int32 [n, 3])."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(0, 1, (batch, n, 1, 2)) * [W, H]
    s = c + rng.normal(0, size_px, (batch, n, 3, 2))
    w = rng.uniform(0.3, 4.0, (batch, n, 3))
    X, Y = s[..., 0] / W * 2 - 1, s[..., 1] / H * 2 - 1
    z = rng.uniform(-0.9, 0.9, (batch, n, 3))
    pos = np.stack([X * w, Y * w, z * w, w], -1).reshape(batch, n * 3, 4)
    if clipped:
        sel = rng.random(pos.shape[:2]) < 0.2
        pos[..., 3][sel] = rng.uniform(-1.0, 0.05, sel.sum())
    return pos.astype(np.float32), np.arange(n * 3, dtype=np.int32).reshape(n, 3)


def signed_area_screen(pos: np.ndarray, faces: np.ndarray, H: int, W: int, viewport: str) -> np.ndarray:
    """Signed screen area (float64 [F], y up, positive = CCW) of triangles with all w > 0."""
    p = pos.astype(np.float64)
    sx = ndc_to_screen(p[:, 0] / p[:, 3], W, viewport)
    sy = ndc_to_screen(p[:, 1] / p[:, 3], H, viewport)
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    return 0.5 * ((sx[b] - sx[a]) * (sy[c] - sy[a]) - (sx[c] - sx[a]) * (sy[b] - sy[a]))


# ----------------------------------------------------------------------------- scenes

def _tri_ccw() -> Scene:
    """One counter-clockwise triangle (positive screen area), align_corners, perspective w."""
    pos = np.array([[-0.8, -0.7, 0.2, 1.0], [1.5, -0.9, 0.5, 2.0], [0.1, 0.85, -0.3, 1.0]], F32)
    return Scene("tri_ccw", pos, np.array([[0, 1, 2]], np.int32), 64, 64, "align_corners")


def _tri_cw() -> Scene:
    """One clockwise triangle (negative screen area), opengl viewport; drawn since culling is off."""
    pos = np.array([[-0.9, 0.8, 0.1, 1.0], [0.7, 0.6, 0.4, 1.0], [-0.2, -0.85, 0.6, 1.0]], F32)
    return Scene("tri_cw", pos, np.array([[0, 1, 2]], np.int32), 48, 80, "opengl")


def _sphere_ortho() -> Scene:
    """Icosphere (320 faces) under an orthographic camera, align_corners."""
    v, f = icosphere(2)
    mvp = orthographic(1.25, 1.25, 0.5, 10.0) @ look_at((0.6, 0.9, 3.0), (0, 0, 0))
    return Scene("sphere_ortho", to_clip(v, mvp), f, 96, 96, "align_corners")


def _sphere_persp() -> Scene:
    """UV sphere (24 x 32, 1472 faces) under a perspective camera (fovy 50, near 0.1, far 20), opengl viewport."""
    v, f = uv_sphere(24, 32)
    H, W = 96, 128
    mvp = perspective(50.0, W / H, 0.1, 20.0) @ look_at((0.4, 1.1, 2.6), (0, 0, 0))
    return Scene("sphere_persp", to_clip(v, mvp), f, H, W, "opengl")


def _sphere_cull() -> Scene:
    """Icosphere (1280 faces), perspective, cull_backfaces=True. meta.culled_equals_unculled: a closed
    convex mesh seen from outside looks the same with and without culling."""
    v, f = icosphere(3)
    mvp = perspective(45.0, 1.0, 0.5, 10.0) @ look_at((-1.2, 0.7, 2.5), (0, 0, 0))
    return Scene("sphere_cull", to_clip(v, mvp), f, 80, 80, "align_corners", cull_backfaces=True,
                 meta={"culled_equals_unculled": True})


def _crack_fan() -> Scene:
    """257 needle triangles fanning around a vertex on a pixel centre, outer ring far outside the view:
    every pixel is covered by exactly one triangle (meta.cover_all)."""
    H = W = 64
    n = 257
    ang = 2 * np.pi * (np.arange(n) + 0.37) / n
    r = 3.0 * (1 + 0.05 * np.sin(7 * ang))  # NDC units: beyond the image, inside the guard band
    cx, cy = screen_to_ndc(30.5, W, "align_corners"), screen_to_ndc(41.5, H, "align_corners")
    xy = np.concatenate([[[cx, cy]], np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1)])
    pos = np.concatenate([xy, np.full((n + 1, 1), 0.25), np.ones((n + 1, 1))], axis=1).astype(F32)
    faces = np.array([(0, 1 + i, 1 + (i + 1) % n) for i in range(n)], np.int32)
    return Scene("crack_fan", pos, faces, H, W, "align_corners", meta={"cover_all": True})


def _crack_strips() -> Scene:
    """A tilted plane under perspective, cut into 3 x 160 jittered quads (960 thin triangles, about
    1 px wide and 30 px tall) reaching past the view; diagonals alternate. Every pixel covered by
    exactly one triangle (meta.cover_all)."""
    rng = np.random.default_rng(1234)
    nx, ny = 161, 4  # vertices per row / rows
    gx = np.linspace(-3.2, 3.2, nx)
    gy = np.linspace(-2.6, 2.6, ny)
    X, Y = np.meshgrid(gx, gy)
    X[:, 1:-1] += rng.uniform(-0.012, 0.012, size=(ny, nx - 2))
    Y[1:-1, :] += rng.uniform(-0.3, 0.3, size=(ny - 2, nx))
    Z = -2.2 + 0.2 * X + 0.15 * Y  # tilted plane in view space
    verts = np.stack([X.ravel(), Y.ravel(), Z.ravel()], 1)
    H, W = 72, 90
    mvp = perspective(60.0, W / H, 0.3, 8.0)
    faces = []
    for j in range(ny - 1):
        for i in range(nx - 1):
            a, b, c, d = j * nx + i, j * nx + i + 1, (j + 1) * nx + i, (j + 1) * nx + i + 1
            faces += [(a, b, d), (a, d, c)] if (i + j) % 2 == 0 else [(a, b, c), (b, d, c)]
    return Scene("crack_strips", to_clip(verts, mvp), np.array(faces, np.int32), H, W, "opengl",
                 meta={"cover_all": True})


def _near_plane() -> Scene:
    """Ground plane y = -1 from z = +4 (behind the camera) to z = -60 (past the far plane), x in [-3, 3],
    camera at the origin looking down -z (fovy 60, near 0.1, far 12): 2 x 2 quads (8 faces), vertices at z = +4
    have w < 0 and those at z = 0 have w = 0 exactly. Which face is seen at each pixel, and where, is
    known analytically by casting the pixel's ray onto the plane (meta: P, near, far, the grid);
    see tests/test_golden.py::near_plane_expectation."""
    H, W = 64, 96
    near, far = 0.1, 12.0
    P = perspective(60.0, W / H, near, far)
    xs = np.array([-3.0, 0.0, 3.0])
    zs = np.array([4.0, 0.0, -60.0])
    verts = np.array([(x, -1.0, z) for z in zs for x in xs])
    faces = []
    for j in range(2):
        for i in range(2):
            a, b, c, d = j * 3 + i, j * 3 + i + 1, (j + 1) * 3 + i, (j + 1) * 3 + i + 1
            faces += [(a, b, d), (a, d, c)]
    return Scene("near_plane", to_clip(verts, P), np.array(faces, np.int32), H, W, "opengl",
                 meta={"P": P, "ground_y": -1.0, "xs": xs, "zs": zs, "near": near, "far": far})


def _duplicates() -> Scene:
    """Coincident triangles: group A = faces 0..2 (face 0 listed three times with identical indices,
    then through a second copy of its vertices), group B = faces 3..4 (same triangle, 4 is the
    original, 3 the copy), plus face 5 = face 3 rotated (same geometry, vertex order (1, 2, 0)).
    meta.groups: each group of identical rows must show its lowest id wherever covered."""
    H, W = 48, 64
    a = np.array([[-0.9, -0.8, 0.3, 1.0], [0.6, -0.7, 0.1, 1.0], [-0.3, 0.9, 0.5, 1.0]], F32)
    b = np.array([[0.0, -0.2, 0.2, 2.0], [1.8, 0.1, 0.2, 2.0], [0.9, 1.7, 0.9, 2.0]], F32)
    pos = np.concatenate([a, a, b, b])  # vertices 0-2, 3-5 (copy of a), 6-8, 9-11 (copy of b)
    faces = np.array([[0, 1, 2], [0, 1, 2], [3, 4, 5], [9, 10, 11], [6, 7, 8], [10, 11, 9]], np.int32)
    return Scene("duplicates", pos, faces, H, W, "align_corners",
                 meta={"groups": [[0, 1, 2], [3, 4]], "same_geometry": [[3, 4, 5]]})


def _degenerate() -> Scene:
    """One ordinary background triangle (id 0, far) and triangles that must cover nothing (ids 1..):
    collinear, repeated vertex, all three equal, zero area after snapping to 1/256 px (1e-5 px tall),
    NaN / +inf / -inf coordinate, all w = 0, everything behind the camera (w < 0, z < -w).
    meta.empty_ids lists them."""
    H, W = 40, 56
    bg = [[-1.5, -1.5, 0.9, 1], [1.5, -1.5, 0.9, 1], [0, 1.8, 0.9, 1]]
    tiny = 1e-5 * 2 / (H - 1)  # NDC height of 1e-5 px
    tris = [
        [[-0.5, -0.5, 0, 1], [0, 0, 0, 1], [0.5, 0.5, 0, 1]],  # collinear
        [[-0.6, 0.2, 0, 1], [-0.6, 0.2, 0, 1], [0.4, -0.3, 0, 1]],  # repeated vertex
        [[0.1, 0.1, 0, 1]] * 3,  # a point
        [[-0.7, 0.013, 0, 1], [0.7, 0.013, 0, 1], [0.0, 0.013 + tiny, 0, 1]],  # snaps to zero area
        [[-0.5, -0.5, 0, 1], [0.5, -0.5, np.nan, 1], [0, 0.5, 0, 1]],
        [[-0.5, -0.5, 0, 1], [np.inf, -0.5, 0, 1], [0, 0.5, 0, 1]],
        [[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0, 0.5, 0, -np.inf]],
        [[-0.5, -0.5, 0, 0], [0.5, -0.5, 0, 0], [0, 0.5, 0, 0]],  # all w = 0
        [[-0.5, -0.5, 1, -1], [0.5, -0.5, 1, -1], [0, 0.5, 1, -1]],  # behind the camera
    ]
    pos = np.array([bg] + tris, np.float64).reshape(-1, 4).astype(F32)
    faces = np.arange(len(pos), dtype=np.int32).reshape(-1, 3)
    return Scene("degenerate", pos, faces, H, W, "align_corners",
                 meta={"empty_ids": list(range(1, len(faces)))})


def _subpixel() -> Scene:
    """400 sub-pixel triangles (circumradius <= 0.4 px, seed 7) in a 32 x 48 opengl image, equal depth
    order by id. Each covers at most one pixel centre, decidable in float64 for those whose centre
    is not within 1e-3 px of an edge (meta.subpixel)."""
    rng = np.random.default_rng(7)
    H, W, n = 32, 48, 400
    c = rng.uniform([1, 1], [W - 1, H - 1], size=(n, 2))
    ang = rng.uniform(0, 2 * np.pi, size=(n, 1)) + np.array([0, 2.1, 4.0])
    r = rng.uniform(0.05, 0.4, size=(n, 3))
    sx = c[:, :1] + r * np.cos(ang)
    sy = c[:, 1:] + r * np.sin(ang)
    z = rng.uniform(-0.5, 0.5, size=(n, 1)) + np.zeros((1, 3))
    pos = screen_verts(sx.ravel(), sy.ravel(), H, W, "opengl", z=z.ravel())
    return Scene("subpixel", pos, np.arange(3 * n, dtype=np.int32).reshape(n, 3), H, W, "opengl",
                 meta={"subpixel": True})


def _grid_on_centres(viewport: str) -> Scene:
    """A 6 x 5 grid of squares with corners exactly on pixel centres, each cut by a diagonal (alternating
    directions), so shared edges (horizontal, vertical, diagonal) pass through pixel centres; plus
    a fan of 8 triangles around a vertex on a pixel centre. meta.region: the grid covers the pixel
    centres in [x0, x1] x [y0, y1] (pixel indices), interior ones exactly once."""
    H, W = 24, 20
    x0, y0, step, nx, ny = 2, 3, 2, 6, 5  # corners at pixel centres x0 + step * i
    gx = x0 + 0.5 + step * np.arange(nx + 1)
    gy = y0 + 0.5 + step * np.arange(ny + 1)
    GX, GY = np.meshgrid(gx, gy)
    sx, sy = GX.ravel(), GY.ravel()
    faces = []
    for j in range(ny):
        for i in range(nx):
            a, b, c, d = j * (nx + 1) + i, j * (nx + 1) + i + 1, (j + 1) * (nx + 1) + i, (j + 1) * (nx + 1) + i + 1
            faces += [(a, b, d), (a, d, c)] if (i + j) % 2 == 0 else [(a, b, c), (b, d, c)]
    # fan around (15.5, 18.5) with spokes through pixel centres (axis-aligned and 45 degree)
    cx, cy = 15.5, 18.5
    k = np.arange(8)
    rx = np.round(np.cos(k * np.pi / 4)) * 3
    ry = np.round(np.sin(k * np.pi / 4)) * 3
    base = len(sx)
    sx = np.concatenate([sx, [cx], cx + rx])
    sy = np.concatenate([sy, [cy], cy + ry])
    faces += [(base, base + 1 + i, base + 1 + (i + 1) % 8) for i in range(8)]
    pos = screen_verts(sx, sy, H, W, viewport, z=0.5)
    return Scene(f"grid_centres_{viewport}", pos, np.array(faces, np.int32), H, W, viewport,
                 meta={"region": (x0, x0 + step * nx, y0, y0 + step * ny), "fan_centre": (15, 18),
                       "fan_ids": list(range(2 * nx * ny, 2 * nx * ny + 8))})


def _nonsquare() -> Scene:
    """Icosphere (320 faces) stretched across a 37 x 1000 image (H x W), perspective, align_corners."""
    v, f = icosphere(2)
    v = v * np.array([3.5, 0.8, 0.8])
    H, W = 37, 1000
    mvp = perspective(30.0, W / H, 0.5, 20.0) @ look_at((0.3, 0.4, 4.0), (0, 0, 0))
    return Scene("nonsquare_37x1000", to_clip(v, mvp), f, H, W, "align_corners")


def _thin_image() -> Scene:
    """The tri_ccw triangle plus a crossing one in a 1 x 64 image (a single row), opengl."""
    pos = np.array([[-0.8, -0.7, 0.2, 1.0], [1.5, -0.9, 0.5, 2.0], [0.1, 0.85, -0.3, 1.0],
                    [-1.0, 0.5, 0.0, 1.0], [0.2, -0.5, 0.0, 1.0], [0.9, 0.9, 0.0, 1.0]], F32)
    return Scene("row_1x64", pos, np.array([[0, 1, 2], [3, 4, 5]], np.int32), 1, 64, "opengl")


def _batch3() -> Scene:
    """One icosphere mesh (320 faces, plus a ground quad) seen by 3 cameras: pos [3, V, 4], opengl.
    meta.batch_equals_single: rendering the batch equals 3 single calls."""
    v, f = icosphere(2)
    v = np.concatenate([v, [[-2, -1, -2], [2, -1, -2], [2, -1, 2], [-2, -1, 2]]])
    n = len(v) - 4
    f = np.concatenate([f, [[n, n + 2, n + 1], [n, n + 3, n + 2]]]).astype(np.int32)
    H, W = 64, 80
    P = perspective(55.0, W / H, 0.2, 15.0)
    eyes = [(0.0, 0.5, 3.0), (2.5, 1.5, -1.0), (-1.0, 3.0, 1.5)]
    pos = np.stack([to_clip(v, P @ look_at(e, (0, -0.2, 0))) for e in eyes])
    return Scene("batch3", pos, f, H, W, "opengl", meta={"batch_equals_single": True})


def _zero_faces() -> Scene:
    """No faces at all (F = 0): output is all zeros (meta.all_empty)."""
    pos = np.array([[0, 0, 0, 1], [1, 0, 0, 1], [0, 1, 0, 1]], F32)
    return Scene("zero_faces", pos, np.zeros((0, 3), np.int32), 16, 24, "align_corners", meta={"all_empty": True})


def _depth_order() -> Scene:
    """Three overlapping triangles whose depth order is the reverse of their ids, and two
    interpenetrating ones (ids 3, 4) crossing along a line; ortho, align_corners."""
    t = lambda pts, z: [[x, y, zz, 1.0] for (x, y), zz in zip(pts, z)]  # noqa: E731
    pos = np.array(t([(-0.9, -0.9), (0.5, -0.8), (-0.6, 0.6)], [0.6] * 3)
                   + t([(-0.7, -0.6), (0.7, -0.5), (-0.2, 0.8)], [0.3] * 3)
                   + t([(-0.5, -0.3), (0.9, -0.2), (0.1, 0.9)], [0.0] * 3)
                   + t([(-0.2, 0.1), (0.9, 0.3), (0.4, 0.95)], [-0.5, 0.5, 0.5])
                   + t([(0.0, 0.9), (0.95, 0.7), (0.3, 0.0)], [0.0, 0.0, 0.0]), F32)
    return Scene("depth_order", pos, np.arange(15, dtype=np.int32).reshape(5, 3), 64, 64, "align_corners")


_BUILDERS: Dict[str, Callable[[], Scene]] = {}
for _fn in (_tri_ccw, _tri_cw, _sphere_ortho, _sphere_persp, _sphere_cull, _crack_fan, _crack_strips,
            _near_plane, _duplicates, _degenerate, _subpixel, lambda: _grid_on_centres("align_corners"),
            lambda: _grid_on_centres("opengl"), _nonsquare, _thin_image, _batch3, _zero_faces, _depth_order):
    _s = _fn()
    _BUILDERS[_s.name] = _fn
del _fn, _s

NAMES: List[str] = list(_BUILDERS)


def build(name: str) -> Scene:
    """The scene called ``name`` (one of :data:`NAMES`), freshly built."""
    return _BUILDERS[name]()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository (for its source files)
GOLDEN_DIR = os.path.join(ROOT, "tests", "golden")


@functools.lru_cache(maxsize=None)
def load_golden(name: str) -> dict:
    """The stored golden ``tests/golden/<name>.npz`` as a dict of numpy arrays (``pos`` always
    ``[B, V, 4]``), with ``H``, ``W`` (int), ``viewport`` (str) and ``cull_backfaces`` (bool).
    The goldens run from these stored inputs only; ``build`` is checked against them within a few
    ULPs (tests/test_golden.py::test_inputs_unchanged). Cached: callers must not modify it."""
    with np.load(os.path.join(GOLDEN_DIR, f"{name}.npz")) as z:
        g = {k: z[k] for k in z.files}
    g["H"], g["W"] = int(g["H"]), int(g["W"])
    g["viewport"], g["cull_backfaces"] = str(g["viewport"]), bool(g["cull_backfaces"])
    return g
