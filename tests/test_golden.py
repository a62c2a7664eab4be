"""Golden scenes: every backend against the stored reference output, plus checks that make the
goldens (and the reference that made them) meaningful on their own.

* ``test_inputs_unchanged``: the stored inputs still equal what tests/scenes.py builds.
* ``test_agrees_with_golden``: each available backend vs tests/golden/<scene>.npz under the
  contract's agreement rule (tests/agreement.py); ids equal on every pixel for the exact
  backends ("reference", "cpu").
* property tests, run on the stored golden ("golden") and on every backend's own output:
  reconstruction (the barycentrics of every covered pixel, applied to the parent's clip-space
  vertices, land on the pixel centre at the reported depth), crack-free coverage, lowest id on
  coincident triangles, the near-plane scene against its analytic solution, degenerate triangles
  cover nothing, sub-pixel triangles against a float64 point-in-triangle test, coverage of
  pixel-centre grids, culling, zero faces, batch = single calls.
* hand-computed cases (``test_hand_*``): tiny scenes whose covered pixels, barycentrics and
  depths were worked out on paper from the contract text, not by running any rasterizer.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import render_npu
import scenes
from agreement import assert_agree, backend_params
from render_npu.backends import reference

golden = scenes.load_golden
EXACT = ("reference", "cpu")
BACKENDS = backend_params()
SOURCES = [pytest.param("golden", id="golden")] + BACKENDS  # where property tests take rast from


def render(backend, pos, faces, H, W, viewport, cull_backfaces=False):
    """numpy in -> numpy (rast [B, H, W, 4], depth [B, H, W]) out, through the public API."""
    r = render_npu.rasterize((H, W), torch.from_numpy(np.asarray(faces)), torch.from_numpy(np.asarray(pos)),
                             viewport=viewport, cull_backfaces=cull_backfaces, backend=backend)
    return r.rast.numpy(), r.depth.numpy()


@functools.lru_cache(maxsize=None)
def output(source, name):
    """(rast, depth) of scene ``name`` from the stored golden or from a backend run on its inputs."""
    g = golden(name)
    if source == "golden":
        return g["rast"], g["depth"]
    return render(source, g["pos"], g["faces"], g["H"], g["W"], g["viewport"], g["cull_backfaces"])


def ids_of(rast):
    return rast[..., 3].astype(np.int64) - 1  # -1 = empty


# ----------------------------------------------------------------------------- goldens

MAX_ULP = 4  # numpy/BLAS versions may round the scene builders' float64 math differently


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in float32 units in the last place, elementwise; 0 where both are the same NaN/inf,
    huge where only one is non-finite."""
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    ia, ib = (x.view(np.int32).astype(np.int64) for x in (a, b))
    # map the sign-magnitude float bits onto a monotonic integer line
    ia, ib = (np.where(x < 0, -(x & 0x7FFFFFFF), x) for x in (ia, ib))
    d = np.abs(ia - ib)
    same_nonfinite = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    return np.where(same_nonfinite, 0, np.where(np.isfinite(a) & np.isfinite(b), d, 2**40))


def test_ulp_distance():
    f = np.float32
    assert ulp_distance(np.array([1.0], f), np.nextafter(np.array([1.0], f), f(2))).item() == 1
    assert ulp_distance(np.array([-0.0], f), np.array([0.0], f)).item() == 0
    assert ulp_distance(np.array([np.nan], f), np.array([np.nan], f)).item() == 0
    assert ulp_distance(np.array([np.nan], f), np.array([1.0], f)).item() > MAX_ULP
    assert ulp_distance(np.array([1e-3], f), np.array([1.0001e-3], f)).item() > MAX_ULP


@pytest.mark.parametrize("name", scenes.NAMES)
def test_inputs_unchanged(name):
    """tests/scenes.py still builds the stored inputs, within a few float32 ULPs (the goldens
    themselves run from the stored inputs, so this only guards against a scene changing)."""
    g, s = golden(name), scenes.build(name)
    pos = s.pos if s.pos.ndim == 3 else s.pos[None]
    assert g["pos"].dtype == np.float32 and g["pos"].shape == pos.shape
    worst = int(ulp_distance(g["pos"], pos.astype(np.float32)).max(initial=0))
    assert worst <= MAX_ULP, f"{name}: tests/scenes.py no longer builds the stored inputs ({worst} ULP off)"
    assert np.array_equal(g["faces"], s.faces)
    assert (g["H"], g["W"], g["viewport"], g["cull_backfaces"]) == (s.H, s.W, s.viewport, s.cull_backfaces)
    assert g["rast"].shape == (pos.shape[0], s.H, s.W, 4) and g["depth"].shape == (pos.shape[0], s.H, s.W)


@pytest.mark.parametrize("name", scenes.NAMES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_agrees_with_golden(backend, name):
    g = golden(name)
    out = output(backend, name)
    assert out[0].dtype == np.float32 and out[1].dtype == np.float32
    assert_agree((g["rast"], g["depth"]), out, g["pos"], g["faces"], g["H"], g["W"], g["viewport"],
                 exact=backend in EXACT, tag=f"{name}-{backend}")


# ----------------------------------------------------------------------------- properties

def reconstruction_errors(rast, depth, pos, faces, H, W, viewport):
    """For every covered pixel: apply its barycentrics to the parent triangle's clip-space vertices
    (float64) and project. Returns (screen distance to the pixel centre [px], |z/w - depth|,
    |sum(b) - 1|, min(b)), each float64 [N]."""
    ids = ids_of(rast)
    bb, yy, xx = np.nonzero(ids >= 0)
    b = rast[bb, yy, xx, :3].astype(np.float64)
    P = pos.astype(np.float64)[bb[:, None], faces[ids[bb, yy, xx]]]  # [N, 3, 4]
    c = (b[:, :, None] * P).sum(axis=1)
    sx = scenes.ndc_to_screen(c[:, 0] / c[:, 3], W, viewport)
    sy = scenes.ndc_to_screen(c[:, 1] / c[:, 3], H, viewport)
    dist = np.hypot(sx - (xx + 0.5), sy - (yy + 0.5))
    return dist, np.abs(c[:, 2] / c[:, 3] - depth[bb, yy, xx]), np.abs(b.sum(axis=1) - 1), b.min(axis=1)


@pytest.mark.parametrize("name", scenes.NAMES)
@pytest.mark.parametrize("source", SOURCES)
def test_reconstruction(source, name):
    """Barycentrics are perspective-correct, w.r.t. the parent's vertices, at the pixel centre: the
    clip-space point they give projects onto the pixel centre, at the reported depth. They are solved
    from the unsnapped parent (docs/rasterization.md section 3), so only float rounding remains:
    1e-4 px and 1e-6 in depth (float32 device arithmetic included). Pixels the snapped piece covers
    but the exact triangle does not (within 1/256 px of an edge) have a component clamped to 0: their
    point lies on the triangle's border, within 0.1 px of the centre (further along thin slivers)."""
    g = golden(name)
    rast, depth = output(source, name)
    dist, dz, dsum, bmin = reconstruction_errors(rast, depth, g["pos"], g["faces"], g["H"], g["W"], g["viewport"])
    if dist.size == 0:
        return
    inner = bmin > 0
    assert dist[inner].max(initial=0) < 1e-4, f"barycentrics miss the pixel centre by up to {dist[inner].max():.4g} px"
    assert dz[inner].max(initial=0) < 1e-6, f"depth differs from the barycentric point's z/w by up to {dz.max():.3g}"
    assert dist.max() < 0.1 and dz.max() < 2e-4
    assert dsum.max() <= 1e-6 and bmin.min() >= 0.0


def coverage_count(source, pos, faces, H, W, viewport):
    """Per-pixel number of triangles covering the centre, by rendering each face alone (int [B, H, W])."""
    count = np.zeros((pos.shape[0], H, W), np.int64)
    for f in range(len(faces)):
        if source == "golden":  # the reference made the golden
            rast, _ = reference.rasterize_numpy(pos, faces[f:f + 1], H, W, viewport)
        else:
            rast, _ = render(source, pos, faces[f:f + 1], H, W, viewport)
        count += rast[..., 3] > 0
    return count


@pytest.mark.parametrize("name", ["crack_fan", "crack_strips"])
@pytest.mark.parametrize("source", SOURCES)
def test_crack_free(source, name):
    """A surface that fills the view leaves no pixel uncovered; for the exact backends (and the
    golden's reference) every pixel centre is covered by exactly one triangle."""
    g = golden(name)
    ids = ids_of(output(source, name)[0])
    assert (ids >= 0).all(), f"{int((ids < 0).sum())} uncovered pixels (cracks)"
    if source in ("golden",) + EXACT:
        count = coverage_count(source, g["pos"], g["faces"], g["H"], g["W"], g["viewport"])
        assert count.min() == 1 and count.max() == 1, \
            f"coverage count in [{count.min()}, {count.max()}]: {int((count != 1).sum())} pixels not covered once"


@pytest.mark.parametrize("source", SOURCES)
def test_duplicates_lowest_id(source):
    """Identical face rows (and identical vertex copies in the same order) resolve to the lowest id."""
    s = scenes.build("duplicates")
    ids = ids_of(output(source, "duplicates")[0])
    for group in s.meta["groups"]:
        inside = np.isin(ids, group)
        assert inside.any(), f"group {group} not visible at all"
        assert (ids[inside] == min(group)).all(), \
            f"group {group}: ids {np.unique(ids[inside]).tolist()} visible, expected only {min(group)}"
    if source in ("golden",) + EXACT:  # rotated vertex order: same geometry, exact backends tie too
        for group in s.meta["same_geometry"]:
            inside = np.isin(ids, group)
            assert (ids[inside] == min(group)).all()


def near_plane_expectation(scene, margin=0.02, snap=0.004):
    """Analytic solution of the near_plane scene. Each pixel centre's ray is intersected with the ground
    plane y = -1. Returns (expected face id [H, W] (-1 = empty), certain [H, W] (the answer does not
    change within ``margin`` px), and for world x, world z, NDC depth: the value at the centre and
    its largest change when the centre moves by ``snap`` px (what snapping vertices to 1/256 px can
    do to barycentrics), each [H, W] float64)."""
    m, H, W = scene.meta, scene.H, scene.W
    P, near, far, xs, zs = m["P"], m["near"], m["far"], m["xs"], m["zs"]

    def solve(sx, sy):
        X = scenes.screen_to_ndc(sx, W, scene.viewport)
        Y = scenes.screen_to_ndc(sy, H, scene.viewport)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = m["ground_y"] * P[1, 1] / Y  # view distance along -z where the ray meets y = -1
            x = X * d / P[0, 0]
            q = (P[2, 2] * -d + P[2, 3]) / d
        z = -d
        vis = (Y < 0) & (d >= near) & (d <= far) & (x >= xs[0]) & (x <= xs[-1]) & (z <= zs[0]) & (z >= zs[-1])
        i = np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2)
        j = np.clip(np.searchsorted(-zs, -z) - 1, 0, len(zs) - 2)
        # quad (a, b, d), (a, d, c): a = (xs[i], zs[j]), d = (xs[i+1], zs[j+1]); (a, b, d) lies on b's side
        t = (z - zs[j]) / (zs[j + 1] - zs[j])
        on_abd = x - (xs[i] + t * (xs[i + 1] - xs[i])) >= 0
        face = 2 * (j * (len(xs) - 1) + i) + np.where(on_abd, 0, 1)
        return np.where(vis, face, -1), np.stack([x, z, q])

    py, px = np.mgrid[0:H, 0:W]
    face, val = solve(px + 0.5, py + 0.5)
    certain = np.ones((H, W), bool)
    spread = np.zeros_like(val)
    for ox, oy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        certain &= solve(px + 0.5 + margin * ox, py + 0.5 + margin * oy)[0] == face
        with np.errstate(invalid="ignore"):
            spread = np.fmax(spread, np.abs(solve(px + 0.5 + snap * ox, py + 0.5 + snap * oy)[1] - val))
    return face, certain, val, spread


@pytest.mark.parametrize("source", SOURCES)
def test_near_plane_analytic(source):
    """Triangles crossing the near plane and with w <= 0 vertices: ids, depth and perspective-correct
    world positions match the ray/plane intersection; nothing above the far-plane horizon (smear)."""
    s = scenes.build("near_plane")
    rast, depth = output(source, "near_plane")
    ids = ids_of(rast)[0]
    face, certain, val, spread = near_plane_expectation(s)
    assert certain.mean() > 0.9
    bad = certain & (ids != face)
    assert not bad.any(), (f"{int(bad.sum())} pixels differ from the analytic answer, e.g. (row, col, got, "
                           f"expected) {[(int(r), int(c), int(ids[r, c]), int(face[r, c])) for r, c in zip(*np.nonzero(bad))][:5]}")
    hit = certain & (face >= 0)
    assert hit.sum() > 1000
    verts = np.array([(xx, zz) for zz in s.meta["zs"] for xx in s.meta["xs"]])  # vertex k -> world (x, z)
    got = render_npu.interpolate(torch.from_numpy(verts), torch.from_numpy(rast), torch.from_numpy(s.faces)).numpy()[0]
    got = np.stack([got[..., 0], got[..., 1], depth[0].astype(np.float64)])
    err = np.abs(got - val) - spread - 1e-5 * (1 + np.abs(val))
    for k, what in enumerate(("world x", "world z", "depth")):
        worst = np.max(err[k][hit])
        assert worst <= 0, f"{what} off the analytic value by {worst:.3g} beyond the snapping bound"


@pytest.mark.parametrize("source", SOURCES)
def test_degenerate_cover_nothing(source):
    """Zero-area (before and after snapping) and non-finite triangles cover nothing; the background
    triangle alone gives the same image."""
    s = scenes.build("degenerate")
    rast, depth = output(source, "degenerate")
    ids = ids_of(rast)
    assert set(np.unique(ids).tolist()) <= {-1, 0} and (ids == 0).sum() > 1000
    ref = reference.rasterize_numpy(s.pos[None], s.faces[:1], s.H, s.W, s.viewport)
    assert np.array_equal(rast[..., 3], ref[0][..., 3])


def _subpixel_expectation(scene, tol=1e-3):
    """float64 point-in-triangle answer for the subpixel scene: expected id [H, W] (-1 empty) and
    certain [H, W] (no triangle edge within ``tol`` px of the centre, no exact depth tie)."""
    H, W, vp = scene.H, scene.W, scene.viewport
    p = scene.pos.astype(np.float64)
    sx = scenes.ndc_to_screen(p[:, 0] / p[:, 3], W, vp)[scene.faces]
    sy = scenes.ndc_to_screen(p[:, 1] / p[:, 3], H, vp)[scene.faces]
    z = (p[:, 2] / p[:, 3])[scene.faces[:, 0]]
    best = np.full((H, W), np.inf)
    face = np.full((H, W), -1)
    certain = np.ones((H, W), bool)
    for f in range(len(scene.faces)):
        for py in range(max(int(sy[f].min() - 1), 0), min(int(sy[f].max() + 1), H - 1) + 1):
            for px in range(max(int(sx[f].min() - 1), 0), min(int(sx[f].max() + 1), W - 1) + 1):
                cx, cy = px + 0.5, py + 0.5
                e, dmin = [], np.inf
                for k in range(3):
                    ax, ay, bx, by = sx[f][k], sy[f][k], sx[f][(k + 1) % 3], sy[f][(k + 1) % 3]
                    e.append((bx - ax) * (cy - ay) - (by - ay) * (cx - ax))
                    L = np.hypot(bx - ax, by - ay)
                    t = np.clip(((cx - ax) * (bx - ax) + (cy - ay) * (by - ay)) / (L * L), 0, 1)
                    dmin = min(dmin, np.hypot(cx - ax - t * (bx - ax), cy - ay - t * (by - ay)))
                if dmin <= tol:
                    certain[py, px] = False
                    continue
                if all(v > 0 for v in e) or all(v < 0 for v in e):
                    if z[f] == best[py, px]:
                        certain[py, px] = False
                    if z[f] < best[py, px]:
                        best[py, px], face[py, px] = z[f], f
    return face, certain


@pytest.mark.parametrize("source", SOURCES)
def test_subpixel_analytic(source):
    s = scenes.build("subpixel")
    ids = ids_of(output(source, "subpixel")[0])[0]
    face, certain = _subpixel_expectation(s)
    assert (face >= 0).sum() >= 20, "scene should have sub-pixel triangles covering some centres"
    bad = certain & (ids != face)
    assert not bad.any(), [(int(r), int(c), int(ids[r, c]), int(face[r, c])) for r, c in zip(*np.nonzero(bad))][:5]
    # each sub-pixel triangle (circumradius < 0.5 px) covers at most one pixel centre
    vals, counts = np.unique(ids[ids >= 0], return_counts=True)
    assert counts.max() == 1


@pytest.mark.parametrize("viewport", ["align_corners", "opengl"])
@pytest.mark.parametrize("source", SOURCES)
def test_grid_on_pixel_centres(source, viewport):
    """Grid squares with corners on pixel centres: any consistent tie rule takes exactly one of two
    opposite boundary edges, so the (x1 - x0) x (y1 - y0) region covers exactly that many pixels,
    each row (x1 - x0) of them; pixels with centres strictly inside are all covered; the 8-triangle
    fan around a centre vertex covers its 6 x 6 square likewise and the centre pixel once."""
    name = f"grid_centres_{viewport}"
    s = scenes.build(name)
    ids = ids_of(output(source, name)[0])[0]
    x0, x1, y0, y1 = s.meta["region"]
    grid = (ids >= 0) & (ids < 2 * len(s.faces)) & ~np.isin(ids, s.meta["fan_ids"])
    assert grid.sum() == (x1 - x0) * (y1 - y0)
    assert (grid[y0 + 1:y1, x0 + 1:x1]).all()
    assert (grid[y0:y1 + 1, x0:x1 + 1].sum(axis=1)[1:-1] == x1 - x0).all()
    assert (grid[y0:y1 + 1, x0:x1 + 1].sum(axis=0)[1:-1] == y1 - y0).all()
    assert not grid[:y0].any() and not grid[y1 + 1:].any() and not grid[:, :x0].any() and not grid[:, x1 + 1:].any()
    fan = np.isin(ids, s.meta["fan_ids"])
    cx, cy = s.meta["fan_centre"]
    assert fan.sum() == 36 and fan[cy - 2:cy + 3, cx - 2:cx + 3].all() and fan[cy, cx]
    if source in ("golden",) + EXACT:
        g = golden(name)
        count = coverage_count(source, g["pos"], g["faces"], s.H, s.W, viewport)
        assert count.max() == 1


@pytest.mark.parametrize("source", SOURCES)
def test_cull_backfaces_sphere(source):
    """Culling a closed convex mesh seen from outside changes nothing, and every visible face is
    front-facing (positive signed area, y up)."""
    s = scenes.build("sphere_cull")
    rast, depth = output(source, "sphere_cull")
    ids = ids_of(rast)[0]
    area = scenes.signed_area_screen(s.pos, s.faces, s.H, s.W, s.viewport)
    assert (area[ids[ids >= 0]] > 0).all()
    unculled = reference.rasterize_numpy(s.pos[None], s.faces, s.H, s.W, s.viewport, False)
    assert_agree(unculled, (rast, depth), s.pos, s.faces, s.H, s.W, s.viewport, tag=f"cull-{source}")
    assert (area < 0).sum() > 300  # the scene does have back faces to drop


@pytest.mark.parametrize("source", SOURCES)
def test_zero_faces(source):
    rast, depth = output(source, "zero_faces")
    assert rast.shape == (1, 16, 24, 4) and depth.shape == (1, 16, 24)
    assert not rast.any() and not depth.any()


@pytest.mark.parametrize("source", SOURCES)
def test_batch_equals_single_calls(source):
    g = golden("batch3")
    rast, depth = output(source, "batch3")
    assert rast.shape[0] == 3
    for b in range(3):
        if source == "golden":
            r1, d1 = reference.rasterize_numpy(g["pos"][b:b + 1], g["faces"], g["H"], g["W"], g["viewport"])
        else:
            r1, d1 = render(source, g["pos"][b], g["faces"], g["H"], g["W"], g["viewport"])
        assert np.array_equal(r1[0], rast[b]) and np.array_equal(d1[0], depth[b]), f"batch entry {b} differs"
    assert not np.array_equal(rast[0], rast[1])


@pytest.mark.parametrize("source", SOURCES)
def test_depth_order(source):
    """Constant-depth triangles report their depth; where the front triangle (id 2, z = 0) is the only
    candidate in front, it is visible."""
    rast, depth = output(source, "depth_order")
    ids = ids_of(rast)[0]
    for t, z in ((0, 0.6), (1, 0.3), (2, 0.0)):
        assert (ids == t).sum() > 20, f"triangle {t} should be visible"
        np.testing.assert_allclose(depth[0][ids == t], np.float32(z), atol=1e-6)
    # pixel (row 28, col 32): NDC (0.016, -0.111): inside triangles 0, 1, 2, outside 3 and 4
    assert ids[28, 32] == 2


# ----------------------------------------------------------------------------- hand-computed cases
# Worked on paper from the contract text (SPEC.md: pixel centres at p + 0.5, the two screen
# mappings, row index grows with NDC y, perspective-correct barycentrics, depth = z/w linear in
# screen space). The tie rule on a pixel centre exactly on an edge is convention: the reference
# documents "top-left" with y up, i.e. left edges and the top edge (larger row) are inside; the
# convention-specific expectations are marked and apply to the exact backends only.

def _hand(backend, pos, faces, H, W, viewport):
    return render(backend, np.asarray(pos, np.float32), np.asarray(faces, np.int32), H, W, viewport)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_align_corners_right_triangle(backend):
    """4 x 4, align_corners: NDC (-1, -1), (1, -1), (-1, 1) land on the centres of pixels (0, 0), (3, 0),
    (0, 3) (col, row): screen (0.5, 0.5), (3.5, 0.5), (0.5, 3.5). Centres strictly inside: px + py < 3 with
    px, py >= 1 -> only (1, 1). On the edges: left x = 0.5 (px = 0), bottom y = 0.5 (py = 0), hypotenuse
    px + py = 3. Top-left with y up: left edge in, bottom out, hypotenuse (right/top side) out."""
    pos = [[-1, -1, 0.1, 1], [1, -1, 0.4, 1], [-1, 1, 0.7, 1]]
    rast, depth = _hand(backend, pos, [[0, 1, 2]], 4, 4, "align_corners")
    cov = rast[0, ..., 3] > 0
    assert cov[1, 1]  # (row 1, col 1) strictly inside
    outside = [(r, c) for r in range(4) for c in range(4) if r + c > 3]
    assert not any(cov[r, c] for r, c in outside)
    # barycentrics at (1.5, 1.5): each 1/3; depth = (0.1 + 0.4 + 0.7) / 3 = 0.4
    np.testing.assert_allclose(rast[0, 1, 1], [1 / 3, 1 / 3, 1 / 3, 1], atol=1e-6)
    np.testing.assert_allclose(depth[0, 1, 1], 0.4, atol=1e-6)
    if backend in EXACT:  # convention: covered = left edge + interior = (row 1, col 0), (1, 1), (2, 0)
        assert sorted(zip(*np.nonzero(cov))) == [(1, 0), (1, 1), (2, 0)]
        np.testing.assert_allclose(rast[0, 2, 0], [1 / 3, 0, 2 / 3, 1], atol=1e-6)  # screen (0.5, 2.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_perspective_barycentrics(backend):
    """The same screen triangle with w = (1, 2, 4) (clip = (X w, Y w, z, w)): at pixel (1, 1) the screen
    barycentrics are (1/3, 1/3, 1/3); perspective-correct ones are proportional to lambda_k / w_k =
    (1, 1/2, 1/4) -> (4/7, 2/7, 1/7). Depth z/w is linear in screen space: q = (0.5/1, 0.4/2, -0.8/4) =
    (0.5, 0.2, -0.2) -> 0.5/3."""
    w = np.array([1.0, 2.0, 4.0])
    ndc = np.array([[-1, -1], [1, -1], [-1, 1]], np.float64)
    z = np.array([0.5, 0.4, -0.8])
    pos = np.column_stack([ndc * w[:, None], z, w])
    rast, depth = _hand(backend, pos, [[0, 1, 2]], 4, 4, "align_corners")
    np.testing.assert_allclose(rast[0, 1, 1], [4 / 7, 2 / 7, 1 / 7, 1], atol=1e-6)
    np.testing.assert_allclose(depth[0, 1, 1], 0.5 / 3, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_opengl_quad_diagonal(backend):
    """4 x 4, opengl: the quad NDC [-1, 1]^2 = screen [0, 4]^2 as A = (v0, v1, v2) (below the diagonal,
    y < x) and B = (v0, v2, v3). Every pixel is covered; centres (k + 0.5, k + 0.5) lie on the shared
    diagonal and belong to exactly one; off-diagonal pixels belong to A iff col > row (y < x).
    Convention: the diagonal is A's left edge, so the exact backends give it to A."""
    pos = [[-1, -1, 0, 1], [1, -1, 0, 1], [1, 1, 0, 1], [-1, 1, 0, 1]]
    rast, _ = _hand(backend, pos, [[0, 1, 2], [0, 2, 3]], 4, 4, "opengl")
    ids = rast[0, ..., 3].astype(int) - 1
    assert (ids >= 0).all()
    r, c = np.mgrid[0:4, 0:4]
    assert (ids[c > r] == 0).all() and (ids[c < r] == 1).all()
    for k in range(4):  # exactly one: by each triangle alone
        alone = [_hand(backend, pos, [f], 4, 4, "opengl")[0][0, k, k, 3] > 0 for f in ([0, 1, 2], [0, 2, 3])]
        assert sum(alone) == 1
    if backend in EXACT:
        assert (np.diag(ids) == 0).all()
    # at pixel (col 2, row 1), centre (2.5, 1.5): in A, b = (1 - 2.5/4, (2.5 - 1.5)/4, 1.5/4)
    np.testing.assert_allclose(rast[0, 1, 2, :3], [1.5 / 4, 1 / 4, 1.5 / 4], atol=1e-6)


@pytest.mark.parametrize("viewport,ndc", [("align_corners", (0.5, 1.0)), ("opengl", (0.4, 2 / 3))])
@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_screen_mapping(backend, viewport, ndc):
    """H = 3, W = 5: pixel (col 3, row 2) has its centre at (3.5, 2.5). align_corners: X = (3.5 - 0.5) / 4 * 2 - 1
    = 0.5, Y = (2.5 - 0.5) / 2 * 2 - 1 = 1; opengl: X = 3.5 / 5 * 2 - 1 = 0.4, Y = 2.5 / 3 * 2 - 1 = 2/3. A small
    triangle (0.05 NDC) around that point covers exactly that pixel: row grows with NDC y."""
    X, Y = ndc
    e = 0.05
    pos = [[X - e, Y - e, 0.25, 1], [X + e, Y - e, 0.25, 1], [X, Y + e, 0.25, 1]]
    rast, depth = _hand(backend, pos, [[0, 1, 2]], 3, 5, viewport)
    assert sorted(zip(*np.nonzero(rast[0, ..., 3]))) == [(2, 3)]
    assert depth[0, 2, 3] == np.float32(0.25)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_clipped_triangle_behind_camera(backend):
    """A triangle with one vertex behind the camera (w = -1) must be clipped, not projected through the
    origin. Vertices (clip): v0 = (-1, -1, 0, 1), v1 = (1, -1, 0, 1), v2 = (0, 3, 0, -1) -- v2 is the point at
    NDC (0, -3) seen 'through' the camera. The segment v0 -> v2 meets w = 0 at t = 1/2: (-0.5, 1, 0, 0), a
    direction (-0.5, 1): the visible part is the region above y = -1 between the lines from v0 going in
    direction (-0.5, 1) and from v1 going in direction (0.5, 1), i.e. |X| <= 1 + (Y + 1) / 2 -> in a 8 x 8
    opengl image every pixel with centre Y > -1 (all of them) is inside: the full image is covered, nothing
    of the naive projection (triangle (-1,-1), (1,-1), (0,-3), below the image) survives."""
    pos = [[-1, -1, 0, 1], [1, -1, 0, 1], [0, 3, 0, -1]]
    rast, _ = _hand(backend, pos, [[0, 1, 2]], 8, 8, "opengl")
    assert (rast[0, ..., 3] == 1).all()
    # and the barycentrics stay the parent's: at pixel centre (col 4, row 0) = NDC (0.125, -0.875),
    # the clip point b0 v0 + b1 v1 + b2 v2 projects there (solve the 2 x 2 system by hand:
    # x/w = 0.125, y/w = -0.875 with w = b0 + b1 - b2, b0 + b1 + b2 = 1)
    b = rast[0, 0, 4, :3].astype(np.float64)
    c = b @ np.array(pos, np.float64)
    assert abs(c[0] / c[3] - 0.125) < 1e-3 and abs(c[1] / c[3] + 0.875) < 1e-3 and b.min() >= 0
