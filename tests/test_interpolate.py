"""The compiled interpolate (csrc/interpolate) against the torch path, and its gradients."""
import pytest
import torch

import render_npu
import render_npu.custom_rasterizer as cr
from render_npu import _api


def _scene(batch=2, hw=(48, 56), V=300, F=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(batch, V, 4, generator=g) * 2 - 1
    pos[..., 3] = 1
    pos[..., 2] = torch.rand(batch, V, generator=g) * 0.5
    faces = torch.randint(0, V, (F, 3), generator=g)
    rast, _ = render_npu.rasterize(hw, faces, pos)
    assert (rast[..., 3] > 0).float().mean() > 0.3  # enough covered pixels to test anything
    return rast, faces, V, g


def _torch_path(attr, rast, faces):
    return _api._interpolate_torch(attr, rast, rast[..., 3], faces.int(), "rast[..., 3]")


pytestmark = pytest.mark.compiled("interpolate")  # without it the comparisons would compare torch with itself


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", ["shared", "batched", "broadcast"])
def test_forward_bit_identical_to_torch(dtype, shape):
    rast, faces, V, g = _scene()
    attr = {"shared": torch.randn(V, 5, generator=g), "batched": torch.randn(2, V, 5, generator=g),
            "broadcast": torch.randn(1, V, 5, generator=g)}[shape].to(dtype)
    out = render_npu.interpolate(attr, rast, faces)
    assert out.dtype == dtype and out.shape == (2, 48, 56, 5)
    assert torch.equal(out, _torch_path(attr, rast, faces))


def test_threads_do_not_change_results():
    rast, faces, V, g = _scene(hw=(300, 310))
    attr = torch.randn(V, 3, generator=g, requires_grad=True)
    gout = torch.randn(2, 300, 310, 3, generator=g)
    results = []
    old = torch.get_num_threads()
    try:
        for n in (1, 3, 8):
            torch.set_num_threads(n)
            r = rast.clone().requires_grad_(True)
            out = render_npu.interpolate(attr, r, faces)
            ga, gr = torch.autograd.grad((out * gout).sum(), (attr, r))
            results.append((out, ga, gr))
    finally:
        torch.set_num_threads(old)
    for out, ga, gr in results[1:]:
        assert torch.equal(out, results[0][0]) and torch.equal(ga, results[0][1]) and torch.equal(gr, results[0][2])


def test_gradients_match_torch_path():
    rast, faces, V, g = _scene()
    gout = torch.randn(2, 48, 56, 4, generator=g)
    grads = []
    for fn in (render_npu.interpolate, _torch_path):
        attr = torch.randn(2, V, 4, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        r = rast.clone().requires_grad_(True)
        grads.append(torch.autograd.grad((fn(attr, r, faces) * gout).sum(), (attr, r)))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-5)
    assert not grads[0][1][..., 3].any()  # ids get a zero gradient


def test_gradcheck_float64_attr_and_barycentrics():
    rast, faces, V, g = _scene(batch=1, hw=(9, 11), V=40, F=60)
    ids = rast[..., 3:].double()
    bary = rast[..., :3].double().requires_grad_(True)
    for attr in (torch.randn(V, 2, generator=g, dtype=torch.float64), torch.randn(1, V, 2, generator=g, dtype=torch.float64)):
        attr.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda a, b: render_npu.interpolate(a, torch.cat([b, ids], -1), faces),
                                        (attr, bary))


def test_custom_rasterizer_front_reads_views_in_place():
    rast, faces, V, g = _scene(batch=1)
    attr = torch.randn(1, V, 3, generator=g)
    # MeshRender's call: views of one [1, H, W, 4] tensor (float ids, strided barycentrics)
    out = cr.interpolate(attr, rast[0, ..., -1], rast[0, ..., :-1], faces.int())
    assert torch.equal(out, render_npu.interpolate(attr[0], rast, faces))
    bary = rast[0, ..., :3].clone().requires_grad_(True)
    cr.interpolate(attr, rast[0, ..., 3].int(), bary, faces).sum().backward()
    assert bary.grad is not None and bary.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [float("nan"), -1.0, 0.5, 1e9])
def test_bad_ids_name_the_argument(bad):
    rast, faces, V, g = _scene(batch=1)
    rast[0, 3, 4, 3] = bad
    with pytest.raises(ValueError, match=r"rast\[\.\.\., 3\]"):
        render_npu.interpolate(torch.randn(V, 3), rast, faces)
    with pytest.raises(ValueError, match="findices"):
        cr.interpolate(torch.randn(V, 3), rast[0, ..., 3], rast[0, ..., :3], faces)


def test_gradient_reaches_pos_clip_through_the_compiled_kernel():
    """rast is differentiable w.r.t. pos_clip (render_npu.resolve): the compiled interpolate's
    barycentric gradient carries it on, as the torch path's autograd does."""
    rast0, faces, V, g = _scene(batch=1)
    pos = torch.rand(1, V, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pos[..., 3] = 1
    pos[..., 2] = pos[..., 2].abs() * 0.5
    attr = torch.randn(V, 3, generator=g)
    gout = torch.randn(1, 48, 56, 3, generator=g)
    grads = []
    for fn in (render_npu.interpolate, _torch_path):
        p = pos.clone().requires_grad_(True)
        rast, _ = render_npu.rasterize((48, 56), faces, p)
        (fn(attr, rast, faces) * gout).sum().backward()
        grads.append(p.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)
