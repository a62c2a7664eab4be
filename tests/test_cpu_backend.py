"""The compiled CPU backend (csrc/rasterize) equals the numpy reference bit for bit.

Property tests over random triangle soups (w <= 0, near-plane crossings, coordinates far beyond the
guard band, degenerate and duplicate faces, vertices on the 1/256 grid so that pixel centres fall
exactly on edges and vertices, both viewports, culling on and off, batches, odd resolutions), both
inner-loop kernels, thread-count invariance, concurrent calls, and bin stress: thousands of faces
in one tile and screen-sized faces in the coarse bins.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import render_npu
from render_npu import _ext

pytestmark = pytest.mark.compiled("rasterize")

EXAMPLES = int(os.environ.get("RENDER_NPU_CPU_EXAMPLES", "60"))
PROPS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
RESOLUTIONS = [(1, 1), (2, 3), (3, 2), (5, 7), (37, 100), (100, 37), (17, 130), (64, 64), (65, 1)]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)  # bitwise: also tells -0.0 from +0.0


def assert_identical(ref, out, what=""):
    for name, a, b in (("rast", ref[0], out[0]), ("depth", ref[1], out[1])):
        if not torch.equal(_bits(a), _bits(b)):
            diff = (_bits(a) != _bits(b))
            if diff.dim() == 4:
                diff = diff.any(-1)
            idx = diff.nonzero()[:5].tolist()
            detail = [(i, a[tuple(i)].tolist(), b[tuple(i)].tolist()) for i in idx]
            raise AssertionError(f"{what}: {name} differs at {int(diff.sum())} pixels, e.g. {detail}")


def rasterize(backend, res, faces, pos, viewport, cull, **kw):
    return render_npu.rasterize(res, faces, pos, viewport=viewport, cull_backfaces=cull, backend=backend, **kw)


def check(pos, faces, res, viewport, cull, num_threads=2):
    pos_t, faces_t = torch.as_tensor(pos), torch.as_tensor(faces)
    ref = rasterize("reference", res, faces_t, pos_t, viewport, cull)
    out = rasterize("cpu", res, faces_t, pos_t, viewport, cull, num_threads=num_threads)
    assert_identical(ref, out, f"res={res} viewport={viewport} cull={cull} threads={num_threads}")
    return ref


# ---------------------------------------------------------------------------------------------
# Strategies


# Resolutions where NDC -> pixel mapping is exact for dyadic coordinates: opengl needs powers of
# two (scale W / 2), align_corners needs W - 1 a power of two (scale (W - 1) / 2).
EXACT = {"opengl": [(16, 16), (8, 32), (64, 64), (2, 4)], "align_corners": [(17, 17), (9, 33), (65, 65), (3, 5)]}


def _coords(seed, shape, kind):
    """float32 clip-space coordinates of one flavour."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=shape)
    if kind == "near":  # crossing the near/far planes, w <= 0 among them
        v[..., 2] *= 2.0
        v[..., 3] = rng.uniform(-1.0, 2.0, size=shape[:-1])
        v[..., 3][rng.random(shape[:-1]) < 0.15] = 0.0
    elif kind == "planes":  # vertices exactly on clip planes (distance 0: "inside")
        v[..., 3] = rng.choice([1.0, 0.5, 2.0, -1.0, 0.0], size=shape[:-1])
        w = v[..., 3]
        pick = rng.integers(0, 6, size=shape[:-1])
        v[..., 2] = np.where(pick == 0, -w, np.where(pick == 1, w, v[..., 2]))
        v[..., 0] = np.where(pick == 2, 128 * w, np.where(pick == 3, -128 * w, v[..., 0] * 50))
        v[..., 1] = np.where(pick == 4, 128 * w, np.where(pick == 5, -128 * w, v[..., 1] * 50))
    elif kind == "guard":  # far beyond the guard band (|x| > 128 w)
        v[..., :2] *= 10.0 ** rng.uniform(0, 5, size=shape[:-1] + (2,))
        v[..., 3] = rng.uniform(-0.2, 1.5, size=shape[:-1])
    elif kind == "tiny":  # sub-pixel triangles and slivers
        v[..., :2] = rng.uniform(-1, 1, size=shape[:-1] + (1,)) + 0.01 * v[..., :2]
        v[..., 3] = 1.0
    else:  # "plain"
        v[..., 3] = rng.uniform(0.3, 2.0, size=shape[:-1])
    return v.astype(np.float32)


def _lattice(seed, shape, res, viewport):
    """Vertices on the half-pixel lattice (pixel centres and the corners between them), exactly
    representable, so that edges run through pixel centres and vertices sit on them: the top-left
    rule and exact coverage decide. w is a power of two (x / w stays exact)."""
    rng = np.random.default_rng(seed)
    H, W = res
    out = np.empty(shape, np.float64)
    for axis, size in ((0, W), (1, H)):
        a, b = (size / 2, size / 2) if viewport == "opengl" else ((size - 1) / 2, (size - 1) / 2 + 0.5)
        s = rng.integers(-2, 2 * size + 3, size=shape[:-1]) / 2.0  # pixel units, multiples of 1/2
        out[..., axis] = (s - b) / a
    out[..., 2] = rng.integers(-4, 5, size=shape[:-1]) / 8.0
    w = rng.choice([1.0, 1.0, 2.0, 0.5], size=shape[:-1])
    out[..., :3] *= w[..., None]
    out[..., 3] = w
    return out.astype(np.float32)


@st.composite
def soups(draw, kinds=("near", "planes", "guard", "tiny", "plain", "lattice", "lattice")):
    B = draw(st.integers(1, 3))
    V = draw(st.integers(3, 12))
    kind = draw(st.sampled_from(kinds))
    viewport = draw(st.sampled_from(["align_corners", "opengl"]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    if kind == "lattice":
        res = draw(st.sampled_from(EXACT[viewport]))
        pos = _lattice(seed, (B, V, 4), res, viewport)
    else:
        res = draw(st.sampled_from(RESOLUTIONS))
        pos = _coords(seed, (B, V, 4), kind)
    F = draw(st.integers(1, 16))
    faces = np.asarray(draw(st.lists(st.tuples(*[st.integers(0, V - 1)] * 3), min_size=F, max_size=F)), np.int32)
    if draw(st.booleans()):  # duplicates (exact depth ties: the lowest id must win)
        faces = np.concatenate([faces, faces[: max(1, F // 2)]])
    cull = draw(st.booleans())
    threads = draw(st.sampled_from([1, 2, 3]))
    note(f"kind={kind} B={B} V={V} F={len(faces)} res={res} viewport={viewport} cull={cull}")
    return pos, faces, res, viewport, cull, threads


# ---------------------------------------------------------------------------------------------
# Equality with the reference


@PROPS
@given(soups())
def test_matches_reference_on_random_soups(case):
    pos, faces, res, viewport, cull, threads = case
    check(pos, faces, res, viewport, cull, threads)


@PROPS
@given(soups(kinds=("lattice",)))
def test_matches_reference_on_lattice_vertices(case):
    pos, faces, res, viewport, cull, threads = case
    check(pos, faces, res, viewport, cull, threads)


@settings(max_examples=max(10, EXAMPLES // 2), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2 ** 32 - 1), st.sampled_from(RESOLUTIONS), st.booleans())
def test_matches_reference_on_extreme_values(seed, res, opengl):
    """NaN, Inf, 1e30, 1e-30, w = 0: such faces cover nothing (or something exactly defined)."""
    rng = np.random.default_rng(seed)
    specials = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-30, 0.0, -0.0, 3e38, 1.0, -1.0, 0.5],
                        np.float32)
    pos = rng.normal(size=(2, 10, 4)).astype(np.float32)
    pos[..., 3] = np.abs(pos[..., 3]) + 0.2
    mask = rng.random(pos.shape) < 0.2
    pos[mask] = rng.choice(specials, size=int(mask.sum()))
    faces = rng.integers(0, 10, size=(12, 3)).astype(np.int32)
    with np.errstate(all="ignore"):
        check(pos, faces, res, "opengl" if opengl else "align_corners", False)


def test_kernels_agree():
    """The portable scalar kernel and the SIMD one (whichever this CPU runs) give the same bits."""
    ext = _ext.get()
    rng = np.random.default_rng(7)
    pos = _coords(11, (2, 60, 4), "near")
    faces = rng.integers(0, 60, size=(200, 3)).astype(np.int32)
    H, W = 70, 150
    outs = []
    for kernel in ("scalar", "auto"):
        rast = np.full((2, H, W, 4), np.nan, np.float32)  # every output element must be written
        depth = np.full((2, H, W), np.nan, np.float32)
        ext.rasterize(pos, faces, H, W, False, False, 3, rast, depth, kernel)
        outs.append((torch.from_numpy(rast), torch.from_numpy(depth)))
    ref = render_npu.rasterize((H, W), torch.from_numpy(faces), torch.from_numpy(pos), backend="reference")
    assert (ref.rast[..., 3] > 0).any()
    assert_identical(ref, outs[0], "scalar kernel")
    assert_identical(ref, outs[1], f"{ext.rasterize_auto_kernel()} kernel")


def test_unknown_kernel_and_bad_indices_raise():
    ext = _ext.get()
    pos = np.zeros((1, 3, 4), np.float32)
    rast, depth = np.zeros((1, 4, 4, 4), np.float32), np.zeros((1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="kernel"):
        ext.rasterize(pos, np.zeros((1, 3), np.int32), 4, 4, False, False, 1, rast, depth, "sse9")
    with pytest.raises(ValueError, match="faces"):  # the C++ side's own check (validation bypassed)
        ext.rasterize(pos, np.array([[0, 1, 3]], np.int32), 4, 4, False, False, 2, rast, depth)


def test_no_faces_writes_zeros():
    ext = _ext.get()
    rast = np.full((2, 9, 70, 4), np.nan, np.float32)
    depth = np.full((2, 9, 70), np.nan, np.float32)
    ext.rasterize(np.zeros((2, 0, 4), np.float32), np.zeros((0, 3), np.int32), 9, 70, True, False, 2, rast, depth)
    assert not rast.any() and not depth.any()


def test_zero_filled_outputs_write_only_covered_pixels():
    """``rasterize(out=..., out_zeroed=True)``: into zeroed buffers, the same bits as the default
    (threads, batch, no faces, culling); the C++ side writes only covered pixels (a sentinel in
    the buffers stays where nothing is covered, and is overwritten where something is)."""
    pos, faces = _perspective_scene(n_faces=2000, batch=2, seed=3)
    res = (150, 211)
    for cull in (False, True):
        base = render_npu.rasterize(res, faces, pos, backend="cpu", cull_backfaces=cull)
        for n in (1, 3):
            out = (torch.zeros(2, *res, 4), torch.zeros(2, *res))
            got = render_npu.rasterize(res, faces, pos, backend="cpu", num_threads=n, cull_backfaces=cull, out=out,
                                       out_zeroed=True)
            assert got.rast is out[0]
            assert_identical(base, got, f"threads={n} cull={cull}")
    out = (torch.zeros(2, *res, 4), torch.zeros(2, *res))
    render_npu.rasterize(res, faces[:0], pos, backend="cpu", out=out, out_zeroed=True)
    assert not out[0].any() and not out[1].any()
    rast, depth = np.full((2, *res, 4), 7.0, np.float32), np.full((2, *res), 7.0, np.float32)
    _ext.get().rasterize(pos.numpy(), faces.numpy(), *res, False, True, 2, rast, depth, zero_filled=True)
    hit = base.rast[..., 3].numpy() > 0  # (base: the culled run)
    assert 0.3 < hit.mean() < 0.95
    np.testing.assert_array_equal(rast[hit], base.rast.numpy()[hit])
    assert (rast[~hit] == 7).all() and (depth[~hit] == 7).all()
    with pytest.raises(ValueError, match="out_zeroed"):
        render_npu.rasterize(res, faces, pos, backend="cpu", out_zeroed=True)
    with pytest.raises(TypeError, match="out_zeroed"):
        render_npu.rasterize(res, faces, pos, backend="cpu", out=out, out_zeroed=1)


# ---------------------------------------------------------------------------------------------
# Threads


def _perspective_scene(n_faces=3000, batch=2, seed=0):
    from render_npu.meshes import look_at, perspective, sphere_with_faces, to_clip

    rng = np.random.default_rng(seed)
    verts, faces = sphere_with_faces(n_faces)
    poses = []
    for _ in range(batch):
        eye = rng.normal(size=3)
        eye = eye / np.linalg.norm(eye) * rng.uniform(1.02, 1.6)  # close: faces cross the near plane
        poses.append(to_clip(verts, perspective(70.0, 0.2, 10.0) @ look_at(eye)))
    return torch.from_numpy(np.stack(poses).astype(np.float32)), torch.from_numpy(faces.astype(np.int32))


def test_thread_count_invariance():
    pos, faces = _perspective_scene()
    res = (150, 211)
    base = render_npu.rasterize(res, faces, pos, backend="cpu", num_threads=1)
    assert (base.rast[..., 3] > 0).float().mean() > 0.3
    for n in (2, 3, 8):
        assert_identical(base, render_npu.rasterize(res, faces, pos, backend="cpu", num_threads=n), f"threads={n}")
    ref = render_npu.rasterize(res, faces, pos[:1], backend="reference")
    assert_identical(ref, (base.rast[:1], base.depth[:1]), "reference")


def test_concurrent_python_threads():
    pos, faces = _perspective_scene(n_faces=2000, batch=1, seed=1)
    jobs = [((96, 128), 1), ((96, 128), 2), ((61, 67), 3), ((200, 150), 2)]
    expected = [render_npu.rasterize(r, faces, pos, backend="cpu", num_threads=t) for r, t in jobs]
    order = list(range(len(jobs))) * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(
            lambda j: render_npu.rasterize(jobs[j][0], faces, pos, backend="cpu", num_threads=jobs[j][1]), order))
    for j, out in zip(order, results):
        assert_identical(expected[j], out, f"job {j}")


# ---------------------------------------------------------------------------------------------
# Bin stress


def test_thousands_of_faces_in_one_tile():
    """5000 small faces inside one tile, many of them exact duplicates (depth ties): nothing is
    dropped, the lowest id wins every tie."""
    rng = np.random.default_rng(3)
    n = 5000
    centre = rng.uniform(-0.3, 0.3, size=(n, 1, 2))
    xy = centre + rng.normal(scale=0.15, size=(n, 3, 2))
    z = rng.uniform(-0.5, 0.5, size=(n, 1, 1)) + rng.normal(scale=0.05, size=(n, 3, 1))
    pos = np.concatenate([xy, z, np.ones((n, 3, 1))], -1).reshape(-1, 4).astype(np.float32)
    faces = np.arange(3 * n, dtype=np.int32).reshape(n, 3)
    faces = np.concatenate([faces, faces[::7], faces[::-13]])  # duplicates after their originals
    ref = check(pos, faces, (48, 40), "align_corners", False, num_threads=3)
    ids = ref.rast[..., 3]
    assert (ids > 0).float().mean() > 0.2
    assert ids.max() <= n  # a duplicate (id > n) never beats its original


def test_large_faces_in_coarse_bins_interleave_with_small_ones():
    """Faces spanning many tiles go to the coarse bins; their order relative to small faces in the
    fine bins must still be the face order (ties at equal depth are resolved by id)."""
    rng = np.random.default_rng(5)
    big = np.array([[-1.2, -1.2, 0.0, 1.0], [1.3, -1.1, 0.0, 1.0], [0.1, 1.4, 0.0, 1.0],
                    [1.2, 1.2, 0.2, 1.0], [-1.3, 1.1, -0.2, 1.0], [-0.1, -1.4, 0.2, 1.0]], np.float32)
    small = []
    for _ in range(300):
        c = rng.uniform(-0.9, 0.9, size=2)
        tri = c + rng.normal(scale=0.02, size=(3, 2))
        z = rng.choice([0.0, 0.0, -0.1, 0.3])  # z = 0: exact depth tie with the first big face
        small.append(np.concatenate([tri, np.full((3, 1), z), np.ones((3, 1))], 1))
    pos = np.concatenate([big, np.concatenate(small)]).astype(np.float32)
    tiny = 6 + np.arange(900, dtype=np.int32).reshape(300, 3)
    faces = np.concatenate([tiny[:150], [[0, 1, 2]], tiny[150:], [[3, 4, 5]], [[0, 1, 2]]]).astype(np.int32)
    for res in ((300, 700), (700, 300)):
        for viewport in ("align_corners", "opengl"):
            check(pos, faces, res, viewport, False, num_threads=2)
