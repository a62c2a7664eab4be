"""texgen cameras: Hunyuan3D-2's views, well-defined poles, image orientation and pixel mapping."""
import math

import numpy as np
import pytest

from texgen import Mesh, Renderer
from texgen.camera import (HUNYUAN_AZIMUTHS, HUNYUAN_ELEVATIONS, HUNYUAN_WEIGHTS, Camera, hunyuan_cameras,
                           parse_cameras)
from conftest import TEXGEN_BACKEND as BACKEND



def test_hunyuan_default_views():
    cams = hunyuan_cameras()
    assert [c.azimuth for c in cams] == [0, 90, 180, 270, 0, 180] == list(HUNYUAN_AZIMUTHS)
    assert [c.elevation for c in cams] == [0, 0, 0, 0, 90, -90] == list(HUNYUAN_ELEVATIONS)
    assert list(HUNYUAN_WEIGHTS) == [1, 0.1, 0.5, 0.1, 0.05, 0.05]
    assert all(c.projection == "ortho" and c.ortho_half_width == 0.6 and c.distance == 1.45 for c in cams)


@pytest.mark.parametrize("elev,azim,expected", [
    (0, 0, (0, 0, 1)), (0, 90, (1, 0, 0)), (0, 180, (0, 0, -1)), (0, 270, (-1, 0, 0)),
    (90, 0, (0, 1, 0)), (-90, 0, (0, -1, 0)), (90, 180, (0, 1, 0)),
])
def test_positions(elev, azim, expected):
    np.testing.assert_array_equal(Camera(elev, azim, 2.0).position, 2.0 * np.array(expected, float))


def test_basis_orthonormal_right_handed():
    for e in range(-90, 91, 15):
        for a in range(-180, 361, 30):
            cam = Camera(e, a)
            R = np.stack(cam.basis())
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
            assert np.linalg.det(R) == pytest.approx(1.0)
            np.testing.assert_allclose(cam.basis()[2] * cam.distance, cam.position, atol=1e-12)


@pytest.mark.parametrize("azim", [0, 90, 180, 270, 37.5])
def test_poles_are_explicit_and_continuous(azim):
    sa, ca = math.sin(math.radians(azim)), math.cos(math.radians(azim))
    if azim % 90 == 0:  # exact: no 6e-17 from cos(90 deg)
        sa, ca = round(sa), round(ca)
    right, up, back = Camera(90, azim).basis()
    np.testing.assert_array_equal(back, [0, 1, 0])
    np.testing.assert_allclose(up, [-sa, 0, -ca], atol=0 if azim % 90 == 0 else 1e-15)
    r2, u2, _ = Camera(-90, azim).basis()
    np.testing.assert_allclose(u2, [sa, 0, ca], atol=0 if azim % 90 == 0 else 1e-15)
    # the limit from just below the pole
    rn, un, _ = Camera(90 - 1e-6, azim).basis()
    np.testing.assert_allclose(un, up, atol=1e-7)
    np.testing.assert_allclose(rn, right, atol=1e-7)


def test_top_view_matches_hunyuan_orientation():
    # Hunyuan3D-2's top view (elev 90, azim 0) of a glTF-oriented mesh: +X to the right, the
    # object's front (+Z) at the bottom of the image
    right, up, _ = Camera(90, 0).basis()
    np.testing.assert_array_equal(right, [1, 0, 0])
    np.testing.assert_array_equal(up, [0, 0, -1])
    right, up, _ = Camera(-90, 0).basis()
    np.testing.assert_array_equal(right, [1, 0, 0])
    np.testing.assert_array_equal(up, [0, 0, 1])


def _plane(z=0.0, half=0.5):
    pos = np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]], np.float32)
    return Mesh(pos, np.array([[0, 1, 2], [0, 2, 3]], np.int32))


def test_image_rows_and_pixel_centres():
    """Image row 0 is the top (world +Y in the front view); NDC +-1 fall on edge pixel centres."""
    H, W = 9, 13
    cam = Camera(0, 0, ortho_half_width=0.5)  # the plane exactly fills the view vertically
    r = Renderer(_plane(half=2.0), backend=BACKEND)
    pm = r.position_map(cam, (H, W)).numpy()
    aspect = W / H
    for row in range(H):
        for col in range(W):
            x = -0.5 * aspect + aspect * col / (W - 1)
            y = 0.5 - row / (H - 1)
            # vertices snap to 1/256 pixel (pixel = 0.12 world units here)
            np.testing.assert_allclose(pm[row, col], [x, y, 0], atol=1e-3)


def test_top_and_side_view_orientation():
    # a small marker square at +X (right) in front of the object's +Z side
    pos = np.array([[0.3, -0.05, 0.2], [0.4, -0.05, 0.2], [0.4, 0.05, 0.2], [0.3, 0.05, 0.2]], np.float32)
    m = Mesh(pos, np.array([[0, 1, 2], [0, 2, 3]], np.int32))
    r = Renderer(m, backend=BACKEND)
    rows, cols = np.nonzero(r.mask(Camera(0, 0), 64).numpy())
    assert cols.min() > 32 and abs(rows.mean() - 31.5) < 3  # front: right of centre, mid height
    # top view: marker (z=0.2, +Z = front) must appear below the centre, +X to the right
    tri = np.array([[0.3, 0.0, 0.2], [0.4, 0.0, 0.2], [0.4, 0.0, 0.3], [0.3, 0.0, 0.3]], np.float32)
    r.mesh = Mesh(tri, np.array([[0, 1, 2], [0, 2, 3]], np.int32))
    rows, cols = np.nonzero(r.mask(Camera(90, 0), 64).numpy())
    assert rows.min() > 32 and cols.min() > 32
    rows, cols = np.nonzero(r.mask(Camera(-90, 0), 64).numpy())
    assert rows.max() < 32 and cols.min() > 32


def test_linear_depth_inverts_projection():
    for proj in ("ortho", "perspective"):
        cam = Camera(20, 30, 2.0, proj)
        p = np.array([0.1, -0.2, 0.3, 1.0])
        clip = cam.mvp(64) @ p
        dist = -(cam.view_matrix() @ p)[2]
        assert cam.linear_depth(clip[2] / clip[3]) == pytest.approx(dist, rel=1e-9)


def test_perspective_projects_like_backprojection():
    cam = Camera(10, 40, 2.0, "perspective", fov=40)
    p = np.array([0.2, 0.1, -0.1, 1.0])
    clip = cam.mvp((32, 48)) @ p
    ndc = clip[:3] / clip[3]
    right, up, back = cam.basis()
    rel = p[:3] - cam.position
    dist = -rel @ back
    t = math.tan(math.radians(20))
    assert ndc[0] == pytest.approx((rel @ right) / (dist * t * 48 / 32))
    assert ndc[1] == pytest.approx(-(rel @ up) / (dist * t))


def test_parse_cameras_and_errors():
    cams, w = parse_cameras("hunyuan")
    assert len(cams) == 6 and w == list(HUNYUAN_WEIGHTS)
    cams, w = parse_cameras("0:0:1, 30:90, -90:0:0.5")
    assert [(c.elevation, c.azimuth) for c in cams] == [(0, 0), (30, 90), (-90, 0)] and w == [1, 1, 0.5]
    with pytest.raises(ValueError):
        parse_cameras("0")
    with pytest.raises(ValueError):
        parse_cameras("a:b")
    with pytest.raises(ValueError):
        Camera(projection="fisheye")
    with pytest.raises(ValueError):
        Camera(elevation=float("nan"))
    assert hash(Camera(0, 0)) == hash(Camera(-0.0, 0.0)) and Camera(0, 0) == Camera(-0.0, 0)
