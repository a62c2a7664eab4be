"""Cameras on a sphere around the object: (elevation, azimuth, distance), orthographic or perspective.

World frame: +Y up, object front facing +Z (glTF). A camera with elevation ``e`` and azimuth ``a``
(degrees) sits at ``center + distance * (cos e sin a, sin e, cos e cos a)`` and looks at
``center``: azimuth 0 sees the front (camera on +Z), azimuth 90 the object's +X side, 180 the
back, 270 the -X side; elevation +90 looks straight down from +Y (top view), -90 straight up.
These are the views Hunyuan3D-2's (elev, azim) produce for a glTF-oriented mesh.

Up vector: the direction of increasing elevation, ``(-sin e sin a, cos e, -sin e cos a)``, i.e.
world +Y tilted away from the camera. It is defined in closed form everywhere, so the poles are
not a special case: at elevation +90 it points along ``-(sin a, 0, cos a)`` (for azimuth 0 the
object's back is at the top of the image, its front at the bottom), at -90 along
``+(sin a, 0, cos a)``. Sines and cosines of multiples of 90 degrees are exact, so the top and
bottom views do not depend on ``cos(90 deg)`` rounding to 6e-17.

Camera space: x = right, y = up, z = towards the viewer (the camera looks along -z).
Images: row 0 is the top of the picture (camera up), column 0 its left. ``render_npu`` rows grow
with NDC y, so the projection maps camera-up to NDC **-y**: the rasterizer's row r is image
row r, with no flip anywhere. Pixel centres follow render_npu's "align_corners" viewport: NDC -1
and +1 fall on the centres of the first and last pixel, so pixel ``(row, col)`` of an ``H x W``
image sits at NDC ``x = 2 col / (W - 1) - 1``, ``y = 2 row / (H - 1) - 1``.
Depth: render_npu returns NDC ``z/w`` in [-1, 1] (near = -1); :meth:`Camera.linear_depth`
converts it to the distance along the viewing axis in world units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple, Union

import numpy as np

__all__ = ["Camera", "hunyuan_cameras", "HUNYUAN_AZIMUTHS", "HUNYUAN_ELEVATIONS", "HUNYUAN_WEIGHTS",
           "orbit_cameras", "parse_cameras", "DEFAULT_DISTANCE", "DEFAULT_ORTHO_HALF_WIDTH"]

DEFAULT_DISTANCE = 1.45
DEFAULT_ORTHO_HALF_WIDTH = 0.6
HUNYUAN_AZIMUTHS = (0.0, 90.0, 180.0, 270.0, 0.0, 180.0)
HUNYUAN_ELEVATIONS = (0.0, 0.0, 0.0, 0.0, 90.0, -90.0)
HUNYUAN_WEIGHTS = (1.0, 0.1, 0.5, 0.1, 0.05, 0.05)

Resolution = Union[int, Tuple[int, int]]


def _sincos_deg(deg: float) -> Tuple[float, float]:
    """(sin, cos) of an angle in degrees, exact for multiples of 90."""
    r = math.fmod(deg, 360.0)
    if r < 0:
        r += 360.0
    exact = {0.0: (0.0, 1.0), 90.0: (1.0, 0.0), 180.0: (0.0, -1.0), 270.0: (-1.0, 0.0)}
    if r in exact:
        return exact[r]
    t = math.radians(r)
    return math.sin(t), math.cos(t)


def as_hw(resolution: Resolution) -> Tuple[int, int]:
    if isinstance(resolution, (int, np.integer)):
        return int(resolution), int(resolution)
    h, w = resolution
    return int(h), int(w)


@dataclass(frozen=True)
class Camera:
    """A look-at camera on a sphere around ``center`` (world units, degrees).

    Hashable and immutable: it is part of the raster cache key.

    Args:
        elevation: degrees above the XZ plane; +90 = top view.
        azimuth: degrees around +Y from +Z towards +X; 0 = front, 90 = the object's +X side.
        distance: camera distance from ``center``.
        projection: "ortho" (default) or "perspective".
        ortho_half_width: half the visible height for "ortho" (world units; default 0.6, so
            the visible square is 1.2 wide as in Hunyuan3D-2). The width is scaled by W/H.
        fov: vertical field of view in degrees for "perspective".
        near, far: clipping distances along the viewing axis.
        center: the look-at point.
    """
    elevation: float = 0.0
    azimuth: float = 0.0
    distance: float = DEFAULT_DISTANCE
    projection: str = "ortho"
    ortho_half_width: float = DEFAULT_ORTHO_HALF_WIDTH
    fov: float = 50.0
    near: float = 0.1
    far: float = 10.0
    center: Tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self):
        for name in ("elevation", "azimuth", "distance", "ortho_half_width", "fov", "near", "far"):
            val = float(getattr(self, name))
            if not math.isfinite(val):
                raise ValueError(f"Camera.{name} must be finite, got {val}")
            object.__setattr__(self, name, val + 0.0)  # normalise -0.0 for hashing/printing
        object.__setattr__(self, "center", tuple(float(c) for c in self.center))
        if self.projection not in ("ortho", "perspective"):
            raise ValueError(f"Camera.projection must be 'ortho' or 'perspective', got {self.projection!r}")
        if self.distance <= 0 or self.ortho_half_width <= 0 or not 0 < self.fov < 180:
            raise ValueError("Camera distance, ortho_half_width must be > 0 and fov in (0, 180)")
        if not 0 < self.near < self.far:
            raise ValueError(f"Camera needs 0 < near < far, got near={self.near}, far={self.far}")

    # -- frame -----------------------------------------------------------------------------------
    def basis(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, up, back) float64 unit vectors in world space; ``back`` points from the
        look-at point towards the camera (camera space +z)."""
        se, ce = _sincos_deg(self.elevation)
        sa, ca = _sincos_deg(self.azimuth)
        back = np.array([ce * sa, se, ce * ca])
        up = np.array([-se * sa, ce, -se * ca])
        right = np.cross(up, back)  # = forward x up with forward = -back
        return right, up, back

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world space (float64 [3])."""
        return np.asarray(self.center) + self.distance * self.basis()[2]

    @property
    def is_ortho(self) -> bool:
        return self.projection == "ortho"

    def view_matrix(self) -> np.ndarray:
        """World -> camera, float64 [4, 4] (rows: right, up, back)."""
        r, u, b = self.basis()
        R = np.stack([r, u, b])
        M = np.eye(4)
        M[:3, :3] = R
        M[:3, 3] = -R @ self.position
        return M

    def projection_matrix(self, resolution: Resolution = 1) -> np.ndarray:
        """Camera -> clip, float64 [4, 4]; camera-up maps to NDC -y (see module docstring)."""
        H, W = as_hw(resolution)
        aspect = W / H
        n, f = self.near, self.far
        P = np.zeros((4, 4))
        if self.is_ortho:
            P[0, 0] = 1.0 / (self.ortho_half_width * aspect)
            P[1, 1] = -1.0 / self.ortho_half_width
            P[2, 2] = -2.0 / (f - n)
            P[2, 3] = -(f + n) / (f - n)
            P[3, 3] = 1.0
        else:
            t = math.tan(math.radians(self.fov) / 2)
            P[0, 0] = 1.0 / (t * aspect)
            P[1, 1] = -1.0 / t
            P[2, 2] = -(f + n) / (f - n)
            P[2, 3] = -2.0 * f * n / (f - n)
            P[3, 2] = -1.0
        return P

    def mvp(self, resolution: Resolution = 1) -> np.ndarray:
        """World -> clip, float64 [4, 4]."""
        return self.projection_matrix(resolution) @ self.view_matrix()

    # -- depth and pixel size ------------------------------------------------------------------------
    def linear_depth(self, ndc_z):
        """NDC depth ``z/w`` (numpy or torch) -> distance in front of the camera (world units)."""
        n, f = self.near, self.far
        if self.is_ortho:
            return ndc_z * (0.5 * (f - n)) + 0.5 * (f + n)
        return (2.0 * f * n) / ((f + n) - ndc_z * (f - n))

    def pixel_size(self, resolution: Resolution, depth=None):
        """World size of one pixel step at ``depth`` (ignored for ortho); the larger of the two
        axes' steps."""
        H, W = as_hw(resolution)
        steps = max(2.0 / max(H - 1, 1), 2.0 * (W / H) / max(W - 1, 1))
        if self.is_ortho:
            return self.ortho_half_width * steps
        t = math.tan(math.radians(self.fov) / 2)
        return (depth if depth is not None else self.distance) * t * steps

    def label(self) -> str:
        return f"e{self.elevation:g}_a{self.azimuth:g}"


def hunyuan_cameras(distance: float = DEFAULT_DISTANCE, projection: str = "ortho", **kwargs) -> List[Camera]:
    """Hunyuan3D-2's six views: azimuth [0, 90, 180, 270, 0, 180], elevation [0, 0, 0, 0, 90, -90]
    (front, right, back, left, top, bottom). Their bake weights are :data:`HUNYUAN_WEIGHTS`."""
    return [Camera(e, a, distance, projection, **kwargs) for e, a in zip(HUNYUAN_ELEVATIONS, HUNYUAN_AZIMUTHS)]


def orbit_cameras(n: int, elevation: float = 0.0, start: float = 0.0, **kwargs) -> List[Camera]:
    """``n`` cameras evenly spaced in azimuth at one elevation."""
    return [Camera(elevation, start + 360.0 * i / n, **kwargs) for i in range(n)]


def parse_cameras(spec: str, distance: float = DEFAULT_DISTANCE, projection: str = "ortho",
                  **kwargs) -> Tuple[List[Camera], List[float]]:
    """Cameras and weights from a string: "hunyuan" (the six default views) or a comma-separated
    list of ``elevation:azimuth[:weight]`` items, e.g. ``"0:0:1,0:180:0.5,90:0:0.1"``."""
    spec = spec.strip()
    if spec.lower() in ("hunyuan", "hunyuan6", "default"):
        return hunyuan_cameras(distance, projection, **kwargs), list(HUNYUAN_WEIGHTS)
    cams, weights = [], []
    for item in spec.split(","):
        parts = item.strip().split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"camera spec {item!r}: expected elevation:azimuth[:weight]")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"camera spec {item!r}: not numbers") from None
        if not all(math.isfinite(v) for v in vals) or (len(vals) == 3 and vals[2] < 0):
            raise ValueError(f"camera spec {item!r}: angles must be finite and the weight finite and >= 0")
        cams.append(Camera(vals[0], vals[1], distance, projection, **kwargs))
        weights.append(vals[2] if len(vals) == 3 else 1.0)
    return cams, weights
