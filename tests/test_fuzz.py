"""Fuzzing every public function with adversarial inputs (docs/robustness.md).

Inputs: NaN/Inf coordinates, w = 0 and negative w, huge (1e30) and tiny (1e-30) coordinates,
degenerate and duplicate faces, indices at the bounds, non-contiguous / strided / transposed /
expanded tensors, float16/bfloat16/float32/float64, empty tensors, batch sizes 0..4.

The rule: every call either raises a documented error (``ValueError``/``TypeError`` whose message
names the offending argument) or returns a result that agrees with the ``reference`` backend
(bit for bit for the compiled ``cpu`` backend, under tests/agreement.py's rule for the others).
Never a crash (a sanitizer build turns any out-of-bounds access into one: scripts/sanitize_tests.sh),
never a hang (a watchdog kills the run with a traceback after ``WATCHDOG_S`` seconds per example).

``RENDER_NPU_FUZZ_EXAMPLES`` sets the examples per test (default 40); examples are derandomized
(the same every run) unless ``RENDER_NPU_FUZZ_RANDOM=1``; ``RENDER_NPU_FUZZ_BACKENDS=cpu,torch``
restricts the backends compared with the reference (default: every available one).
"""
from __future__ import annotations

import contextlib
import faulthandler
import math
import os
from datetime import timedelta

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import render_npu
import render_npu.custom_rasterizer as cr
import render_npu.nvdiffrast as dr
from agreement import assert_agree
from render_npu import _ext, _validate
from render_npu import mesh_processor as mp

EXAMPLES = int(os.environ.get("RENDER_NPU_FUZZ_EXAMPLES", "40"))
WATCHDOG_S = 120.0
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=30),
    derandomize=not os.environ.get("RENDER_NPU_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)

BACKENDS = [name for name, (ok, _) in render_npu.backends().items() if ok and name != "reference"]
if os.environ.get("RENDER_NPU_FUZZ_BACKENDS"):  # e.g. "cpu,torch": fuzz only these against the reference
    BACKENDS = [b for b in BACKENDS if b in os.environ["RENDER_NPU_FUZZ_BACKENDS"].split(",")]
FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@contextlib.contextmanager
def watchdog(seconds: float = WATCHDOG_S):
    """No hang: dump every thread's traceback and exit the process if the body overruns."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


# ---------------------------------------------------------------------------------------------
# strategies

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e30, -1e30, 1e-30, -1e-30, 3.0e38, -3.0e38,
           1e-45, 1.0, -1.0, 65504.0, 1e5]
W_SPECIAL = [0.0, -0.0, -1.0, -0.5, -2.0, 1e-30, -1e-30, 1e30, 1e-7, math.nan, math.inf, 1.0]


def vertex_rows(rng: np.random.Generator, n: int, mode: str) -> np.ndarray:
    """float64 numpy [n, 4] clip-space rows (x, y, z, w). ``mode``: "clean" (ordinary coordinates,
    w > 0), "w" (adversarial w only: 0, negative, tiny, huge, NaN/Inf) or "any" (adversarial values
    anywhere). Drawn from ``rng`` (seeded by hypothesis) so that scenes are dense and varied."""
    w = rng.uniform(0.25, 4.0, n) if rng.random() < 0.3 else rng.uniform(0.8, 1.25, n)
    x = rng.uniform(-1.3, 1.3, n) * w  # NDC x/w mostly inside the view
    y = rng.uniform(-1.3, 1.3, n) * w
    z = rng.uniform(-0.875, 0.875, n) * w
    if mode != "clean":
        sel = rng.random(n) < 0.35
        w[sel] = rng.choice(W_SPECIAL, sel.sum())
    if mode == "any":
        for col in (x, y, z):
            sel = rng.random(n) < 0.25
            col[sel] = rng.choice(SPECIAL, sel.sum())
    return np.stack([x, y, z, w], axis=1).astype(np.float32).astype(np.float64)


def _layout_pos(arr: np.ndarray, dtype: torch.dtype, layout: str) -> torch.Tensor:
    """A tensor equal to ``arr`` ([B, V, 4] float64) in ``dtype``, laid out as ``layout``."""
    base = torch.from_numpy(arr).to(dtype)
    B, V, _ = arr.shape
    if layout == "contiguous":
        return base.contiguous()
    if layout == "strided":  # every other vertex of a twice-as-long buffer
        big = torch.full((B, 2 * V, 4), 7.0, dtype=dtype)
        big[:, ::2] = base
        return big[:, ::2]
    if layout == "strided_last":  # every other component
        big = torch.full((B, V, 8), -3.0, dtype=dtype)
        big[..., ::2] = base
        return big[..., ::2]
    if layout == "transposed":  # [B, 4, V] storage, viewed as [B, V, 4]
        return base.transpose(1, 2).contiguous().transpose(1, 2)
    if layout == "offset":  # non-zero storage offset
        big = torch.zeros((B + 1, V, 4), dtype=dtype)
        big[1:] = base
        return big[1:]
    raise AssertionError(layout)


def _layout_faces(arr: np.ndarray, dtype: torch.dtype, layout: str) -> torch.Tensor:
    base = torch.from_numpy(arr).to(dtype)
    if layout == "contiguous":
        return base.contiguous()
    if layout == "transposed":
        return base.t().contiguous().t()
    if layout == "strided":
        big = torch.full((arr.shape[0], 6), -1, dtype=dtype)
        big[:, ::2] = base
        return big[:, ::2]
    raise AssertionError(layout)


@st.composite
def scenes(draw, max_batch: int = 4, max_vertices: int = 7, max_faces: int = 6):
    """A valid (possibly degenerate, possibly empty) scene and how it is presented."""
    B = draw(st.sampled_from([1, 1, 2, 3] + list(range(max_batch + 1))))
    V = draw(st.sampled_from([3, 4, 5, max_vertices, max_vertices] + ([0, 1, 2] if B else [1, 2])))
    F = draw(st.sampled_from([1, 2, 3, max_faces, max_faces, 0])) if V else 0
    mode = draw(st.sampled_from(["clean", "clean", "w", "any"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shared = draw(st.booleans())  # same vertices in every batch entry (broadcast view) or not
    per_batch = 1 if shared else max(B, 1)
    verts = np.stack([vertex_rows(rng, V, mode) for _ in range(per_batch)])
    faces = rng.integers(0, max(V, 1), (F, 3)).astype(np.int64)
    for f in range(F):  # mostly proper triangles (three distinct vertices)
        if V >= 3 and rng.random() < 0.85:
            faces[f] = rng.permutation(V)[:3]
    if F and draw(st.booleans()):  # indices at both bounds, a degenerate and a duplicate face
        faces[0] = [0, V - 1, V - 1 if V < 3 else 1]
        if F > 1:
            faces[-1] = faces[0]
    H = draw(st.sampled_from([3, 4, 6, 8, 9, 1, 2]))
    W = draw(st.sampled_from([H, H, 1, 2, 5, 11]))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    layout = draw(st.sampled_from(["contiguous", "strided", "strided_last", "transposed", "offset"]))
    pos = _layout_pos(verts, dtype, layout)
    if shared:
        pos = pos.expand(B, V, 4)  # stride 0 along the batch
    elif B == 0:
        pos = pos[:0]
    if B == 1 and draw(st.booleans()):
        pos = pos[0]  # [V, 4] form
    fdtype = draw(st.sampled_from([torch.int32, torch.int64]))
    flayout = draw(st.sampled_from(["contiguous", "transposed", "strided"]))
    tri = _layout_faces(faces, fdtype, flayout)
    viewport = draw(st.sampled_from(_validate.VIEWPORTS))
    cull = draw(st.booleans())
    return dict(resolution=(H, W) if draw(st.booleans()) or H != W else H, faces=tri, pos=pos,
                viewport=viewport, cull=cull, H=H, W=W)


def _check_reference_invariants(rast: torch.Tensor, depth: torch.Tensor, B: int, H: int, W: int, F: int,
                                moderate: bool = True):
    """Output invariants of any correct result. ``moderate``: the input's finite coordinates are
    all below 1e4 in magnitude; only then is depth guaranteed in [-1, 1] (with 1e30-scale inputs
    float32 rounding in the clipper can put a clipped vertex's z/w slightly outside)."""
    assert rast.shape == (B, H, W, 4) and rast.dtype == torch.float32
    assert depth.shape == (B, H, W) and depth.dtype == torch.float32
    assert torch.isfinite(rast).all() and torch.isfinite(depth).all()
    ids = rast[..., 3]
    assert (ids == ids.round()).all() and (ids >= 0).all() and (ids <= F).all()
    hit = ids > 0
    bary = rast[..., :3]
    assert ((bary >= 0) & (bary <= 1)).all()
    if hit.any():
        assert (bary[hit].sum(-1) - 1).abs().max() <= 1e-5
        if moderate:
            assert (depth[hit].abs() <= 1 + 1e-6).all()
    assert (rast[~hit] == 0).all() and (depth[~hit] == 0).all()


def _f32_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# rasterize: valid inputs agree with the reference


@FUZZ
@given(scene=scenes())
def test_rasterize_agrees_with_reference(scene):
    pos, tri = scene["pos"], scene["faces"]
    B = pos.shape[0] if pos.dim() == 3 else 1
    kw = dict(viewport=scene["viewport"], cull_backfaces=scene["cull"])
    note(f"pos {tuple(pos.shape)} {pos.dtype} stride {pos.stride()}, faces {tri.tolist()} {tri.dtype}, "
         f"res {scene['resolution']}, {kw}")
    pos_before, tri_before = pos.clone(), tri.clone()
    with watchdog():
        ref = render_npu.rasterize(scene["resolution"], tri, pos, backend="reference", **kw)
        p32 = pos.to(torch.float32)
        moderate = bool((p32[torch.isfinite(p32)].abs() <= 1e4).all())
        _check_reference_invariants(ref.rast, ref.depth, B, scene["H"], scene["W"], tri.shape[0], moderate)
        event(f"covered pixels: {'some' if bool((ref.rast[..., 3] > 0).any()) else 'none'}")
        for name in BACKENDS:
            out = render_npu.rasterize(scene["resolution"], tri, pos, backend=name, **kw)
            assert out.rast.shape == ref.rast.shape and out.depth.shape == ref.depth.shape, name
            assert out.rast.dtype == torch.float32 and out.depth.dtype == torch.float32, name
            assert out.rast.device == pos.device, name
            if name == "cpu":
                assert torch.equal(out.rast, ref.rast), f"cpu != reference (rast): {name}"
                assert torch.equal(out.depth, ref.depth), f"cpu != reference (depth): {name}"
            elif assert_agree is not None and B > 0:
                assert_agree(ref, out, _f32_numpy(pos), tri.cpu().numpy(), scene["H"], scene["W"],
                             scene["viewport"], tag=f"fuzz-{name}")
    # inputs are never written to
    assert torch.equal(pos, pos_before) or (pos.isnan() == pos_before.isnan()).all()
    assert torch.equal(tri, tri_before)


@pytest.mark.compiled("rasterize")
@FUZZ
@given(scene=scenes(max_batch=2), threads=st.sampled_from([1, 2, 3, 8]))
def test_rasterize_cpu_threads_fuzz(scene, threads):
    """The compiled backend's result does not depend on the thread count, whatever the input."""
    kw = dict(viewport=scene["viewport"], cull_backfaces=scene["cull"], backend="cpu")
    with watchdog():
        a = render_npu.rasterize(scene["resolution"], scene["faces"], scene["pos"], num_threads=1, **kw)
        b = render_npu.rasterize(scene["resolution"], scene["faces"], scene["pos"], num_threads=threads, **kw)
    assert torch.equal(a.rast, b.rast) and torch.equal(a.depth, b.depth)


# ---------------------------------------------------------------------------------------------
# rasterize: invalid inputs raise documented errors naming the argument


def _valid_call():
    pos = torch.tensor([[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    return dict(resolution=4, faces=tri, pos_clip=pos)


BAD_RASTERIZE = {
    # faces
    "faces=-1": ({"faces": torch.tensor([[0, 1, -1]])}, ValueError, "faces"),
    "faces=V": ({"faces": torch.tensor([[0, 1, 3]])}, ValueError, "faces"),
    "faces=int64 max": ({"faces": torch.tensor([[0, 1, 2**62]])}, ValueError, "faces"),
    "faces=int64 min": ({"faces": torch.tensor([[0, 1, -2**63]])}, ValueError, "faces"),
    "faces float": ({"faces": torch.tensor([[0.0, 1.0, 2.0]])}, TypeError, "faces"),
    "faces int16": ({"faces": torch.tensor([[0, 1, 2]], dtype=torch.int16)}, TypeError, "faces"),
    "faces uint8": ({"faces": torch.tensor([[0, 1, 2]], dtype=torch.uint8)}, TypeError, "faces"),
    "faces bool": ({"faces": torch.tensor([[True, False, True]])}, TypeError, "faces"),
    "faces [F,2]": ({"faces": torch.tensor([[0, 1]])}, ValueError, "faces"),
    "faces [3]": ({"faces": torch.tensor([0, 1, 2])}, ValueError, "faces"),
    "faces [F,3,1]": ({"faces": torch.tensor([[[0], [1], [2]]])}, ValueError, "faces"),
    "faces list": ({"faces": [[0, 1, 2]]}, TypeError, "faces"),
    "faces numpy": ({"faces": np.array([[0, 1, 2]], np.int32)}, TypeError, "faces"),
    "faces None": ({"faces": None}, TypeError, "faces"),
    "faces > 2**24": ({"faces": torch.zeros((1, 3), dtype=torch.int32).expand(2**24 + 1, 3)}, ValueError, "faces"),
    "faces meta device": ({"faces": torch.zeros((1, 3), dtype=torch.int32, device="meta")}, ValueError, "device"),
    "faces into V=0": ({"pos_clip": torch.zeros((0, 4))}, ValueError, "faces"),
    # pos_clip
    "pos int": ({"pos_clip": torch.zeros((3, 4), dtype=torch.int32)}, TypeError, "pos_clip"),
    "pos bool": ({"pos_clip": torch.zeros((3, 4), dtype=torch.bool)}, TypeError, "pos_clip"),
    "pos complex": ({"pos_clip": torch.zeros((3, 4), dtype=torch.complex64)}, TypeError, "pos_clip"),
    "pos [V,3]": ({"pos_clip": torch.zeros((3, 3))}, ValueError, "pos_clip"),
    "pos [V]": ({"pos_clip": torch.zeros((4,))}, ValueError, "pos_clip"),
    "pos [1,B,V,4]": ({"pos_clip": torch.zeros((1, 1, 3, 4))}, ValueError, "pos_clip"),
    "pos numpy": ({"pos_clip": np.zeros((3, 4), np.float32)}, TypeError, "pos_clip"),
    "pos list": ({"pos_clip": [[0.0, 0.0, 0.0, 1.0]] * 3}, TypeError, "pos_clip"),
    # resolution
    "res 0": ({"resolution": 0}, ValueError, "resolution"),
    "res -1": ({"resolution": -1}, ValueError, "resolution"),
    "res 16385": ({"resolution": 16385}, ValueError, "resolution"),
    "res (16385,1)": ({"resolution": (1, 16385)}, ValueError, "resolution"),
    "res huge": ({"resolution": 2**63}, ValueError, "resolution"),
    "res float": ({"resolution": 4.0}, TypeError, "resolution"),
    "res (4.5,4)": ({"resolution": (4.5, 4)}, TypeError, "resolution"),
    "res str": ({"resolution": "4"}, TypeError, "resolution"),
    "res None": ({"resolution": None}, TypeError, "resolution"),
    "res bool": ({"resolution": True}, TypeError, "resolution"),
    "res (4,)": ({"resolution": (4,)}, ValueError, "resolution"),
    "res (4,4,4)": ({"resolution": (4, 4, 4)}, ValueError, "resolution"),
    "res tensor 3": ({"resolution": torch.tensor([4, 4, 4])}, ValueError, "resolution"),
    # options
    "viewport": ({"viewport": "gl"}, ValueError, "viewport"),
    "viewport None": ({"viewport": None}, ValueError, "viewport"),
    "cull int": ({"cull_backfaces": 1}, TypeError, "cull_backfaces"),
    "backend": ({"backend": "nvdiffrast"}, ValueError, "backend"),
    "threads 0": ({"num_threads": 0, "backend": "cpu"}, ValueError, "num_threads"),
    "threads -1": ({"num_threads": -1, "backend": "cpu"}, ValueError, "num_threads"),
    "threads float": ({"num_threads": 2.0, "backend": "cpu"}, ValueError, "num_threads"),
    "threads bool": ({"num_threads": True, "backend": "cpu"}, ValueError, "num_threads"),
    "threads 0 reference": ({"num_threads": 0, "backend": "reference"}, ValueError, "num_threads"),
    "threads 0, F=0": ({"num_threads": 0, "faces": torch.zeros((0, 3), dtype=torch.int32)}, ValueError,
                       "num_threads"),
    "memory_budget -1": ({"memory_budget": -1, "backend": "reference"}, ValueError, "memory_budget"),
    "memory_budget str": ({"memory_budget": "1G"}, ValueError, "memory_budget"),
}


@pytest.mark.parametrize("case", sorted(BAD_RASTERIZE))
def test_rasterize_bad_input_is_a_named_error(case):
    change, exc, name = BAD_RASTERIZE[case]
    kw = _valid_call()
    kw.update(change)
    with watchdog(), pytest.raises((ValueError, TypeError)) as info:
        render_npu.rasterize(kw.pop("resolution"), kw.pop("faces"), kw.pop("pos_clip"), **kw)
    assert isinstance(info.value, exc), f"{case}: expected {exc.__name__}, got {info.value!r}"
    assert name in str(info.value), f"{case}: error does not name {name!r}: {info.value}"


@FUZZ
@given(V=st.integers(1, 6), F=st.integers(1, 5), data=st.data())
def test_rasterize_out_of_range_indices_fuzz(V, F, data):
    """Any index outside [0, V) anywhere in faces is a ValueError naming faces, for every backend."""
    faces = np.asarray(data.draw(st.lists(st.lists(st.integers(0, V - 1), min_size=3, max_size=3),
                                          min_size=F, max_size=F)), np.int64)
    r, c = data.draw(st.integers(0, F - 1)), data.draw(st.integers(0, 2))
    faces[r, c] = data.draw(st.one_of(st.integers(-2**31, -1), st.integers(V, 2**31 - 1),
                                      st.sampled_from([-1, V, V + 1, -2**31, 2**31 - 1])))
    dtype = data.draw(st.sampled_from([torch.int32, torch.int64]))
    pos = torch.rand(V, 4) + torch.tensor([0.0, 0.0, 0.0, 1.0])
    for name in ["reference"] + BACKENDS:
        with watchdog(), pytest.raises(ValueError, match="faces"):
            render_npu.rasterize(5, torch.from_numpy(faces).to(dtype), pos, backend=name)


# ---------------------------------------------------------------------------------------------
# interpolate


def _interp_expected(attr: torch.Tensor, rast: torch.Tensor, faces: torch.Tensor) -> np.ndarray:
    """float64 numpy [B, H, W, C] computed independently (barycentrics rounded to attr's dtype first)."""
    a = attr.detach().to(torch.float64).numpy()
    r = rast.detach().to(torch.float32).numpy()
    bary = rast[..., :3].to(attr.dtype).to(torch.float64).numpy()
    tri = faces.to(torch.int64).numpy()
    B, H, W, _ = r.shape
    C = a.shape[-1]
    out = np.zeros((B, H, W, C))
    for b in range(B):
        ab = a if a.ndim == 2 else a[0 if a.shape[0] == 1 else b]
        for y in range(H):
            for x in range(W):
                t = int(r[b, y, x, 3])
                if t > 0:
                    out[b, y, x] = sum(bary[b, y, x, k] * ab[tri[t - 1, k]] for k in range(3))
    return out


ATTR_SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-30, 100.0, -100.0, 1e30]


@FUZZ
@given(scene=scenes(max_batch=3), C=st.integers(0, 4), attr_batched=st.sampled_from([None, 1, "B"]),
       dtype=st.sampled_from(FLOAT_DTYPES), layout=st.sampled_from(["contiguous", "transposed", "strided"]),
       data=st.data())
def test_interpolate_fuzz(scene, C, attr_batched, dtype, layout, data):
    pos, tri = scene["pos"], scene["faces"]
    rast, _ = render_npu.rasterize(scene["resolution"], tri, pos, viewport=scene["viewport"],
                                   cull_backfaces=scene["cull"], backend="reference")
    B = rast.shape[0]
    V = pos.shape[-2]
    lead = () if attr_batched is None else ((1,) if attr_batched == 1 else (B,))
    n = int(np.prod(lead + (V, C)))
    special = dtype in (torch.float32, torch.float64, torch.bfloat16)
    vals = data.draw(st.lists(st.one_of(st.floats(-10, 10, width=32),
                                        st.sampled_from(ATTR_SPECIAL if special else ATTR_SPECIAL[:7])),
                              min_size=n, max_size=n))
    base = torch.tensor(vals, dtype=torch.float64).reshape(lead + (V, C)).to(dtype)
    if layout == "transposed":
        attr = base.transpose(-1, -2).contiguous().transpose(-1, -2)
    elif layout == "strided":
        big = torch.zeros(lead + (V, 2 * C), dtype=dtype)
        big[..., ::2] = base
        attr = big[..., ::2]
    else:
        attr = base
    note(f"attr {tuple(attr.shape)} {attr.dtype} stride {attr.stride()}, rast {tuple(rast.shape)}")
    with watchdog():
        out = render_npu.interpolate(attr, rast, tri)
    assert out.shape == (B, scene["H"], scene["W"], C)
    assert out.dtype == dtype
    expected = _interp_expected(base, rast, tri)
    eps = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 2e-6, torch.float64: 1e-12}[dtype]
    got = out.to(torch.float64).numpy()
    both_nan = np.isnan(got) & np.isnan(expected)
    same_inf = np.isinf(got) & (got == expected)
    with np.errstate(invalid="ignore"):
        close = np.abs(got - expected) <= eps * (np.abs(expected) + 1) * 4
    assert (both_nan | same_inf | close).all(), (got, expected)


def _small_rast():
    pos = torch.tensor([[-0.9, -0.9, 0.0, 1.0], [0.9, -0.9, 0.0, 1.0], [0.0, 0.9, 0.0, 1.0]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = render_npu.rasterize(6, tri, pos, backend="reference")
    return pos, tri, rast


def _bad_interpolate():
    pos, tri, rast = _small_rast()
    attr = torch.rand(3, 2)
    bogus_id = rast.clone()
    bogus_id[0, 3, 3, 3] = 2.0
    return {
        "attr int": ((attr.to(torch.int32), rast, tri), TypeError, "attr"),
        "attr list": ((attr.tolist(), rast, tri), TypeError, "attr"),
        "attr [V]": ((attr[:, 0], rast, tri), ValueError, "attr"),
        "attr [1,1,V,C]": ((attr[None, None], rast, tri), ValueError, "attr"),
        "attr batch 2": ((attr.expand(2, 3, 2), rast, tri), ValueError, "attr"),
        "attr too few vertices": ((attr[:2], rast, tri), ValueError, "faces"),
        "rast [H,W,4]": ((attr, rast[0], tri), ValueError, "rast"),
        "rast [B,H,W,3]": ((attr, rast[..., :3], tri), ValueError, "rast"),
        "rast numpy": ((attr, rast.numpy(), tri), ValueError, "rast"),
        "rast id > F": ((attr, bogus_id, tri), ValueError, "rast"),
        "faces -1": ((attr, rast, torch.tensor([[0, 1, -1]])), ValueError, "faces"),
        "faces float": ((attr, rast, tri.float()), TypeError, "faces"),
        "faces [3]": ((attr, rast, tri[0]), ValueError, "faces"),
    }


@pytest.mark.parametrize("case", sorted(_bad_interpolate()))
def test_interpolate_bad_input_is_a_named_error(case):
    args, exc, name = _bad_interpolate()[case]
    with watchdog(), pytest.raises(exc) as info:
        render_npu.interpolate(*args)
    assert name in str(info.value), f"{case}: error does not name {name!r}: {info.value}"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e30, -1.0, 2.5, 2**24 + 7.0])
def test_interpolate_garbage_ids_in_rast(value):
    """A rast whose id channel is not an integer in [0, F] is an error naming rast, not garbage."""
    _, tri, rast = _small_rast()
    bad = rast.clone()
    bad[0, 0, 0, 3] = value
    with watchdog(), pytest.raises(ValueError, match="rast"):
        render_npu.interpolate(torch.rand(3, 2), bad, tri)


def test_interpolate_empty_faces_and_empty_rast():
    """F = 0 with an all-empty rast, and B = 0: zeros of the right shape, no IndexError."""
    rast = torch.zeros(2, 3, 4, 4)
    out = render_npu.interpolate(torch.rand(5, 3), rast, torch.zeros((0, 3), dtype=torch.int32))
    assert out.shape == (2, 3, 4, 3) and (out == 0).all()
    out = render_npu.interpolate(torch.rand(5, 3), torch.zeros(0, 3, 4, 4), torch.zeros((1, 3), dtype=torch.int64))
    assert out.shape == (0, 3, 4, 3)
    out = render_npu.interpolate(torch.rand(0, 3), torch.zeros(1, 2, 2, 4), torch.zeros((0, 3), dtype=torch.int64))
    assert out.shape == (1, 2, 2, 3) and (out == 0).all()


# ---------------------------------------------------------------------------------------------
# compatibility fronts (present once their modules land)


FRONTS = {"nvdiffrast": dr, "custom_rasterizer": cr, "mesh_processor": mp}


def _front(module):
    return FRONTS[module]


@FUZZ
@given(scene=scenes(max_batch=3))
def test_nvdiffrast_front_fuzz(scene):
    """nvdiffrast.rasterize == the core with viewport="opengl" in nvdiffrast's (u, v, z/w, id+1) layout,
    and nvdiffrast.interpolate == render_npu.interpolate."""
    dr = _front("nvdiffrast")
    pos, tri = scene["pos"], scene["faces"]
    if pos.dim() == 2:
        pos = pos[None]
    res = [scene["H"], scene["W"]]
    with watchdog():
        core, depth = render_npu.rasterize(res, tri, pos, viewport="opengl")
        out = dr.rasterize(None, pos, tri, res)
        rast = out[0] if isinstance(out, (tuple, list)) else out
        assert rast.shape == core.shape and rast.dtype == torch.float32
        assert torch.equal(rast[..., 3], core[..., 3])
        hit = core[..., 3] > 0
        torch.testing.assert_close(rast[..., 0][hit], core[..., 0][hit], atol=1e-6, rtol=0)
        torch.testing.assert_close(rast[..., 1][hit], core[..., 1][hit], atol=1e-6, rtol=0)
        torch.testing.assert_close(rast[..., 2][hit], depth[hit], atol=1e-6, rtol=0)
        assert (rast[~hit] == 0).all()
        attr = torch.randn(pos.shape[-2], 3)
        got = dr.interpolate(attr, rast, tri)
        got = got[0] if isinstance(got, (tuple, list)) else got
        torch.testing.assert_close(got, render_npu.interpolate(attr, core, tri), atol=1e-5, rtol=1e-5)


@FUZZ
@given(scene=scenes(max_batch=1))
def test_custom_rasterizer_front_fuzz(scene):
    """custom_rasterizer.rasterize == the core (align_corners) as (findices [H, W] int32, bary [H, W, 3])."""
    cr = _front("custom_rasterizer")
    pos, tri = scene["pos"], scene["faces"]
    if pos.dim() == 3:
        if pos.shape[0] == 0:
            return
        pos = pos[0]
    res = (scene["H"], scene["W"])
    with watchdog():
        core, _ = render_npu.rasterize(res, tri, pos)
        findices, bary = cr.rasterize(pos[None], tri, res)
        assert findices.shape == res and findices.dtype == torch.int32
        assert bary.shape == res + (3,)
        assert torch.equal(findices, core[0, ..., 3].to(torch.int32))
        hit = findices > 0
        torch.testing.assert_close(bary[hit], core[0, ..., :3][hit], atol=1e-6, rtol=0)
        col = torch.randn(1, pos.shape[0], 3)
        got = cr.interpolate(col, findices, bary, tri)
        want = render_npu.interpolate(col[0], core, tri)
        torch.testing.assert_close(got[hit[None]], want[hit[None]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("front,call", [
    ("nvdiffrast", lambda m, pos, tri: m.rasterize(None, pos, tri, [4, 4])),
    ("custom_rasterizer", lambda m, pos, tri: m.rasterize(pos, tri, (4, 4))),
])
@pytest.mark.parametrize("bad", ["index -1", "index V", "float faces", "int pos"])
def test_fronts_bad_input_is_a_named_error(front, call, bad):
    mod = _front(front)
    pos = torch.tensor([[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    if bad == "index -1":
        tri, exc = torch.tensor([[0, 1, -1]], dtype=torch.int32), ValueError
    elif bad == "index V":
        tri, exc = torch.tensor([[0, 1, 3]], dtype=torch.int32), ValueError
    elif bad == "float faces":
        tri, exc = tri.float(), TypeError
    else:
        pos, exc = pos.to(torch.int32), TypeError
    with watchdog(), pytest.raises(exc):
        call(mod, pos, tri)


# ---------------------------------------------------------------------------------------------
# mesh_processor.meshVerticeInpaint (present once the inpaint change lands)


@st.composite
def inpaint_inputs(draw):
    Ht, Wt = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    C = draw(st.sampled_from([1, 3, 4]))
    V = draw(st.integers(1, 8))
    F = draw(st.integers(0, 6))
    texture = np.asarray(draw(st.lists(st.floats(0, 1, width=32), min_size=Ht * Wt * C, max_size=Ht * Wt * C)),
                         np.float32).reshape(Ht, Wt, C)
    mask = (np.asarray(draw(st.lists(st.booleans(), min_size=Ht * Wt, max_size=Ht * Wt))).reshape(Ht, Wt)
            * 255).astype(np.uint8)
    uv_special = [0.0, 1.0, -0.0, 1e-30, 0.999999, 1.0000001, -1e-7, 2.0, -1.0, math.nan, math.inf, 1e30]
    vtx_uv = np.asarray(draw(st.lists(st.one_of(st.floats(0, 1, width=32), st.sampled_from(uv_special)),
                                      min_size=V * 2, max_size=V * 2)), np.float32).reshape(V, 2)
    vtx_pos = np.asarray(draw(st.lists(st.one_of(st.floats(-2.0, 2.0, width=32), st.sampled_from(SPECIAL)),
                                       min_size=V * 3, max_size=V * 3)), np.float32).reshape(V, 3)
    idx = np.asarray(draw(st.lists(st.integers(0, V - 1), min_size=F * 3, max_size=F * 3)), np.int64).reshape(F, 3)
    if F and draw(st.booleans()):
        idx[0] = [0, V - 1, V - 1]
    args = [texture, mask, vtx_pos, vtx_uv, idx.astype(np.int32), idx.astype(np.int32)]
    kind = draw(st.sampled_from(["plain", "plain", "float64+int64", "fortran", "strided", "torch", "bool mask"]))
    if kind == "float64+int64":
        args = [a.astype(np.float64) if a.dtype == np.float32 else a.astype(np.int64) if a.dtype == np.int32 else a
                for a in args]
    elif kind == "fortran":
        args = [np.asfortranarray(a) for a in args]
    elif kind == "strided":
        args = [np.repeat(a, 2, axis=0)[::2] for a in args]
    elif kind == "torch":
        args = [torch.from_numpy(np.ascontiguousarray(a)) for a in args]
    elif kind == "bool mask":
        args[1] = args[1] > 0
    return tuple(args)


def _inpaint_impls(mp):
    """(name, fn) pairs that must give the same bits: compiled and Python fallback, per method."""
    import functools

    return [[(f"{m}/{b}", functools.partial(mp.meshVerticeInpaint, method=m, backend=b)) for b in ("cpp", "python")]
            for m in ("smooth", "forward")]


@pytest.mark.compiled("mesh_vertex_inpaint")
@FUZZ
@given(args=inpaint_inputs())
def test_mesh_vertice_inpaint_fuzz(args):
    """Every method: the compiled kernel and the Python fallback raise the same named error or
    return the same bits; the mesh inputs are never written to."""
    mp = _front("mesh_processor")
    for group in _inpaint_impls(mp):
        results = []
        for name, fn in group:
            copies = [a.clone() if isinstance(a, torch.Tensor) else a.copy(order="K") for a in args]
            with watchdog():
                try:
                    out = fn(*copies)
                except (ValueError, TypeError) as exc:
                    results.append((name, "error", str(exc)))
                    continue
            for orig, after in zip(args, copies):  # inputs are not written to
                np.testing.assert_array_equal(np.asarray(orig), np.asarray(after))
            tex, mask = (np.asarray(o) for o in out)
            assert tex.shape == tuple(args[0].shape) and tex.dtype == np.float32
            assert mask.shape == tuple(args[1].shape) and mask.dtype == np.uint8
            results.append((name, tex, mask))
        first = results[0]
        for other in results[1:]:
            assert isinstance(first[1], str) == isinstance(other[1], str), (first, other)
            if isinstance(first[1], str):
                assert first[2] == other[2]
            else:
                np.testing.assert_array_equal(other[1], first[1], err_msg=other[0])
                np.testing.assert_array_equal(other[2], first[2], err_msg=other[0])


def _tiny_inpaint_inputs():
    """A valid one-triangle meshVerticeInpaint input on an 8x8 RGB texture, for the bad-input tests to spoil."""
    texture = np.random.rand(8, 8, 3).astype(np.float32)
    mask = np.zeros((8, 8), np.uint8)
    vtx_pos = np.random.rand(3, 3).astype(np.float32)
    vtx_uv = np.random.rand(3, 2).astype(np.float32)
    pos_idx = np.array([[0, 1, 2]], np.int32)
    return texture, mask, vtx_pos, vtx_uv, pos_idx, pos_idx.copy()


@pytest.mark.parametrize("bad", ["index -1", "index V", "uv_idx V", "mask shape", "texture 2d"])
def test_mesh_vertice_inpaint_bad_input(bad):
    mp = _front("mesh_processor")
    texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx = _tiny_inpaint_inputs()
    if bad == "index -1":
        pos_idx = np.array([[0, 1, -1]], np.int32)
    elif bad == "index V":
        pos_idx = np.array([[0, 1, 3]], np.int32)
    elif bad == "uv_idx V":
        uv_idx = np.array([[0, 1, 3]], np.int32)
    elif bad == "mask shape":
        mask = np.zeros((7, 8), np.uint8)
    else:
        texture = texture[..., 0]
    with watchdog(), pytest.raises((ValueError, TypeError)):
        mp.meshVerticeInpaint(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx)


# ---------------------------------------------------------------------------------------------
# The compiled module called directly (bypassing render_npu._validate): its own checks are the
# last line of defence; bad indices or shapes must raise, never read or write out of bounds.


def _compiled(name: str):
    return getattr(_ext.get(), name)  # the calling test is marked @pytest.mark.compiled(name)


def _direct_rasterize_args(**change):
    args = dict(pos=np.array([[[-1, -1, 0, 1], [1, -1, 0, 1], [0, 1, 0, 1]]], np.float32),
                faces=np.array([[0, 1, 2]], np.int32), height=4, width=4, opengl=False, cull_backfaces=False,
                num_threads=2, rast=np.zeros((1, 4, 4, 4), np.float32), depth=np.zeros((1, 4, 4), np.float32))
    args.update(change)
    return args


@pytest.mark.compiled("rasterize")
@pytest.mark.parametrize("change", [
    {"faces": np.array([[0, 1, 3]], np.int32)},
    {"faces": np.array([[0, 1, -1]], np.int32)},
    {"faces": np.array([[0, 1, -2**31]], np.int32)},
    {"faces": np.array([[2**31 - 1, 1, 0]], np.int32)},
    {"faces": np.zeros((1, 2), np.int32)},
    {"pos": np.zeros((1, 3, 3), np.float32)},
    {"pos": np.zeros((2, 3, 4), np.float32)},  # batch does not match the outputs
    {"rast": np.zeros((1, 4, 5, 4), np.float32)},
    {"depth": np.zeros((1, 5, 4), np.float32)},
    {"height": 0}, {"width": 16385}, {"height": -7},
    {"faces": np.array([[0, 1, 2]], np.int64)},  # wrong dtypes are refused, not reinterpreted
    {"pos": np.zeros((1, 3, 4), np.float64)},
    {"rast": np.zeros((1, 4, 4, 4), np.float64)},
], ids=lambda c: ",".join(f"{k}={getattr(v, 'shape', v)}{getattr(v, 'dtype', '')}" for k, v in c.items()))
def test_compiled_rasterize_rejects_bad_arguments(change):
    fn = _compiled("rasterize")
    with watchdog(), pytest.raises((ValueError, TypeError, IndexError)):
        fn(**_direct_rasterize_args(**change))


@pytest.mark.compiled("rasterize")
@pytest.mark.parametrize("threads", [-5, 0, 1, 3, 257, 10**6])
def test_compiled_rasterize_any_thread_count(threads):
    """Out-of-range thread counts are clamped (1..256), never a crash or a hang."""
    fn = _compiled("rasterize")
    args = _direct_rasterize_args(num_threads=threads)
    with watchdog(60):
        fn(**args)
    assert args["rast"][..., 3].sum() > 0


@pytest.mark.compiled("mesh_vertex_inpaint")
@pytest.mark.parametrize("bad", ["pos_idx V", "pos_idx -1", "uv_idx T", "uv outside", "uv nan"])
def test_compiled_inpaint_rejects_bad_indices(bad):
    fn = _compiled("mesh_vertex_inpaint")
    texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx = _tiny_inpaint_inputs()
    if bad == "pos_idx V":
        pos_idx[0, 2] = 3
    elif bad == "pos_idx -1":
        pos_idx[0, 0] = -1
    elif bad == "uv_idx T":
        uv_idx[0, 1] = 3
    elif bad == "uv outside":
        vtx_uv[1] = (1.5, -0.5)
    else:
        vtx_uv[2, 0] = np.nan
    with watchdog(), pytest.raises((ValueError, IndexError, TypeError)):
        fn(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx, 0, np.empty_like(texture), np.empty_like(mask))


# ---------------------------------------------------------------------------------------------
# Regressions found by the fuzzer (docs/robustness.md, "Findings")


def test_reference_drops_numerically_broken_clip_output():
    """w = 1e30 next to w = -1: float32 clipping leaves a polygon vertex with w ~ 1e-30 far outside the
    guard band, snapped x ~ 6e32. The compiled backend drops such a piece (|fixed| > 2**29, setup.h
    kMaxFixed); the reference must do the same instead of raising OverflowError in its int64 edge setup."""
    v = torch.tensor([[3.25, -0.90234375, 2.046875, -1.0], [-2.125, 1.0003e30, 0.640625, 1.9296875],
                      [0.97265625, 0.58203125, 0.33398438, 1.0003e30]])
    faces = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    with watchdog():
        ref = render_npu.rasterize(3, faces, v, backend="reference")
        for name in BACKENDS:
            out = render_npu.rasterize(3, faces, v, backend=name)
            assert torch.equal(out.rast, ref.rast) and torch.equal(out.depth, ref.depth), name


def test_agreement_excuses_coincident_triangles_crossing_the_near_plane():
    """Faces [1, 4, 2] and [4, 2, 1] are the same triangle (two vertices with w = -1): every pixel is a
    depth tie, which the agreement rule excuses. The reference keeps the lower id; a float32 backend
    may pick either. tests/agreement.py must recognise the tie (its candidate depth for clipped
    triangles was off by ~3e-5 > DEPTH_TIE)."""
    pos = torch.tensor([[1.3633, -0.8599, 0.5698, -1.0], [1.0742, 0.5552, -0.8374, 0.9692],
                        [0.2610, -0.3215, 0.5908, 0.8403], [-0.3088, -0.1270, 0.7300, 1.0293],
                        [0.7827, -0.7695, -0.3806, -1.0]], dtype=torch.float16)
    faces = torch.tensor([[1, 4, 2], [4, 2, 1]], dtype=torch.int32)
    ref = render_npu.rasterize(3, faces, pos, backend="reference", viewport="opengl")
    flipped = ref.rast.clone()  # the other legal answer: the tie resolved to the higher id
    flipped[..., 3][ref.rast[..., 3] == 1] = 2
    assert_agree(ref, (flipped, ref.depth), pos.float().numpy(), faces.numpy(), 3, 3, "opengl",
                 tag="near-plane-tie")
