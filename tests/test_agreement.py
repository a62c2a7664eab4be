"""The agreement helper (tests/agreement.py) itself: it must reject what the contract's rule rejects and
excuse only what the rule excuses, or every golden test built on it could not fail."""
from __future__ import annotations


import numpy as np
import pytest

import scenes
from agreement import agreement_report, assert_agree
from render_npu.backends import reference


@pytest.fixture(scope="module")
def two():
    """Two triangles sharing the edge v1-v2 (a diagonal through pixel centres), 16 x 16 align_corners;
    plus the reference output."""
    H = W = 16
    pos = scenes.screen_verts(np.array([1.2, 14.5, 1.5, 14.6]), np.array([1.1, 1.5, 14.5, 14.9]), H, W,
                              "align_corners", z=np.array([0.1, 0.2, 0.3, 0.4]))
    faces = np.array([[0, 1, 2], [1, 3, 2]], np.int32)
    out = reference.rasterize_numpy(pos[None], faces, H, W, "align_corners")
    return pos, faces, H, W, out


def _args(two):
    pos, faces, H, W, _ = two
    return pos, faces, H, W, "align_corners"


def test_identical_is_ok(two):
    rep = assert_agree(two[4], two[4], *_args(two), exact=True)
    assert rep["id_mismatch"] == 0 and rep["covered_ref"] > 100


def test_wrong_id_far_from_edges_fails(two):
    rast = two[4][0].copy()
    rast[0, 4, 4, 3] = 2  # pixel (col 4, row 4) is deep inside triangle 0
    with pytest.raises(AssertionError, match="1 unexcused"):
        assert_agree(two[4], (rast, two[4][1]), *_args(two), tag="selftest-wrong-id")


def test_empty_vs_covered_fails(two):
    rast = two[4][0].copy()
    rast[0, 4, 4] = 0
    with pytest.raises(AssertionError):
        assert_agree(two[4], (rast, two[4][1]), *_args(two), tag="selftest-empty")


def test_swap_on_shared_edge_is_excused_unless_exact(two):
    rast, depth = two[4]
    # a pixel centre on the shared diagonal within 1e-3 px: find one by distance to the segment v1-v2
    pos, faces, H, W, _ = two
    sx = scenes.ndc_to_screen(pos[:, 0], W, "align_corners")
    sy = scenes.ndc_to_screen(pos[:, 1], H, "align_corners")
    a, b = np.array([sx[1], sy[1]]), np.array([sx[2], sy[2]])
    py, px = np.mgrid[0:H, 0:W]
    c = np.stack([px + 0.5, py + 0.5], -1)
    t = np.clip(((c - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
    d = np.linalg.norm(c - (a + t[..., None] * (b - a)), axis=-1)
    on_edge = np.argwhere((d <= 1e-3) & (rast[0, ..., 3] > 0))
    assert len(on_edge) >= 5, "the layout puts pixel centres on the shared edge"
    r, col = on_edge[len(on_edge) // 2]
    other = rast.copy()
    other[0, r, col, 3] = 3 - rast[0, r, col, 3]
    assert agreement_report(two[4], (other, depth), *_args(two))["unexcused"] == 0
    with pytest.raises(AssertionError):
        assert_agree(two[4], (other, depth), *_args(two), exact=True, tag="selftest-exact")


def test_near_edge_but_beyond_tolerance_fails(two):
    """Pixel (col 8, row 3) is inside triangle 0, about 0.3 px or more from every edge: no excuse."""
    rast, depth = two[4]
    other = rast.copy()
    assert rast[0, 3, 8, 3] == 1
    other[0, 3, 8, 3] = 0
    assert agreement_report(two[4], (other, depth), *_args(two))["unexcused"] == 1


def test_barycentric_and_depth_tolerance(two):
    rast, depth = two[4]
    other = rast.copy()
    other[0, 4, 4, 0] += 5e-6
    assert agreement_report(two[4], (other, depth), *_args(two))["ok"]
    other[0, 4, 4, 0] += 2e-5
    assert agreement_report(two[4], (other, depth), *_args(two))["value_bad"] == 1
    d2 = depth.copy()
    d2[0, 4, 4] += 2e-5
    assert agreement_report(two[4], (rast, d2), *_args(two))["value_bad"] == 1


def test_values_on_empty_pixels_fail(two):
    rast, depth = two[4]
    empty = np.argwhere(rast[0, ..., 3] == 0)[0]
    d2 = depth.copy()
    d2[0, empty[0], empty[1]] = 0.5
    assert agreement_report(two[4], (rast, d2), *_args(two))["value_bad"] == 1


def test_depth_tie_on_duplicates_is_excused():
    """Coincident duplicates: another winner is excused by the depth-tie rule, not by an edge."""
    s = scenes.build("duplicates")
    ref = reference.rasterize_numpy(s.pos[None], s.faces, s.H, s.W, s.viewport)
    rast = ref[0].copy()
    inner = (ref[0][..., 3] == 1)
    rast[..., 3][inner] = 2  # id 1 instead of 0 everywhere in group A
    rep = agreement_report(ref, (rast, ref[1]), s.pos, s.faces, s.H, s.W, s.viewport)
    assert rep["unexcused"] == 0 and rep["excused_depth_tie"] > 100


def test_clipped_polygon_edges():
    """near_plane: a pixel next to the far-plane cut (a clip edge, not a triangle edge) can be excused
    only if within 1e-3 px of it; a pixel deep below it cannot."""
    s = scenes.build("near_plane")
    ref = reference.rasterize_numpy(s.pos[None], s.faces, s.H, s.W, s.viewport)
    rast = ref[0].copy()
    rast[0, 5, 48] = 0  # bottom rows: far from every clipped edge
    rep = agreement_report(ref, (rast, ref[1]), s.pos, s.faces, s.H, s.W, s.viewport)
    assert rep["unexcused"] == 1 and rep["first_unexcused"][0]["edge_dist"] > 0.1
