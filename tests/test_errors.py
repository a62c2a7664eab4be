"""Bad input: every error class of the contract (SPEC.md "Errors") raises the documented exception,
and its message names the offending argument (and says what was expected).

Each case first checks that the same call with the one bad argument corrected succeeds, so a test
cannot pass because the call fails for some other reason.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import render_npu
from agreement import backend_params

POS = torch.tensor([[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0], [0.9, 0.9, 0.0, 1.0]])
FACES = torch.tensor([[0, 1, 2], [1, 3, 2]], dtype=torch.int32)
RES = (8, 12)


def raster(resolution=RES, faces=FACES, pos=POS, **kw):
    kw.setdefault("backend", "reference")
    return render_npu.rasterize(resolution, faces, pos, **kw)


def expect(exc, names, fn, *args, **kw):
    """``fn(*args, **kw)`` raises ``exc`` whose message mentions every word in ``names``."""
    with pytest.raises(exc) as info:
        fn(*args, **kw)
    msg = str(info.value)
    for n in names:
        assert re.search(n, msg), f"message {msg!r} does not mention {n!r}"
    return msg


def test_valid_call_works():
    rast, depth = raster()
    assert rast.shape == (1, 8, 12, 4) and depth.shape == (1, 8, 12) and (rast[..., 3] > 0).any()
    assert raster(pos=POS.double()).rast.dtype == torch.float32  # any float dtype is accepted
    assert raster(pos=POS.half()).rast.shape == (1, 8, 12, 4)
    assert raster(faces=FACES.long(), resolution=5).rast.shape == (1, 5, 5, 4)
    assert raster(resolution=torch.tensor([8, 12])).rast.shape == (1, 8, 12, 4)


# ------------------------------------------------------------------ resolution

@pytest.mark.parametrize("bad", ["64", 64.0, None, (8.0, 12), (8, "12"), True, (True, 4), object()])
def test_resolution_wrong_type(bad):
    expect(TypeError, ["resolution"], raster, resolution=bad)


@pytest.mark.parametrize("bad", [0, -1, 16385, (0, 12), (8, 0), (16385, 8), (8, 16385), (-4, 4)])
def test_resolution_out_of_range(bad):
    expect(ValueError, ["resolution", "16384"], raster, resolution=bad)


@pytest.mark.parametrize("bad", [(8,), (8, 12, 3), ()])
def test_resolution_wrong_length(bad):
    expect(ValueError, ["resolution"], raster, resolution=bad)


def test_resolution_limits_accepted():
    assert raster(resolution=(1, 1)).rast.shape == (1, 1, 1, 4)
    assert raster(resolution=(16384, 1)).rast.shape == (1, 16384, 1, 4)


# ------------------------------------------------------------------ pos_clip

@pytest.mark.parametrize("bad", [POS.numpy(), POS.tolist(), None])
def test_pos_not_a_tensor(bad):
    expect(TypeError, ["pos_clip"], raster, pos=bad)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool, torch.complex64])
def test_pos_wrong_dtype(dtype):
    expect(TypeError, ["pos_clip", "float"], raster, pos=POS.to(dtype))


@pytest.mark.parametrize("shape", [(4, 3), (4, 5), (16,), (1, 1, 4, 4), (4, 4, 1)])
def test_pos_wrong_shape(shape):
    bad = torch.zeros(shape)
    expect(ValueError, ["pos_clip", r"\[V, 4\]"], raster, pos=bad)


# ------------------------------------------------------------------ faces

@pytest.mark.parametrize("bad", [FACES.numpy(), FACES.tolist(), None])
def test_faces_not_a_tensor(bad):
    expect(TypeError, ["faces"], raster, faces=bad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int16, torch.uint8, torch.bool])
def test_faces_wrong_dtype(dtype):
    expect(TypeError, ["faces", "int32"], raster, faces=FACES.to(dtype))


@pytest.mark.parametrize("shape", [(2, 4), (2, 2), (6,), (1, 2, 3), (3, 2)])
def test_faces_wrong_shape(shape):
    expect(ValueError, ["faces", r"\[F, 3\]"], raster, faces=torch.zeros(shape, dtype=torch.int32))


@pytest.mark.parametrize("value", [-1, -(2 ** 31), 4, 5, 2 ** 31 - 1])
def test_faces_index_out_of_range(value):
    bad = FACES.clone()
    bad[1, 2] = value
    expect(ValueError, ["faces", r"\[0, 4\)"], raster, faces=bad)


def test_faces_index_out_of_range_int64():
    bad = FACES.long().clone()
    bad[0, 0] = 2 ** 40  # would wrap to 0 in int32
    expect(ValueError, ["faces"], raster, faces=bad)


def test_too_many_faces():
    huge = torch.zeros((1, 3), dtype=torch.int32).expand(2 ** 24 + 1, 3)  # no memory behind it
    expect(ValueError, ["faces", r"2\*\*24"], raster, faces=huge)


def test_faces_of_empty_mesh():
    """F = 0 is fine; any face with V = 0 is out of range."""
    assert not raster(faces=torch.zeros((0, 3), dtype=torch.int32)).rast.any()
    expect(ValueError, ["faces"], raster, pos=torch.zeros((0, 4)))


# ------------------------------------------------------------------ devices

def test_faces_and_pos_on_different_devices():
    expect(ValueError, ["faces", "pos_clip", "device"], raster, pos=POS.to("meta"))
    expect(ValueError, ["faces", "pos_clip", "device"], raster, faces=FACES.to("meta"))


@pytest.mark.compiled("rasterize")
def test_cpu_backend_needs_cpu_tensors():
    from render_npu import backends  # no second real device here: ask the dispatcher directly

    expect(ValueError, ["cpu", "npu"], backends.choose, "cpu", "npu")


# ------------------------------------------------------------------ options

@pytest.mark.parametrize("bad", ["OpenGL", "align-corners", "", None, 1])
def test_bad_viewport(bad):
    expect(ValueError, ["viewport", "align_corners"], raster, viewport=bad)


@pytest.mark.parametrize("bad", ["gpu", "CPU", "", "nvdiffrast"])
def test_bad_backend_name(bad):
    expect(ValueError, ["backend", "reference"], raster, backend=bad)


@pytest.mark.parametrize("bad", [1, "yes", None, np.bool_(True)])
def test_bad_cull_backfaces(bad):
    expect(TypeError, ["cull_backfaces", "bool"], raster, cull_backfaces=bad)


def test_unavailable_backend_says_why(monkeypatch):
    from render_npu import backends

    monkeypatch.setitem(backends._cache, "torch", backends.BackendStatus(False, "pretend: no torch ops here"))
    expect(RuntimeError, ["torch", "not available", "pretend: no torch ops here"], raster, backend="torch")


@pytest.mark.compiled("rasterize")
@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_num_threads(bad):
    expect(ValueError, ["num_threads"], raster, backend="cpu", num_threads=bad)


# ------------------------------------------------------------------ interpolate

@pytest.fixture(scope="module")
def rast():
    return raster().rast


ATTR = torch.arange(12, dtype=torch.float32).reshape(4, 3)


def test_interpolate_valid(rast):
    out = render_npu.interpolate(ATTR, rast, FACES)
    assert out.shape == (1, 8, 12, 3)


@pytest.mark.parametrize("bad", [ATTR.long(), ATTR.numpy(), None])
def test_interpolate_attr_wrong_type(rast, bad):
    expect(TypeError, ["attr"], render_npu.interpolate, bad, rast, FACES)


@pytest.mark.parametrize("shape", [(4,), (1, 1, 4, 3)])
def test_interpolate_attr_wrong_shape(rast, shape):
    expect(ValueError, ["attr"], render_npu.interpolate, torch.zeros(shape), rast, FACES)


def test_interpolate_attr_too_few_vertices(rast):
    expect(ValueError, ["faces"], render_npu.interpolate, ATTR[:3], rast, FACES)


def test_interpolate_attr_batch_mismatch(rast):
    expect(ValueError, ["attr", "batch"], render_npu.interpolate, ATTR.expand(2, 4, 3), rast.expand(3, -1, -1, -1),
           FACES)


@pytest.mark.parametrize("bad", [lambda r: r[0], lambda r: r[..., :3], lambda r: r.numpy(), lambda r: None])
def test_interpolate_rast_wrong_shape(rast, bad):
    expect((ValueError, TypeError), ["rast"], render_npu.interpolate, ATTR, bad(rast), FACES)


@pytest.mark.parametrize("value", [3.0, 1.5, -1.0, float("nan"), float("inf")])
def test_interpolate_rast_bad_ids(rast, value):
    bad = rast.clone()
    bad[0, 4, 6, 3] = value
    expect(ValueError, ["rast"], render_npu.interpolate, ATTR, bad, FACES)


def test_interpolate_faces_bad(rast):
    expect(TypeError, ["faces"], render_npu.interpolate, ATTR, rast, FACES.float())
    expect(ValueError, ["faces"], render_npu.interpolate, ATTR, rast, FACES[:, :2])


def test_interpolate_devices(rast):
    expect(ValueError, ["device"], render_npu.interpolate, ATTR.to("meta"), rast, FACES)
    expect(ValueError, ["device"], render_npu.interpolate, ATTR, rast.to("meta"), FACES)


def test_meta_tensors_rejected():
    """Tensors on the data-less 'meta' device cannot be range-checked or rasterized: a ValueError."""
    expect(ValueError, ["faces", "meta"], raster, pos=POS.to("meta"), faces=FACES.to("meta"))
    expect(ValueError, ["faces", "meta"], render_npu.interpolate, ATTR.to("meta"), torch.zeros(1, 2, 2, 4, device="meta"),
           FACES.to("meta"))


# ---- out= buffers --------------------------------------------------------------------------------
def _tri_scene():
    pos = torch.tensor([[-0.8, -0.8, 0.1, 1.0], [0.8, -0.8, 0.2, 1.0], [0.0, 0.9, 0.3, 1.0]])
    return pos, torch.tensor([[0, 1, 2]], dtype=torch.int32)


@pytest.mark.parametrize("backend", backend_params(["reference", "cpu", "torch"]))
def test_out_buffers_receive_the_result(backend):
    pos, faces = _tri_scene()
    want = render_npu.rasterize((9, 7), faces, pos, backend=backend)
    out = (torch.full((1, 9, 7, 4), 7.0), torch.full((1, 9, 7), 7.0))
    got = render_npu.rasterize((9, 7), faces, pos, backend=backend, out=out)
    assert got.rast is out[0] and got.depth is out[1]
    assert torch.equal(out[0], want.rast) and torch.equal(out[1], want.depth)
    # zero faces clears the buffers
    render_npu.rasterize((9, 7), faces[:0], pos, backend=backend, out=out)
    assert not out[0].any() and not out[1].any()


@pytest.mark.parametrize("bad, err, words", [
    ("x", TypeError, "pair"),
    ((torch.zeros(1, 9, 7, 4), torch.zeros(1, 9, 7, dtype=torch.float64)), TypeError, "out[1]"),
    ((torch.zeros(1, 9, 8, 4), torch.zeros(1, 9, 7)), ValueError, "out[0]"),
    ((torch.zeros(1, 9, 7, 4).transpose(1, 2).contiguous().transpose(1, 2), torch.zeros(1, 9, 7)), ValueError,
     "contiguous"),
    ((torch.zeros(1, 9, 7, 4), torch.zeros(1, 9, 7, device="meta")), ValueError, "out[1]"),
])
def test_bad_out_buffers(bad, err, words):
    pos, faces = _tri_scene()
    with pytest.raises(err) as info:
        render_npu.rasterize((9, 7), faces, pos, out=bad)
    assert words in str(info.value)


def test_meta_tensors_with_zero_faces_rejected():
    """No faces is no excuse: meta tensors hold no values and have no memory to write into."""
    none = FACES[:0]
    expect(ValueError, ["faces", "meta"], raster, pos=POS.to("meta"), faces=none.to("meta"))
    expect(ValueError, ["faces", "meta"], raster, pos=torch.zeros(0, 3, 4, device="meta"), faces=none.to("meta"))
    pos, faces = _tri_scene()
    meta_out = (torch.zeros(1, 9, 7, 4, device="meta"), torch.zeros(1, 9, 7, device="meta"))
    expect(ValueError, [r"out\[0\]", "meta"], render_npu.rasterize, (9, 7), faces[:0], pos, out=meta_out)
    expect(ValueError, ["faces", "meta"], render_npu.interpolate, torch.zeros(3, 2, device="meta"),
           torch.zeros(1, 2, 2, 4, device="meta"), none.to("meta"))


def _overlapping_out():
    """rast and depth carved out of one storage so that depth starts inside rast's last row."""
    store = torch.zeros(9 * 7 * 4 + 9 * 7)
    rast = store[:9 * 7 * 4].view(1, 9, 7, 4)
    depth = store[9 * 7 * 4 - 7:9 * 7 * 4 - 7 + 9 * 7].view(1, 9, 7)
    return rast, depth


@pytest.mark.parametrize("backend", ["reference", "cpu", "torch"])
def test_out_buffers_must_not_overlap(backend):
    """Two buffers at different addresses that share bytes (or an output aliasing an input) would
    corrupt the result: refused before anything is written."""
    pos, faces = _tri_scene()
    rast, depth = _overlapping_out()
    assert rast.data_ptr() != depth.data_ptr()  # the old check (same address) let this through
    msg = expect(ValueError, [r"out\[0\] \(rast\)", r"out\[1\] \(depth\)", "share memory"], render_npu.rasterize,
                 (9, 7), faces, pos, backend=backend, out=(rast, depth))
    assert msg == "out[0] (rast) and out[1] (depth) share memory; pass two separate buffers"
    assert not rast.any()  # nothing written
    # an output aliasing the caller's pos_clip (float32 contiguous: the backend would read it in place)
    big = torch.zeros(1 * 9 * 7 * 4 + 64)
    p = big[:12].view(3, 4)
    p.copy_(pos)
    alias = (big[:9 * 7 * 4].view(1, 9, 7, 4), torch.zeros(1, 9, 7))
    msg = expect(ValueError, ["pos_clip"], render_npu.rasterize, (9, 7), faces, p, backend=backend, out=alias)
    assert msg == "out[0] (rast) shares memory with the input pos_clip; the output must not alias an input"
    # faces stored inside the depth buffer's memory (int32 viewed from the same bytes)
    dstore = torch.zeros(1, 9, 7)
    f = dstore.view(-1)[:3].view(torch.int32).view(1, 3)
    f.copy_(faces)
    msg = expect(ValueError, ["faces"], render_npu.rasterize, (9, 7), f, pos, backend=backend,
                 out=(torch.zeros(1, 9, 7, 4), dstore))
    assert msg == "out[1] (depth) shares memory with the input faces; the output must not alias an input"
    # disjoint views of one storage are fine
    store = torch.zeros(9 * 7 * 4 + 9 * 7)
    ok = (store[:9 * 7 * 4].view(1, 9, 7, 4), store[9 * 7 * 4:].view(1, 9, 7))
    got = render_npu.rasterize((9, 7), faces, pos, backend=backend, out=ok)
    assert torch.equal(got.rast, render_npu.rasterize((9, 7), faces, pos, backend=backend).rast)
