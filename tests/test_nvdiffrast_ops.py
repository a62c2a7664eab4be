"""The nvdiffrast front's differentiable ops (render_npu/ops/): rast_db, attribute derivatives,
texture with mipmaps, antialias, DepthPeeler; each against an independent reference, and every
gradient by float64 gradcheck on small inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import render_npu.nvdiffrast as dr
from render_npu.ops import derivatives

F64 = torch.float64


def _tri_scene(dtype=torch.float32):
    """One perspective triangle (different w per vertex) and a second one partly behind it."""
    pos = torch.tensor([[-0.8, -0.7, 0.1, 1.0], [0.9, -0.5, 0.3, 2.0], [0.1, 0.8, 0.5, 1.5],
                        [-0.3, -0.9, 0.6, 1.0], [0.95, 0.2, 0.6, 1.0], [-0.9, 0.9, 0.6, 1.0]], dtype=dtype)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    return pos, tri


# ----------------------------------------------------------------------------- rast_db

def test_rast_db_matches_finite_differences():
    """Central differences of (u, v) across neighbouring pixels of the same triangle match rast_db
    (the barycentrics are rational in the pixel position: second-order error only)."""
    pos, tri = _tri_scene(F64)
    rast, db = dr.rasterize(None, pos[None], tri, (48, 64))
    assert db.dtype == F64 and db.shape == (1, 48, 64, 4)
    u, v, ids = rast[..., 0].double(), rast[..., 1].double(), rast[..., 3]
    checked = 0
    for ch, val, axis in ((0, u, 2), (1, u, 1), (2, v, 2), (3, v, 1)):
        n = val.shape[axis]
        fwd, bwd = val.narrow(axis, 2, n - 2), val.narrow(axis, 0, n - 2)
        same = (ids.narrow(axis, 2, n - 2) == ids.narrow(axis, 1, n - 2)) & \
               (ids.narrow(axis, 0, n - 2) == ids.narrow(axis, 1, n - 2)) & (ids.narrow(axis, 1, n - 2) > 0)
        fd = (fwd - bwd) / 2
        an = db[..., ch].narrow(axis, 1, n - 2)
        assert same.sum() > 100
        scale = an[same].abs().max()
        assert scale > 1e-3
        assert (fd - an)[same].abs().max() < 1e-3 * scale + 2e-6, ch
        checked += int(same.sum())
    assert not db[ids == 0].any()


def test_rast_db_gradcheck_and_grad_db_flag():
    pos, tri = _tri_scene(F64)
    rast, _ = dr.rasterize(None, pos[None], tri, (12, 10))
    ids = rast[..., 3].long()
    p = pos[None].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda q: derivatives.bary_pixel_derivatives(q, tri, ids), (p,))
    _, db = dr.rasterize(None, p, tri, (12, 10), grad_db=False)
    assert not db.requires_grad
    _, db = dr.rasterize(None, p, tri, (12, 10))
    assert db.requires_grad


# ----------------------------------------------------------------------------- interpolate

def test_interpolate_diff_attrs_gradcheck():
    """Gradients of (out, out_db) to attr, to rast's (u, v) and to rast_db."""
    pos, tri = _tri_scene(F64)
    rast, db = dr.rasterize(None, pos[None], tri, (9, 11))
    g = torch.Generator().manual_seed(1)
    attr = torch.randn(6, 3, generator=g, dtype=F64, requires_grad=True)
    uv = rast[..., :2].double().clone().requires_grad_()
    dbr = db.clone().requires_grad_()
    rest = rast[..., 2:].double()

    def f(a, uv_, db_):
        out, out_db = dr.interpolate(a, torch.cat([uv_, rest], -1), tri, rast_db=db_, diff_attrs=[0, 2])
        return out, out_db

    assert torch.autograd.gradcheck(f, (attr, uv, dbr))
    out, out_db = f(attr, uv, dbr)
    assert out_db.shape == (1, 9, 11, 4)
    _, all_db = dr.interpolate(attr, rast, tri, rast_db=db, diff_attrs="all")
    torch.testing.assert_close(all_db[..., [0, 1, 4, 5]], out_db)


def test_interpolate_derivatives_match_finite_differences():
    """out_db from the real rast_db = central differences of the interpolated attribute."""
    pos, tri = _tri_scene(F64)
    rast, db = dr.rasterize(None, pos[None], tri, (40, 40))
    attr = torch.tensor([[1.0, 0.0], [3.0, 2.0], [-1.0, 5.0], [0.0, 0.0], [1.0, 1.0], [2.0, -2.0]], dtype=F64)
    out, out_db = dr.interpolate(attr, rast, tri, rast_db=db, diff_attrs="all")
    ids = rast[..., 3]
    same = (ids[:, :, 2:] == ids[:, :, 1:-1]) & (ids[:, :, :-2] == ids[:, :, 1:-1]) & (ids[:, :, 1:-1] > 0)
    fd = (out[:, :, 2:, 1] - out[:, :, :-2, 1]) / 2
    assert same.sum() > 50
    assert (fd - out_db[:, :, 1:-1, 2])[same].abs().max() < 2e-3
    # a per-image attr batch [B, V, A]: image b's derivatives use attr[b]
    pos2 = torch.stack([pos, pos * torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=F64)])
    rast2, db2 = dr.rasterize(None, pos2, tri, (40, 40))
    attr2 = torch.stack([attr, attr.flip(0)])
    _, both = dr.interpolate(attr2, rast2, tri, rast_db=db2, diff_attrs="all")
    for b in range(2):
        _, one = dr.interpolate(attr2[b], rast2[b:b + 1], tri, rast_db=db2[b:b + 1], diff_attrs="all")
        torch.testing.assert_close(both[b:b + 1], one, rtol=0, atol=0)
    assert not torch.equal(both[0], both[1])


@pytest.mark.compiled("interpolate")
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_interpolate_diff_attrs_one_compiled_pass_is_the_composed_path(dtype, monkeypatch):
    """diff_attrs='all' without gradients runs value and derivatives in one compiled pass
    (_api.interpolate_with_db): the same bits as the composed, differentiable path (interpolate
    plus one interpolate per axis with the weights (du, dv, -(du + dv))), per-image attr batches and
    empty pixels included; with a gradient needed the composed path runs."""
    from render_npu import _api

    pos, tri = _tri_scene(F64)
    pos2 = torch.stack([pos, pos * torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=F64)]).to(dtype)
    rast, db = dr.rasterize(None, pos2, tri, (33, 27), grad_db=True)
    g = torch.Generator().manual_seed(3)
    for attr in (torch.randn(6, 5, generator=g, dtype=dtype), torch.randn(2, 6, 3, generator=g, dtype=dtype)):
        calls = []
        fused = _api.interpolate_with_db
        monkeypatch.setattr(_api, "interpolate_with_db", lambda *a: calls.append(1) or fused(*a))
        out, out_db = dr.interpolate(attr, rast, tri, rast_db=db, diff_attrs="all")
        assert calls and (rast[..., 3] == 0).any()
        monkeypatch.setattr(_api, "interpolate_with_db", lambda *a: None)
        ref, ref_db = dr.interpolate(attr, rast, tri, rast_db=db, diff_attrs="all")
        assert torch.equal(out, ref) and torch.equal(out_db, ref_db)
        monkeypatch.undo()
        a = attr.clone().requires_grad_()
        out_g, db_g = dr.interpolate(a, rast, tri, rast_db=db, diff_attrs="all")
        assert db_g.requires_grad and torch.equal(db_g.detach(), ref_db)


# ----------------------------------------------------------------------------- texture

def _hand_bilinear(img: np.ndarray, u: float, v: float, mode: str) -> np.ndarray:
    """Texel (i, j) centred at ((j + .5) / W, (i + .5) / H); the four taps with the boundary rule."""
    H, W, C = img.shape
    x, y = u * W - 0.5, v * H - 0.5
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    acc = np.zeros(C)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            i, j = y0 + dy, x0 + dx
            if mode == "wrap":
                i, j = i % H, j % W
            elif mode == "clamp":
                i, j = min(max(i, 0), H - 1), min(max(j, 0), W - 1)
            elif not (0 <= i < H and 0 <= j < W):  # zero
                continue
            acc += wy * wx * img[i, j]
    return acc


@pytest.mark.parametrize("mode", ["wrap", "clamp", "zero"])
def test_texture_boundary_modes_by_hand(mode):
    g = torch.Generator().manual_seed(2)
    tex = torch.rand(1, 5, 7, 2, generator=g, dtype=F64)
    uv = torch.rand(1, 6, 6, 2, generator=g, dtype=F64) * 1.6 - 0.3
    got = dr.texture(tex, uv, filter_mode="linear", boundary_mode=mode)
    img = tex[0].numpy()
    for i in range(6):
        for j in range(6):
            u, v = uv[0, i, j].tolist()
            np.testing.assert_allclose(got[0, i, j].numpy(), _hand_bilinear(img, u, v, mode), atol=1e-12)
    # nearest: the texel containing (u, v) after the boundary rule
    near = dr.texture(tex, uv, filter_mode="nearest", boundary_mode=mode)
    for i in range(6):
        for j in range(6):
            u, v = uv[0, i, j].tolist()
            r, c = math.floor(v * 5), math.floor(u * 7)
            if mode == "wrap":
                want = img[r % 5, c % 7]
            elif mode == "clamp":
                want = img[min(max(r, 0), 4), min(max(c, 0), 6)]
            else:
                want = img[r, c] if (0 <= r < 5 and 0 <= c < 7) else np.zeros(2)
            np.testing.assert_array_equal(near[0, i, j].numpy(), want)


def test_texture_linear_matches_grid_sample():
    g = torch.Generator().manual_seed(3)
    tex = torch.rand(2, 16, 24, 3, generator=g)
    uv = torch.rand(2, 20, 30, 2, generator=g) * 1.2 - 0.1
    for mode, pad in (("clamp", "border"), ("zero", "zeros")):
        got = dr.texture(tex, uv, filter_mode="linear", boundary_mode=mode)
        ref = F.grid_sample(tex.permute(0, 3, 1, 2), uv * 2 - 1, mode="bilinear", padding_mode=pad,
                            align_corners=False).permute(0, 2, 3, 1)
        torch.testing.assert_close(got, ref, atol=2e-6, rtol=0)
    # batch-1 texture broadcasts; filter_mode 'auto' without uv_da is linear
    torch.testing.assert_close(dr.texture(tex[:1], uv, boundary_mode="clamp"),
                               dr.texture(tex[:1].expand(2, -1, -1, -1), uv, boundary_mode="clamp"))


def test_texture_mipmap_trilinear_reference():
    """linear-mipmap-linear = trilinear sum over a box-filtered chain with lod = log2 of the longer
    footprint axis in texels, + bias; linear-mipmap-nearest picks level round(lod)."""
    g = torch.Generator().manual_seed(4)
    tex = torch.rand(1, 16, 16, 2, generator=g, dtype=F64)
    chain = [tex[0].numpy()]
    while chain[-1].shape[0] > 1:
        a = chain[-1]
        chain.append(0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]))
    assert len(chain) == 5
    mip = dr.texture_construct_mip(tex)
    for k, lvl in enumerate(mip.levels):
        np.testing.assert_allclose(lvl[0].numpy(), chain[k], atol=1e-12)
    uv = torch.rand(1, 5, 5, 2, generator=g, dtype=F64)
    scale = torch.exp2(torch.rand(1, 5, 5, generator=g, dtype=F64) * 6 - 1) / 16  # lod in [-1, 5]
    uv_da = torch.stack([scale, 0.3 * scale, -0.5 * scale, 0.8 * scale], -1)
    bias = torch.rand(1, 5, 5, generator=g, dtype=F64) - 0.5
    got = dr.texture(tex, uv, uv_da, bias, filter_mode="linear-mipmap-linear", boundary_mode="wrap")
    got_n = dr.texture(tex, uv, uv_da, bias, mip=mip, filter_mode="linear-mipmap-nearest")
    # a user-built stack is a list of the levels below the base texture
    torch.testing.assert_close(dr.texture(tex, uv, uv_da, bias, mip=list(mip.levels[1:])), got, rtol=0, atol=0)
    for i in range(5):
        for j in range(5):
            d = uv_da[0, i, j].numpy() * 16
            lod = 0.5 * math.log2(max(d[0] ** 2 + d[2] ** 2, d[1] ** 2 + d[3] ** 2)) + float(bias[0, i, j])
            lod = min(max(lod, 0.0), 4.0)
            u, v = uv[0, i, j].tolist()
            k0 = min(int(math.floor(lod)), 4)
            a = _hand_bilinear(chain[k0], u, v, "wrap")
            b = _hand_bilinear(chain[min(k0 + 1, 4)], u, v, "wrap")
            np.testing.assert_allclose(got[0, i, j].numpy(), a + (lod - k0) * (b - a), atol=1e-12)
            kn = int(math.floor(lod + 0.5))
            np.testing.assert_allclose(got_n[0, i, j].numpy(), _hand_bilinear(chain[kn], u, v, "wrap"), atol=1e-12)
    # max_mip_level caps the chain; mip_level_bias alone selects the level directly
    capped = dr.texture(tex, uv, mip_level_bias=torch.full((1, 5, 5), 3.0, dtype=F64), max_mip_level=1)
    want = np.array([[_hand_bilinear(chain[1], *uv[0, i, j].tolist(), "wrap") for j in range(5)] for i in range(5)])
    np.testing.assert_allclose(capped[0].numpy(), want, atol=1e-12)


@pytest.mark.parametrize("filter_mode", ["nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear"])
@pytest.mark.parametrize("boundary_mode", ["wrap", "clamp", "zero"])
def test_texture_gradcheck(filter_mode, boundary_mode):
    g = torch.Generator().manual_seed(5)
    tex = torch.rand(1, 8, 6, 2, generator=g, dtype=F64, requires_grad=True)
    uv = (torch.rand(2, 3, 4, 2, generator=g, dtype=F64) * 1.4 - 0.2).requires_grad_()
    uv_da = (torch.rand(2, 3, 4, 4, generator=g, dtype=F64) * 0.5).requires_grad_()
    bias = (torch.rand(2, 3, 4, generator=g, dtype=F64) - 0.5).requires_grad_()
    mipmapped = filter_mode.startswith("linear-mipmap")

    def f(t, u, d, b):
        return dr.texture(t, u, d if mipmapped else None, b if mipmapped else None, filter_mode=filter_mode,
                          boundary_mode=boundary_mode)

    assert torch.autograd.gradcheck(f, (tex, uv, uv_da, bias), fast_mode=True)
    out = f(tex, uv, uv_da, bias)
    out.sum().backward()
    assert tex.grad.abs().sum() > 0
    if filter_mode == "linear-mipmap-linear":
        assert uv_da.grad.abs().sum() > 0 and uv.grad.abs().sum() > 0


def test_texture_cube():
    """Cube map: a direction along +x reads face 0's centre, along -z face 5; gradients check."""
    g = torch.Generator().manual_seed(6)
    tex = torch.rand(1, 6, 4, 4, 3, generator=g, dtype=F64, requires_grad=True)
    d = torch.tensor([[[[1.0, 0.01, 0.02], [0.01, 0.0, -1.0]]]], dtype=F64)
    out = dr.texture(tex, d, filter_mode="linear", boundary_mode="cube")
    centre = tex[0, :, 1:3, 1:3].mean(dim=(1, 2))
    torch.testing.assert_close(out[0, 0, 0], centre[0], atol=0.1, rtol=0)
    torch.testing.assert_close(out[0, 0, 1], centre[5], atol=0.1, rtol=0)
    small = tex[..., :1].detach()[:, :, :2, :2].clone().requires_grad_()
    dirs = torch.randn(1, 2, 3, 3, generator=g, dtype=F64).requires_grad_()
    dda = (torch.randn(1, 2, 3, 6, generator=g, dtype=F64) * 0.2).requires_grad_()
    assert torch.autograd.gradcheck(lambda t, u, a: dr.texture(t, u, a, boundary_mode="cube"), (small, dirs, dda),
                                    fast_mode=True)


# OpenGL's cube-map table, written out as the spec states it: major axis -> face index, (sc, tc) from
# the direction; and its inverse, the direction of face coordinates (sc, tc) in [-1, 1] (ma = 1)
_GL_FACES = {
    (0, 1): (0, lambda x, y, z: (-z, -y), lambda sc, tc: (1.0, -tc, -sc)),
    (0, -1): (1, lambda x, y, z: (z, -y), lambda sc, tc: (-1.0, -tc, sc)),
    (1, 1): (2, lambda x, y, z: (x, z), lambda sc, tc: (sc, 1.0, tc)),
    (1, -1): (3, lambda x, y, z: (x, -z), lambda sc, tc: (sc, -1.0, -tc)),
    (2, 1): (4, lambda x, y, z: (x, -y), lambda sc, tc: (sc, -tc, 1.0)),
    (2, -1): (5, lambda x, y, z: (-x, -y), lambda sc, tc: (-sc, -tc, -1.0)),
}


def _gl_face(d):
    """(face, key, s, t) of direction d: major axis, ties to x then y, as OpenGL."""
    ax = int(np.argmax(np.abs(d)))  # first maximum: ties go to the lower axis
    key = (ax, 1 if d[ax] >= 0 else -1)
    face, fwd, _ = _GL_FACES[key]
    sc, tc = fwd(*d)
    ma = abs(d[ax])
    return face, key, 0.5 * (sc / ma + 1), 0.5 * (tc / ma + 1)


def _hand_cube_bilinear(lv: np.ndarray, d) -> np.ndarray:
    """Seamless bilinear lookup in one level lv [6, n, n, C], tap by tap: a tap outside the face is
    the nearest texel (on whichever face) to the direction through its texel centre on the extended
    face plane; a tap outside in both axes (a cube corner) is the mean of the other three taps."""
    n = lv.shape[1]
    face, key, s, t = _gl_face(np.asarray(d, dtype=np.float64))
    x, y = s * n - 0.5, t * n - 0.5
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    vals, corner_w, acc = [], 0.0, 0.0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            outx, outy = not 0 <= xi < n, not 0 <= yi < n
            if outx and outy:
                corner_w = wy * wx
                continue
            if not (outx or outy):
                val = lv[face, yi, xi]
            else:
                dd = np.array(_GL_FACES[key][2]((2 * xi + 1) / n - 1, (2 * yi + 1) / n - 1))
                f2, _, s2, t2 = _gl_face(dd)
                val = lv[f2, min(int(t2 * n), n - 1), min(int(s2 * n), n - 1)]
            vals.append(val)
            acc = acc + wy * wx * val
    if corner_w:
        acc = acc + corner_w * np.mean(vals, axis=0)
    return acc


def _cube_edge_and_corner_dirs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Directions near each of the 12 cube edges (on both faces, within a texel of the edge) and
    each of the 8 corners (within a texel of it on every axis): [K, 3]."""
    out = []
    for a in range(3):
        for b in range(a + 1, 3):
            c = 3 - a - b
            for sa in (1, -1):
                for sb in (1, -1):
                    for off in (-1.3, -0.4, 0.35, 1.2):  # texels off the edge; > 0: on the b face
                        d = np.zeros(3)
                        d[a], d[b] = sa * (1 - max(off, 0) * 2 / n), sb * (1 + min(off, 0) * 2 / n)
                        d[c] = rng.uniform(-0.9, 0.9)
                        out.append(d)
    for sx in (1, -1):
        for sy in (1, -1):
            for sz in (1, -1):
                for _ in range(4):
                    out.append(np.array([sx, sy, sz]) * (1 - rng.uniform(0, 1.5, 3) * 2 / n))
    return np.array(out)


def test_texture_cube_seamless_at_edges_and_corners():
    """Cube-map bilinear lookups near all 12 edges and 8 corners (level 0 and a mip level per face)
    equal the tap-by-tap reference above; a lookup is continuous across every edge."""
    g = torch.Generator().manual_seed(61)
    n = 4
    tex = torch.rand(1, 6, n, n, 2, generator=g, dtype=F64)
    dirs = _cube_edge_and_corner_dirs(np.random.default_rng(61), n)
    d = torch.from_numpy(dirs).view(1, 1, -1, 3)
    got = dr.texture(tex, d, filter_mode="linear", boundary_mode="cube")[0, 0]
    for k, dk in enumerate(dirs):
        np.testing.assert_allclose(got[k].numpy(), _hand_cube_bilinear(tex[0].numpy(), dk), atol=1e-12)
    # mip level 1 of each face (2 x 2, box filter) by bias 1: the same rule at the coarser level
    lv1 = tex[0].numpy().reshape(6, n // 2, 2, n // 2, 2, 2).mean(axis=(2, 4))
    got1 = dr.texture(tex, d, mip_level_bias=torch.ones(1, 1, len(dirs), dtype=F64),
                      filter_mode="linear-mipmap-linear", boundary_mode="cube")[0, 0]
    for k, dk in enumerate(dirs):
        np.testing.assert_allclose(got1[k].numpy(), _hand_cube_bilinear(lv1, dk), atol=1e-12)
    # continuity: both sides of an edge (and the three faces at a corner) agree in the limit
    eps = 1e-9
    pairs = [((1, 1 - eps, 0.3), (1 - eps, 1, 0.3)), ((-1, 0.2, 1 - eps), (-1 + eps, 0.2, 1)),
             ((0.5, -1, -1 + eps), (0.5, -1 + eps, -1)), ((1, 1 - eps, 1 - eps), (1 - eps, 1 - eps, 1))]
    for p, q in pairs:
        a, b = (dr.texture(tex, torch.tensor(v, dtype=F64).view(1, 1, 1, 3), boundary_mode="cube")
                for v in (p, q))
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_texture_cube_gradcheck_near_edges():
    """float64 gradcheck of cube-map lookups (tex, direction, its derivatives; linear and trilinear)
    at directions whose footprints cross cube edges and corners."""
    g = torch.Generator().manual_seed(62)
    n = 4
    tex = torch.rand(1, 6, n, n, 2, generator=g, dtype=F64, requires_grad=True)
    dirs = _cube_edge_and_corner_dirs(np.random.default_rng(62), n)[::3]
    d = torch.from_numpy(dirs).view(1, 1, -1, 3).requires_grad_()
    dda = (torch.randn(1, 1, len(dirs), 6, generator=g, dtype=F64) * 0.3).requires_grad_()
    for fm in ("linear", "linear-mipmap-linear"):
        assert torch.autograd.gradcheck(
            lambda t, u, a: dr.texture(t, u, a if fm != "linear" else None, filter_mode=fm, boundary_mode="cube"),
            (tex, d, dda), fast_mode=True)


def test_texture_bad_input():
    tex = torch.rand(1, 4, 4, 3)
    uv = torch.rand(1, 2, 2, 2)
    with pytest.raises(ValueError, match="filter_mode"):
        dr.texture(tex, uv, filter_mode="cubic")
    with pytest.raises(ValueError, match="boundary_mode"):
        dr.texture(tex, uv, boundary_mode="mirror")
    with pytest.raises(ValueError, match="uv"):
        dr.texture(tex, uv[..., :1])
    with pytest.raises(ValueError, match="uv_da"):
        dr.texture(tex, uv, uv_da=torch.zeros(1, 2, 2, 3))
    with pytest.raises(ValueError, match="needs uv_da"):
        dr.texture(tex, uv, filter_mode="linear-mipmap-linear")
    with pytest.raises(ValueError, match="batch"):
        dr.texture(torch.rand(3, 4, 4, 3), uv)
    with pytest.raises(TypeError, match="tex"):
        dr.texture(tex.long(), uv)


# ----------------------------------------------------------------------------- antialias

def _aa_scene():
    """Two overlapping triangles, one over the background, and a quad of two triangles (its shared
    diagonal is not a silhouette and must not be antialiased)."""
    pos = torch.tensor([[-0.7, -0.6, 0.2, 1], [0.8, -0.3, 0.2, 1], [-0.1, 0.75, 0.2, 1],
                        [-0.9, 0.1, 0.5, 1], [0.3, 0.9, 0.5, 1], [0.6, -0.9, 0.5, 1],
                        [-0.95, -0.95, 0.0, 1], [-0.5, -0.95, 0.0, 1], [-0.5, -0.5, 0.0, 1],
                        [-0.95, -0.5, 0.0, 1]], dtype=F64)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8], [6, 8, 9]], dtype=torch.int32)
    cols = torch.tensor([[0, 0, 0], [1, 0.2, 0.1], [0.1, 0.9, 0.3], [0.2, 0.3, 1.0], [0.2, 0.3, 1.0]], dtype=F64)
    return pos, tri, cols


def _check_against_supersampled(pos, tri, cols, H, W):
    """antialias(flat colours) vs the 4 x 4 (16x) supersampled render of the same scene.

    Tolerance: over edge pixels (a 3 x 3 neighbourhood with more than one id) the mean error is under
    a quarter of the aliased image's, and no pixel gets worse by more than 2/16 (corners of
    triangles and vertex tips, which edge-crossing antialiasing does not model); every other pixel
    is returned exactly unchanged (and equals the reference exactly where all 16 samples agree).
    Returns (rast, aliased colours, antialiased)."""
    S = 4
    rast, _ = dr.rasterize(None, pos[None], tri, (H, W))
    col = cols[rast[..., 3].long()]
    aa = dr.antialias(col, rast, pos[None], tri)
    rs, _ = dr.rasterize(None, pos[None], tri, (H * S, W * S))
    ref = F.avg_pool2d(cols[rs[..., 3].long()].permute(0, 3, 1, 2), S).permute(0, 2, 3, 1)
    ids = rast[..., 3]
    pad = F.pad(ids[None], (1, 1, 1, 1), mode="replicate")[0]
    uniform = torch.ones_like(ids, dtype=torch.bool)
    for dy in range(3):
        for dx in range(3):
            uniform &= pad[:, dy:dy + H, dx:dx + W] == ids
    assert torch.equal(aa[uniform], col[uniform])
    hid = rs[..., 3][:, None]
    block = (F.max_pool2d(hid, S) == -F.max_pool2d(-hid, S))[:, 0]  # one id in all 16 samples
    assert (uniform & block).sum() > 0.9 * uniform.sum()  # the rest: slivers between pixel centres
    torch.testing.assert_close(aa[uniform & block], ref[uniform & block], rtol=0, atol=1e-12)  # pool rounding
    edge = ~uniform
    err_aa, err_raw = (aa - ref)[edge].abs(), (col - ref)[edge].abs()
    assert err_aa.mean() < 0.25 * err_raw.mean()
    assert ((aa - ref).abs() - (col - ref).abs()).max() <= 2 / 16
    return rast, col, aa


def test_antialias_against_supersampled_reference():
    """Flat-coloured triangles: antialias(colour) vs the 16x supersampled image
    (:func:`_check_against_supersampled`); the quad's inner diagonal is left alone."""
    pos, tri, cols = _aa_scene()
    H = W = 48
    rast, col, _ = _check_against_supersampled(pos, tri, cols, H, W)
    # the quad's inner diagonal: pixels on both sides have the same colour, and no pixel pair across it
    # is touched (identical colours on both sides would hide that, so use distinct ones)
    col2 = col.clone()
    col2[rast[..., 3] == 4] = 0.5
    aa2 = dr.antialias(col2, rast, pos[None], tri, dr.antialias_construct_topology_hash(tri))
    inner = (rast[..., 3] >= 3)
    quad_only = inner.clone()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            quad_only &= torch.roll(inner, (dy, dx), (1, 2))
    assert quad_only.any() and torch.equal(aa2[quad_only], col2[quad_only])


def _behind_camera_scene():
    """A perspective scene (near 0.01, far 100, 90 degree field of view) whose large triangle has one
    vertex behind the camera (w < 0): its two edges that cross the camera plane are its silhouette on
    screen, running off the left and right borders; plus two ordinary triangles, one in front of it
    and one behind. (The old rule, skipping such triangles, left their edges aliased: error ratio
    0.55 against the 0.25 allowed; now 0.16.)"""
    n_, f_ = 0.01, 100.0
    eye = torch.tensor([[-1.0, -0.6, -2.0], [1.1, -0.8, -2.4], [0.1, 0.9, 1.5],
                        [-0.6, -1.2, -1.5], [0.4, -1.1, -1.6], [-0.1, -0.5, -1.4],
                        [1.2, -2.5, -3.0], [3.5, -2.0, -3.0], [2.5, 0.5, -3.2]], dtype=F64)
    z = eye[:, 2]
    pos = torch.stack([eye[:, 0], eye[:, 1], -(f_ + n_) / (f_ - n_) * z - 2 * f_ * n_ / (f_ - n_), -z], -1)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]], dtype=torch.int32)
    cols = torch.tensor([[0, 0, 0], [0.9, 0.6, 0.1], [0.1, 0.3, 1.0], [0.2, 1.0, 0.4]], dtype=F64)
    return pos, tri, cols


def test_antialias_triangle_crossing_the_camera_plane():
    """Edges of a triangle with a vertex behind the camera are antialiased like any other (against
    the 16x supersampled render), and its w < 0 vertex gets position gradients (gradcheck)."""
    pos, tri, cols = _behind_camera_scene()
    assert (pos[:, 3] < 0).any()
    H, W = 40, 48
    rast, col, aa = _check_against_supersampled(pos, tri, cols, H, W)
    big = rast[..., 3] == 1
    assert 0.2 * H * W < big.sum() < 0.9 * H * W  # the big triangle's edges run through the image
    touched = (aa != col).any(-1)
    near_big = big | F.max_pool2d(big[:, None].double(), 3, 1, 1)[:, 0].bool()
    # pixels blended across the big triangle's edges: 49 (3 with the old rule, which skipped it)
    assert (touched & near_big).sum() > 40
    p = pos[None].clone().requires_grad_()
    g = torch.Generator().manual_seed(12)
    c = torch.rand(1, H, W, 3, generator=g, dtype=F64)
    assert torch.autograd.gradcheck(lambda q: dr.antialias(c, rast, q, tri), (p,), fast_mode=True)
    dr.antialias(c, rast, p, tri).sum().backward()
    assert p.grad[0, 2, :2].abs().sum() > 0  # the vertex behind the camera moves its edges


def test_antialias_topology_hash():
    tri = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 2, 4], [5, 6, 7]])
    h = dr.antialias_construct_topology_hash(tri)
    # edge (0, 2) is shared by three faces: non-manifold (-2); (1, 2)/(2, 0) ...
    assert h.shape == (4, 3) and h.dtype == torch.int64
    assert h[0, 2] == -2 and h[1, 0] == -2 and h[2, 0] == -2
    assert h[3].tolist() == [-1, -1, -1] and h[0, 0] == -1
    quad = torch.tensor([[0, 1, 2], [0, 2, 3]])
    hq = dr.antialias_construct_topology_hash(quad)
    assert hq[0, 2] == 1 and hq[1, 0] == 0 and (hq[0, :2] == -1).all() and (hq[1, 1:] == -1).all()


def test_antialias_gradcheck_color_and_pos():
    pos = torch.tensor([[-0.71, -0.62, 0.2, 1], [0.83, -0.31, 0.2, 1.5], [-0.13, 0.77, 0.2, 1.1],
                        [-0.91, 0.12, 0.5, 1], [0.33, 0.93, 0.5, 1], [0.61, -0.87, 0.5, 1.2]], dtype=F64)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    rast, _ = dr.rasterize(None, pos[None], tri, (10, 12))
    g = torch.Generator().manual_seed(8)
    col = torch.rand(1, 10, 12, 2, generator=g, dtype=F64, requires_grad=True)
    p = pos[None].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda q: dr.antialias(col.detach(), rast, q, tri), (p,))
    assert torch.autograd.gradcheck(lambda c: dr.antialias(c, rast, p.detach(), tri), (col,), fast_mode=True)
    dr.antialias(col, rast, p, tri).sum().backward()
    g1 = p.grad.clone()
    assert g1.abs().sum() > 0  # visibility gradients exist
    p.grad = None
    dr.antialias(col, rast, p, tri, pos_gradient_boost=3.0).sum().backward()
    torch.testing.assert_close(p.grad, 3 * g1)


def test_antialias_fits_a_silhouette():
    """Visibility gradients alone move a flat white triangle onto a target silhouette."""
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    base = torch.tensor([[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0.0, 0.5, 0, 1]])
    target_pos = base + torch.tensor([0.13, -0.07, 0, 0])

    def render(p):
        rast, _ = dr.rasterize(None, p, tri, (32, 32))
        return dr.antialias((rast[..., 3:] > 0).float(), rast, p, tri)

    target = render(target_pos[None])
    offset = torch.zeros(1, 1, 4, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=0.01)
    losses = []
    for _ in range(30):
        loss = (render(base[None] + offset * torch.tensor([1.0, 1, 0, 0])) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_antialias_bad_input():
    pos, tri, cols = _aa_scene()
    rast, _ = dr.rasterize(None, pos[None], tri, (8, 8))
    col = cols[rast[..., 3].long()]
    with pytest.raises(ValueError, match="rast"):
        dr.antialias(col, rast[:, :4], pos[None], tri)
    with pytest.raises(ValueError, match="pos"):
        dr.antialias(col, rast, pos[None, :, :3], tri)
    with pytest.raises(ValueError, match="topology_hash"):
        dr.antialias(col, rast, pos[None], tri, topology_hash=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="tri"):
        dr.antialias(col, rast, pos[None], tri + 100)


# ----------------------------------------------------------------------------- DepthPeeler

def test_depth_peeler_layers_sort_every_fragment():
    """Layer k at each pixel = its k-th fragment when every triangle's fragments (each rasterized
    alone by the reference backend) are sorted by depth; later layers are empty."""
    import render_npu
    g = torch.Generator().manual_seed(7)
    F_ = 12
    pos = torch.rand(F_ * 3, 4, generator=g) * 2 - 1
    pos[:, 3] = 1 + torch.rand(F_ * 3, generator=g)
    pos[:, :2] *= pos[:, 3:4]
    tri = torch.arange(F_ * 3, dtype=torch.int32).view(F_, 3)
    H, W = 24, 20
    cov, dep = [], []
    for f in range(F_):
        o = render_npu.rasterize((H, W), tri[f:f + 1], pos, viewport="opengl", backend="reference")
        cov.append(o.rast[0, ..., 3] > 0)
        dep.append(o.depth[0])
    cov, dep = torch.stack(cov), torch.stack(dep)
    order = torch.sort(torch.where(cov, dep, torch.full_like(dep, float("inf"))), dim=0, stable=True)
    depth_count = int(cov.sum(0).max())
    assert depth_count >= 3
    with dr.DepthPeeler(None, pos, tri, (H, W)) as peeler:
        for k in range(depth_count + 1):
            rast, db = peeler.rasterize_next_layer()
            assert rast.shape == (1, H, W, 4) and db.shape == (1, H, W, 4)
            if k < depth_count:
                has = torch.isfinite(order.values[k])
                want = torch.where(has, order.indices[k] + 1, 0)
                assert torch.equal(rast[0, ..., 3].long(), want), k
                torch.testing.assert_close(rast[0, ..., 2][has], order.values[k][has], rtol=0, atol=1e-6)
            else:
                assert not rast.any()
            if k == 0:
                first, _ = dr.rasterize(None, pos, tri, (H, W))
                # the peeler runs the torch backend: same ids, floats within an ulp of the cpu backend's
                assert torch.equal(rast[..., 3], first[..., 3])
                torch.testing.assert_close(rast, first, rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError, match="with"):
        peeler.rasterize_next_layer()


# ----------------------------------------------------------------------------- TRELLIS-style bake

def test_trellis_style_bake_loss_falls():
    """examples/fit_texture.py's loop (rasterize + rast_db, interpolate diff_attrs='all', mipmapped
    texture, antialias, L1, Adam) for a few steps at a small size: the loss falls."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fit_texture.py"
    spec = importlib.util.spec_from_file_location("fit_texture", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    losses, psnr = mod.fit(steps=6, res=48, tex_size=32, lr=0.05, verbose=False)
    assert losses[-1] < 0.7 * losses[0]
    assert math.isfinite(psnr)


@pytest.mark.parametrize("filter_mode", ["nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear"])
def test_texture_compiled_forward_matches_torch_ops(filter_mode):
    """The compiled CPU forward (float32, no gradient needed) equals the torch-ops path (taken when a
    gradient is needed) to float32 rounding, for every boundary mode, odd sizes and batch broadcast."""
    from render_npu.ops import texture as T
    g = torch.Generator().manual_seed(9)
    uv = torch.rand(2, 30, 40, 2, generator=g) * 1.6 - 0.3
    da = torch.rand(2, 30, 40, 4, generator=g) * 0.3
    bias = torch.rand(2, 30, 40, generator=g) - 0.5
    da[:, ::3] = 0  # lod clamped to 0: the kernel reads one level
    bias_int = torch.round(bias * 8)  # without uv_da, lod = bias: integer lods read one level too
    # channel counts: the kernel's fixed-count specialisations (3), its generic path (5), and the
    # generic path that accumulates in place (more than 64)
    for C in (3, 5, 70):
        tex = torch.rand(1, 37, 53, C, generator=g)
        for mode in ("wrap", "clamp", "zero"):
            for d, b in ((da, bias), (None, bias_int)):
                assert T._use_compiled(tex, uv, d, b, None, False)
                fast = dr.texture(tex, uv, d, b, filter_mode=filter_mode, boundary_mode=mode)
                slow = dr.texture(tex.clone().requires_grad_(), uv, d, b, filter_mode=filter_mode,
                                  boundary_mode=mode)
                torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-6)


def test_texture_nonfinite_coordinates_stay_in_bounds():
    """NaN, inf and huge uv / uv_da read inside the texture on both paths (no crash, no IndexError)."""
    tex = torch.rand(1, 8, 8, 2)
    bad = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 0.5])
    uv = torch.stack(torch.meshgrid(bad, bad, indexing="ij"), -1)[None]
    da = torch.full((1, 6, 6, 4), float("nan"))
    da[0, :3] = 1e30
    for mode in ("wrap", "clamp", "zero"):
        for fm in ("nearest", "linear", "linear-mipmap-linear", "linear-mipmap-nearest"):
            for t in (tex, tex.clone().requires_grad_()):
                out = dr.texture(t, uv, da, filter_mode=fm, boundary_mode=mode)
                assert out.shape == (1, 6, 6, 2)
                fin = torch.isfinite(uv).all(-1)
                assert torch.isfinite(out[fin]).all()


def test_depth_peeler_range_mode_and_gradients():
    """Range mode peels each range separately with global ids; rast_db is differentiable w.r.t. pos."""
    pos, tri = _tri_scene()
    ranges = torch.tensor([[0, 2], [1, 1]], dtype=torch.int32)
    with dr.DepthPeeler(None, pos, tri, (16, 16), ranges=ranges) as peeler:
        r0, _ = peeler.rasterize_next_layer()
        r1, _ = peeler.rasterize_next_layer()
    with dr.DepthPeeler(None, pos[None], tri, (16, 16)) as whole:
        w0, _ = whole.rasterize_next_layer()
        w1, _ = whole.rasterize_next_layer()
    assert torch.equal(r0[0], w0[0]) and torch.equal(r1[0], w1[0]) and (w1[..., 3] > 0).any()
    single, _ = dr.rasterize(None, pos, tri, (16, 16), ranges=torch.tensor([[1, 1]], dtype=torch.int32))
    assert torch.equal(r0[1, ..., 3], single[0, ..., 3]) and not r1[1].any()
    p = pos[None].clone().requires_grad_()
    with dr.DepthPeeler(dr.RasterizeGLContext(), p, tri, (16, 16)) as peeler:
        peeler.rasterize_next_layer()
        _, db = peeler.rasterize_next_layer()
    db.abs().sum().backward()
    assert p.grad.abs().sum() > 0


def test_depth_peeler_layer_gradients():
    """A deeper layer's (u, v, z/w) are differentiable w.r.t. pos like rasterize's: the gradient equals
    the float64 parent-triangle resolve's at that layer's fragments (render_npu.resolve), whose
    gradient passes float64 gradcheck; also in range mode."""
    from render_npu import resolve
    pos, tri = _tri_scene(F64)
    H, W = 16, 18
    g = torch.Generator().manual_seed(11)
    wts = torch.randn(1, H, W, 3, generator=g, dtype=F64)
    for ranges in (None, torch.tensor([[0, 2]], dtype=torch.int32)):
        p = (pos[None] if ranges is None else pos).clone().requires_grad_()
        with dr.DepthPeeler(None, p, tri, (H, W), ranges=ranges) as peeler:
            peeler.rasterize_next_layer()
            rast, _ = peeler.rasterize_next_layer()
        assert rast.requires_grad and (rast[..., 3] > 0).sum() > 10  # layer 1: the hidden fragments
        (rast[..., :3] * wts).sum().backward()
        q = pos[None].clone().requires_grad_()
        bary, depth = resolve.resolve(q, tri, rast.detach(), "opengl", backward="torch")
        ((bary[..., :2] * wts[..., :2]).sum() + (depth * wts[..., 2]).sum()).backward()
        grad = p.grad if ranges is None else p.grad[None]
        assert q.grad.abs().sum() > 0
        torch.testing.assert_close(grad, q.grad, rtol=1e-4, atol=1e-4 * q.grad.abs().max().item())
        f = (lambda x: torch.cat([y.reshape(-1) for y in resolve.resolve(x, tri, rast.detach(), "opengl")]))
        assert torch.autograd.gradcheck(f, (pos[None].clone().requires_grad_(),), eps=1e-6, atol=1e-5, rtol=1e-3,
                                        fast_mode=True)


def test_contexts_accept_nvdiffrast_arguments():
    """Scripts construct contexts with nvdiffrast's arguments for a CUDA device; the contexts hold no
    device state, so they render whatever device the tensors are on."""
    pos, tri = _tri_scene()
    for ctx in (dr.RasterizeCudaContext(), dr.RasterizeCudaContext(device="cuda:0"),
                dr.RasterizeCudaContext(torch.device("cuda")), dr.RasterizeGLContext(),
                dr.RasterizeGLContext(output_db=True, mode="manual", device="cuda")):
        rast, db = dr.rasterize(ctx, pos[None], tri, (8, 8))
        assert rast.device.type == "cpu" and db.shape == (1, 8, 8, 4)
    with pytest.raises(ValueError, match="mode"):
        dr.RasterizeGLContext(mode="headless")
