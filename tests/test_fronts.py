"""Compatibility fronts: render_npu.nvdiffrast and render_npu.custom_rasterizer return their library's
documented layout and agree with render_npu.rasterize / render_npu.interpolate.

Layout facts checked here, from the libraries' own documentation / wrapper code:
* nvdiffrast: rast = (u, v, z/w, triangle_id + 1), u/v = barycentrics of the 1st/2nd vertex of the
  triplet (1st vertex has (u, v) = (1, 0), 2nd (0, 1), 3rd (0, 0)); zeros where empty; resolution is
  (height, width); row 0 is the bottom row; interpolate returns (out, out_db) with out_db empty
  [B, H, W, 0] unless rast_db and diff_attrs are given, then [B, H, W, 2 * len(diff_attrs)] as
  (dA/dX, dA/dY) per attribute.
* Hunyuan3D custom_rasterizer: rasterize(pos [1, V, 4], tri, resolution=(H, W)) -> (findices int32
  [H, W], 0 = empty else id + 1; barycentric float32 [H, W, 3]); interpolate(col [1, V, C], findices,
  barycentric, tri) -> [1, H, W, C]; screen x = (x/w * 0.5 + 0.5) * (W - 1) + 0.5 (align_corners).
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

import render_npu
import render_npu.custom_rasterizer as cr
import render_npu.nvdiffrast as dr
import scenes


def _scene(name):
    s = scenes.build(name)
    return s, torch.from_numpy(s.pos), torch.from_numpy(s.faces)


# ----------------------------------------------------------------------------- nvdiffrast

@pytest.mark.parametrize("ctx", [None, dr.RasterizeCudaContext(), dr.RasterizeGLContext()], ids=["none", "cuda", "gl"])
def test_nvdiffrast_layout_matches_core(ctx):
    s, pos, tri = _scene("batch3")  # opengl viewport, B = 3
    rast, rast_db = dr.rasterize(ctx, pos, tri, resolution=[s.H, s.W])
    core = render_npu.rasterize((s.H, s.W), tri, pos, viewport="opengl")
    assert rast.shape == (3, s.H, s.W, 4) and rast.dtype == torch.float32
    assert torch.equal(rast[..., 0], core.rast[..., 0]) and torch.equal(rast[..., 1], core.rast[..., 1])
    assert torch.equal(rast[..., 2], core.depth) and torch.equal(rast[..., 3], core.rast[..., 3])
    empty = rast[..., 3] == 0
    assert empty.any() and (rast[empty] == 0).all()
    assert rast_db.shape == (3, s.H, s.W, 4) and not rast_db[empty].any() and rast_db[~empty].any()


def test_nvdiffrast_output_db_off():
    s, pos, tri = _scene("tri_cw")
    _, rast_db = dr.rasterize(dr.RasterizeGLContext(output_db=False), pos[None], tri, (s.H, s.W))
    assert rast_db.shape == (1, s.H, s.W, 0)


def test_nvdiffrast_hand_values():
    """4 x 4 quad NDC [-1, 1]^2 split (v0, v1, v2) / (v0, v2, v3), opengl mapping: pixel (col 2, row 1)
    has centre (2.5, 1.5) inside triangle 0 with barycentrics (1.5/4, 1/4, 1.5/4) -> (u, v) = (0.375, 0.25);
    z/w = 0.5 everywhere; id + 1 = 1. A sliver along NDC y = -1 lands in row 0 (row 0 = bottom)."""
    pos = torch.tensor([[-1, -1, 0.5, 1], [1, -1, 0.5, 1], [1, 1, 0.5, 1], [-1, 1, 0.5, 1]], dtype=torch.float32)
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    rast, _ = dr.rasterize(None, pos[None], tri, (4, 4))
    np.testing.assert_allclose(rast[0, 1, 2].numpy(), [0.375, 0.25, 0.5, 1.0], atol=1e-6)
    sliver = torch.tensor([[-1, -1, 0, 1], [1, -1, 0, 1], [0, -0.6, 0, 1]], dtype=torch.float32)
    rast, _ = dr.rasterize(None, sliver, torch.tensor([[0, 1, 2]]), (8, 8))
    rows = torch.nonzero(rast[0, ..., 3]).unique(dim=0)[:, 0]
    assert rows.min() == 0 and rows.max() <= 1


def test_nvdiffrast_interpolate():
    s, pos, tri = _scene("batch3")
    rast, rast_db = dr.rasterize(None, pos, tri, (s.H, s.W))
    core = render_npu.rasterize((s.H, s.W), tri, pos, viewport="opengl")
    V = pos.shape[1]
    attr = torch.randn(V, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    want = render_npu.interpolate(attr, core.rast, tri)
    for a in (attr, attr[None], attr[None].expand(3, -1, -1).contiguous()):  # range-style, broadcast, instanced
        out, out_db = dr.interpolate(a, rast, tri)
        assert out.shape == (3, s.H, s.W, 5) and out_db.shape == (3, s.H, s.W, 0)
        torch.testing.assert_close(out, want, rtol=0, atol=2e-6)
    out, out_db = dr.interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs="all")
    assert out_db.shape == (3, s.H, s.W, 10) and not out_db[rast[..., 3] == 0].any()
    _, out_db = dr.interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=[1, 3])
    assert out_db.shape == (3, s.H, s.W, 4)


def test_nvdiffrast_interpolate_derivative_chain_rule():
    """With given barycentric derivatives (du/dX, du/dY, dv/dX, dv/dY) = (1, 2, 3, 4), an attribute A with
    vertex values (A0, A1, A2) = (10, 20, 40) has dA/dX = (A0 - A2) 1 + (A1 - A2) 3 = -30 - 60 = -90 and
    dA/dY = (A0 - A2) 2 + (A1 - A2) 4 = -60 - 80 = -140 on covered pixels, 0 elsewhere."""
    pos = torch.tensor([[-0.8, -0.8, 0, 1], [0.8, -0.8, 0, 1], [0, 0.8, 0, 1]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = dr.rasterize(None, pos, tri, (8, 8))
    db = torch.tensor([1.0, 2.0, 3.0, 4.0]).expand(1, 8, 8, 4)
    attr = torch.tensor([[10.0], [20.0], [40.0]])
    _, out_db = dr.interpolate(attr, rast, tri, rast_db=db, diff_attrs=[0])
    hit = rast[..., 3] > 0
    assert hit.any() and (~hit).any()
    torch.testing.assert_close(out_db[hit], torch.tensor([-90.0, -140.0]).expand(int(hit.sum()), 2))
    assert not out_db[~hit].any()


def test_nvdiffrast_interpolate_grad():
    s, pos, tri = _scene("tri_ccw")
    rast, _ = dr.rasterize(None, pos[None], tri, (s.H, s.W))
    attr = torch.ones(3, 2, requires_grad=True)
    out, _ = dr.interpolate(attr, rast, tri)
    out.sum().backward()
    # d(sum)/d(attr_k) = sum over covered pixels of b_k, per channel; sum_k = number of covered pixels
    torch.testing.assert_close(attr.grad.sum(dim=0), (rast[..., 3] > 0).sum().float().expand(2), rtol=1e-5, atol=1e-3)


def test_nvdiffrast_range_mode():
    """ranges [B, 2] = (start, count): image b renders tri[start:start + count] of a [V, 4] pos, with ids
    into the whole tri: equal to instanced mode on the sub-list with ids shifted by start."""
    s, pos, tri = _scene("batch3")
    p = pos[1]
    ranges = torch.tensor([[0, 5], [3, tri.shape[0] - 3], [2, 0]], dtype=torch.int32)
    rast, db = dr.rasterize(None, p, tri, (s.H, s.W), ranges=ranges)
    assert rast.shape == (3, s.H, s.W, 4) and db.shape == (3, s.H, s.W, 4)
    for b, (start, count) in enumerate(ranges.tolist()):
        want, want_db = dr.rasterize(None, p[None], tri[start:start + count], (s.H, s.W))
        ids = want[..., 3]
        assert torch.equal(rast[b, ..., 3], torch.where(ids > 0, ids + start, ids)[0])
        assert torch.equal(rast[b, ..., :3], want[0, ..., :3])
        torch.testing.assert_close(db[b], want_db[0])
    assert not rast[2].any()
    with pytest.raises(ValueError, match="ranges"):
        dr.rasterize(None, p, tri, (8, 8), ranges=torch.tensor([[0, tri.shape[0] + 1]], dtype=torch.int32))
    with pytest.raises(ValueError, match="range mode"):
        dr.rasterize(None, pos, tri, (8, 8), ranges=ranges)
    with pytest.raises(TypeError, match="glctx"):
        dr.rasterize(object(), pos, tri, (8, 8))


# ----------------------------------------------------------------------------- custom_rasterizer

def test_custom_rasterizer_layout_matches_core():
    s, pos, tri = _scene("nonsquare_37x1000")  # align_corners, H != W
    findices, bary = cr.rasterize(pos[None], tri, (s.H, s.W))
    core = render_npu.rasterize((s.H, s.W), tri, pos)
    assert findices.shape == (37, 1000) and findices.dtype == torch.int32
    assert bary.shape == (37, 1000, 3) and bary.dtype == torch.float32
    assert torch.equal(findices, core.rast[0, ..., 3].to(torch.int32))
    assert torch.equal(bary, core.rast[0, ..., :3])
    assert (findices == 0).any() and (bary[findices == 0] == 0).all()


def test_custom_rasterizer_hand_mapping():
    """Hunyuan3D's mapping: NDC (-1, -1) is the centre of pixel (col 0, row 0), NDC (1, 1) of (W-1, H-1).
    H, W = 5, 7: a small triangle around NDC (1, -1) covers only (row 0, col 6); around (-1, 1) only
    (row 4, col 0)."""
    e = 0.05
    for (X, Y), pixel in (((1.0, -1.0), (0, 6)), ((-1.0, 1.0), (4, 0))):
        pos = torch.tensor([[[X - e, Y - e, 0, 1], [X + e, Y - e, 0, 1], [X, Y + e, 0, 1]]])
        findices, bary = cr.rasterize(pos, torch.tensor([[0, 1, 2]], dtype=torch.int32), (5, 7))
        assert [tuple(p) for p in torch.nonzero(findices).tolist()] == [pixel]
        assert findices[pixel] == 1
        torch.testing.assert_close(bary[pixel].sum(), torch.tensor(1.0))


def test_custom_rasterizer_interpolate():
    s, pos, tri = _scene("sphere_ortho")
    findices, bary = cr.rasterize(pos[None], tri, (s.H, s.W))
    col = torch.rand(1, pos.shape[0], 3, generator=torch.Generator().manual_seed(1))
    out = cr.interpolate(col, findices, bary, tri)
    core = render_npu.rasterize((s.H, s.W), tri, pos)
    assert out.shape == (1, s.H, s.W, 3)
    torch.testing.assert_close(out, render_npu.interpolate(col[0], core.rast, tri), rtol=0, atol=1e-6)
    # MeshRender's path: rast_out = cat(barycentric, findices) (float), then findices = rast_out[0, ..., -1]
    rast_out = torch.cat((bary, findices.unsqueeze(-1)), dim=-1).unsqueeze(0)
    out2 = cr.interpolate(col, rast_out[0, ..., -1], rast_out[0, ..., :-1], tri)
    assert torch.equal(out, out2)
    # Hunyuan3D's own formula, written out: f = findices - 1 + (findices == 0); sum_k b_k col[0, tri[f, k]]
    f = (findices - 1 + (findices == 0).int()).long()
    ref = (bary[..., None] * col[0, tri.long()[f]]).sum(-2)[None]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_custom_rasterizer_unsupported():
    s, pos, tri = _scene("tri_ccw")
    with pytest.raises(NotImplementedError, match="depth_prior"):
        cr.rasterize(pos[None], tri, (8, 8), clamp_depth=torch.zeros(8, 8), use_depth_prior=1)
    with pytest.raises(ValueError, match="pos"):
        cr.rasterize(pos[None, None], tri, (8, 8))
