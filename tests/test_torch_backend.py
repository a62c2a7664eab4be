"""The portable torch backend (render_npu/backends/torch/, ``backend="torch"``).

* agreement with the reference: hypothesis soups (w <= 0 vertices, near-plane crossings,
  guard-band clipping, wildly scaled vertices, degenerate and duplicate triangles, non-finite
  vertices, both viewports, culling, batch 1..3, odd resolutions) under the contract's rule (tests/agreement.py), and bit-exact ids on fixed
  seeds (the CPU path aims at the reference's ids exactly);
* the two edge arithmetics (int64, exact-split float32), the static-shape mode and small memory
  budgets give identical results; the static mode under ``torch.compile(fullgraph=True)``;
* crack-freedom on finely tessellated planes filling the view (per-pixel coverage counts == 1),
  including vertices and edges exactly on pixel centres;
* structure: the number of dispatched ops does not depend on the number of faces or the
  resolution (same chunk counts), host syncs are a constant, no float64, every tensor created
  on the input's device, peak tensor memory bounded by memory_budget plus the per-face and
  per-pixel tables;
* option errors; ``torch_npu`` never imported.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

import render_npu
from agreement import assert_agree
from render_npu import _validate, testing
from render_npu.backends import reference
from render_npu.backends import torch as tb
from render_npu.backends.torch import static
from render_npu.meshes import look_at, orthographic, perspective, sphere_with_faces, to_clip


# ----------------------------------------------------------------------------- scenes

def soup(rng: np.random.Generator, B: int, n_faces: int, kind: str) -> tuple:
    """Random triangle soup in clip space: float32 [B, V, 4], int32 [F, 3].

    kinds: "front" (w > 0, mostly inside), "near" (w around 0: near-plane crossings, w <= 0),
    "wild" (huge coordinates: guard-band clipping), "scaled" (vertices scaled by 1e-20 .. 1e30:
    float32 clipping breaks down, the reference drops such pieces), "degenerate" (repeated
    vertices, collinear and duplicated faces, a non-finite vertex)."""
    V = max(3, n_faces)
    pos = rng.normal(size=(B, V, 4)).astype(np.float32)
    if kind == "front":
        pos[..., 3] = rng.uniform(0.3, 2.0, size=(B, V))
        pos[..., 2] *= 0.5
    elif kind == "near":
        pos[..., 3] = rng.normal(0.3, 1.0, size=(B, V))
        pos[..., 2] = rng.normal(0.0, 1.5, size=(B, V))
    elif kind == "wild":
        pos[..., :2] *= rng.choice([1.0, 50.0, 400.0], size=(B, V, 1)).astype(np.float32)
        pos[..., 3] = rng.uniform(0.02, 1.5, size=(B, V))
        pos[..., 2] *= 0.3
    elif kind == "scaled":
        pos *= rng.choice([1.0, 1e10, 1e30, 1e-20], size=(B, V, 1)).astype(np.float32)
    pos = pos.astype(np.float32)
    faces = rng.integers(0, V, size=(n_faces, 3)).astype(np.int32)
    if kind == "degenerate" and n_faces >= 4:
        faces[0] = [faces[0, 0], faces[0, 0], faces[0, 1]]  # repeated vertex: zero area
        faces[1] = faces[2]  # coincident duplicate: the lower id must win
        faces[3] = faces[2][[1, 2, 0]]  # same triangle, rotated vertex order
        pos[:, faces[0, 1], 3] = np.abs(pos[:, faces[0, 1], 3]) + 0.5
        mid = (pos[:, faces[2, 0]] + pos[:, faces[2, 1]]) * np.float32(0.5)
        pos[:, -1] = mid  # collinear with an edge of face 2
        if V > 4 and rng.random() < 0.5:
            pos[0, V - 2, 0] = np.inf  # faces using it cover nothing
    return pos, faces


def tessellated_plane(n: int, H: int, W: int, seed: int, jitter: float = 0.35, margin: float = 1.3,
                      w_range=(1.0, 1.0)) -> tuple:
    """An n x n grid of quads (two triangles each, random diagonals) spanning NDC +-margin, with
    jittered interior vertices and a varying depth: a surface that fills the view."""
    rng = np.random.default_rng(seed)
    t = np.linspace(-margin, margin, n + 1)
    X, Y = np.meshgrid(t, t, indexing="xy")
    step = 2 * margin / n
    inner = np.zeros_like(X, bool)
    inner[1:-1, 1:-1] = True
    X = X + inner * rng.uniform(-jitter, jitter, X.shape) * step
    Y = Y + inner * rng.uniform(-jitter, jitter, Y.shape) * step
    Z = 0.3 * np.sin(3 * X) * np.cos(2 * Y)
    w = rng.uniform(*w_range, X.shape)
    pos = np.stack([X * w, Y * w, Z * w, w], -1).reshape(-1, 4).astype(np.float32)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    flip = rng.random(a.shape) < 0.5
    t1 = np.where(flip[..., None], np.stack([a, b, d], -1), np.stack([a, b, c], -1))
    t2 = np.where(flip[..., None], np.stack([a, d, c], -1), np.stack([b, d, c], -1))
    faces = np.concatenate([t1.reshape(-1, 3), t2.reshape(-1, 3)]).astype(np.int32)
    faces = faces[rng.permutation(len(faces))]
    return pos, faces


def pixel_centre_grid(H: int, W: int, step: int) -> tuple:
    """A grid mesh whose vertices sit exactly on pixel centres (align_corners), reaching one step
    beyond the image on every side so that it covers all of it: many edges and vertices pass
    through pixel centres, where the top-left rule decides."""
    xs = np.arange(-step, W + step, step)
    ys = np.arange(-step, H + step, step)
    X, Y = np.meshgrid(-1 + 2 * xs / (W - 1), -1 + 2 * ys / (H - 1), indexing="xy")
    pos = np.stack([X, Y, 0.1 * X, np.ones_like(X)], -1).reshape(-1, 4).astype(np.float32)
    idx = np.arange(X.size).reshape(X.shape)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    return pos, faces.astype(np.int32)


def sphere(n_faces: int, ortho: bool = True) -> tuple:
    v, f = sphere_with_faces(n_faces)
    proj = orthographic(1.2, 0.1, 10.0) if ortho else perspective(50.0, 0.1, 10.0)
    return to_clip(v, proj @ look_at((0.3, 0.4, 3.0))), f


def inputs(pos, faces, H, W, viewport="align_corners", cull=False):
    return _validate.rasterize_inputs((H, W), torch.as_tensor(faces), torch.as_tensor(pos), viewport, cull)


def ref_of(inp):
    return reference.rasterize(inp)


def assert_same(a, b, what=""):
    """Bitwise-equal (rast, depth) pairs."""
    for x, y, name in zip(a, b, ("rast", "depth")):
        assert x.shape == y.shape and x.dtype == y.dtype, f"{what} {name}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}"
        diff = (x != y) & ~(torch.isnan(x) & torch.isnan(y))
        assert not diff.any(), f"{what} {name}: {int(diff.sum())} values differ"


def assert_same_ids(a, b, what="", atol=1e-6):
    """Bitwise-equal ids; barycentrics and depth within ``atol`` (two resolve arithmetics: float64
    beside int64 edges, float32 beside float32 edges, :func:`render_npu.backends.torch.setup.resolve_dtype`)."""
    assert torch.equal(a[0][..., 3], b[0][..., 3]), f"{what}: ids differ"
    torch.testing.assert_close(a[0][..., :3], b[0][..., :3], atol=atol, rtol=0, msg=f"{what}: barycentrics")
    torch.testing.assert_close(a[1], b[1], atol=atol, rtol=0, msg=f"{what}: depth")


# ----------------------------------------------------------------------------- agreement

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), B=st.integers(1, 3), n_faces=st.integers(1, 24),
       H=st.integers(1, 41), W=st.integers(1, 41), viewport=st.sampled_from(["align_corners", "opengl"]),
       cull=st.booleans(), kind=st.sampled_from(["front", "near", "wild", "scaled", "degenerate"]))
def test_agrees_with_reference(seed, B, n_faces, H, W, viewport, cull, kind):
    pos, faces = soup(np.random.default_rng(seed), B, n_faces, kind)
    inp = inputs(pos, faces, H, W, viewport, cull)
    out = tb.rasterize(inp)
    assert_agree(ref_of(inp), out, pos, faces, H, W, viewport, tag=f"torch-soup-{seed}")
    assert out[0].dtype == torch.float32 and out[1].dtype == torch.float32


@pytest.mark.parametrize("seed", range(6))
def test_ids_bit_exact_on_fixed_seeds(seed):
    """Beyond the agreement rule: on CPU the ids equal the reference's on every pixel (the depth
    test could only differ on float32 near-ties, which these scenes do not have)."""
    rng = np.random.default_rng(1000 + seed)
    kind = ["front", "near", "wild", "degenerate", "scaled", "front"][seed]
    pos, faces = soup(rng, 1 + seed % 3, 40, kind)
    H, W = 33 + seed, 47 - seed
    viewport = ("align_corners", "opengl")[seed % 2]
    inp = inputs(pos, faces, H, W, viewport, seed % 3 == 1)
    ref, out = ref_of(inp), tb.rasterize(inp)
    assert torch.equal(ref[0][..., 3], out[0][..., 3])
    assert_agree(ref, out, pos, faces, H, W, viewport, exact=True, tag=f"torch-exact-{seed}")


@pytest.mark.parametrize("cull", [False, True])
def test_coincident_triangles_lowest_id_any_vertex_order(cull):
    """Exactly coincident triangles resolve to the lowest id whatever the order of their vertices
    (rotations and reflections): each piece's arithmetic uses a canonical vertex order."""
    rng = np.random.default_rng(21)
    F0 = 25
    pos = rng.uniform(-0.9, 0.9, size=(3 * F0, 4)).astype(np.float32)
    pos[:, 3] = rng.uniform(0.5, 2.0, 3 * F0)
    pos[:, :3] *= pos[:, 3:]
    base = np.arange(3 * F0).reshape(F0, 3)
    orders = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]]
    faces = np.concatenate([base[:, o] for o in orders]).astype(np.int32)  # copy j: ids j * F0 + i
    inp = inputs(pos, faces, 57, 63, "opengl", cull)
    ids = tb.rasterize(inp)[0][..., 3].long() - 1
    first = ids[ids >= 0] % F0 if not cull else None
    if cull:  # only one winding survives: copies 0-2 or 3-5, each resolving to its lowest id
        won = ids[ids >= 0]
        assert ((won < F0) | ((won >= 3 * F0) & (won < 4 * F0))).all()
    else:
        assert torch.equal(ids[ids >= 0], first)
    assert torch.equal(ids, ref_of(inp)[0][..., 3].long() - 1)


def test_public_api_and_batch_shapes():
    pos, faces = sphere(800)
    r = render_npu.rasterize((30, 41), torch.from_numpy(faces), torch.from_numpy(pos), backend="torch")
    assert r.rast.shape == (1, 30, 41, 4) and r.depth.shape == (1, 30, 41)
    ref = render_npu.rasterize((30, 41), torch.from_numpy(faces), torch.from_numpy(pos), backend="reference")
    assert torch.equal(r.rast[..., 3], ref.rast[..., 3])
    # batch entries are independent: a batch equals its single calls
    p2 = np.stack([pos, pos * np.float32([1.1, 0.9, 1.0, 1.0])])
    rb = render_npu.rasterize(25, torch.from_numpy(faces), torch.from_numpy(p2), backend="torch")
    for b in range(2):
        rs = render_npu.rasterize(25, torch.from_numpy(faces), torch.from_numpy(p2[b]), backend="torch")
        assert torch.equal(rb.rast[b], rs.rast[0]) and torch.equal(rb.depth[b], rs.depth[0])
    # no faces, no batch entries, everything culled or off screen
    empty = render_npu.rasterize(8, torch.zeros((0, 3), dtype=torch.int32), torch.from_numpy(pos), backend="torch")
    assert not empty.rast.any() and not empty.depth.any()
    off = tb.rasterize(inputs(pos + np.float32([5, 0, 0, 0]) * pos[:, 3:], faces, 9, 9))
    assert not off[0].any() and not off[1].any()


# ----------------------------------------------------------------------------- modes give identical results

@pytest.mark.parametrize("kind", ["wild", "near"])
def test_edge_arith_static_and_budget_are_identical(kind):
    """float32 (exact hi/lo split) vs int64 edge functions, static shapes with several stamp sizes,
    a small memory budget (many chunks): bitwise identical outputs, huge clipped triangles included
    (between the two edge arithmetics: identical ids, values within 1e-6, as their resolve
    arithmetic differs)."""
    pos, faces = soup(np.random.default_rng(7), 2, 60, kind)
    big = np.array([[-400.0, -300.0, 0.1, 1.0], [500.0, -200.0, 0.2, 1.0], [30.0, 600.0, 0.0, 1.0]], np.float32)
    pos = np.concatenate([pos, np.broadcast_to(big, (2, 3, 4))], 1)
    faces = np.concatenate([faces, [[pos.shape[1] - 3, pos.shape[1] - 2, pos.shape[1] - 1]]]).astype(np.int32)
    for viewport in ("align_corners", "opengl"):
        inp = inputs(pos, faces, 45, 37, viewport)
        base = tb.rasterize(inp, edge_arith="int64")
        assert_same_ids(base, tb.rasterize(inp, edge_arith="float32"), "float32 edges")
        assert_same(base, tb.rasterize(inp, memory_budget=1 << 20), "1 MiB budget")
        for S in (1, 4, 8, 32):
            assert_same(base, tb.rasterize(inp, static_shapes=True, stamp_size=S, memory_budget=1 << 20),
                        f"static S={S}")
        assert_same(tb.rasterize(inp, edge_arith="float32"), tb.rasterize(inp, static_shapes=True, edge_arith="float32"),
                    "static float32")
        assert_agree(ref_of(inp), base, pos, faces, 45, 37, viewport, tag=f"torch-modes-{kind}-{viewport}")


def test_chunk_workers_give_identical_results(monkeypatch):
    """On CPU the setup blocks, raster groups and resolve chunks run on torch.get_num_threads()
    threads (one intra-op thread each): bitwise the same outputs as one thread, at the default
    budget and with many small chunks, clipping included; and the chunks did run on several
    threads."""
    import threading

    from render_npu.backends.torch import driver

    threads = set()
    chunk = driver._raster_chunk

    def spy(*args, **kwargs):
        threads.add(threading.get_ident())
        return chunk(*args, **kwargs)

    monkeypatch.setattr(driver, "_raster_chunk", spy)
    pos, faces = sphere(20000, ortho=False)
    near, nfaces = soup(np.random.default_rng(3), 2, 80, "near")
    cases = [(inputs(pos, faces, 96, 80), {}), (inputs(pos, faces, 96, 80), {"memory_budget": 1 << 20}),
             (inputs(near, nfaces, 41, 53), {"memory_budget": 1 << 20})]
    before = torch.get_num_threads()
    try:
        for inp, opts in cases:
            torch.set_num_threads(1)
            one = tb.rasterize(inp, **opts)
            torch.set_num_threads(3)
            assert_same(one, tb.rasterize(inp, **opts), f"3 workers {opts}")
    finally:
        torch.set_num_threads(before)
    assert len(threads) > 1



@pytest.mark.parametrize("edge_arith", ["int64", "float32"])
def test_cpu_single_stamp_class_changes_nothing(monkeypatch, edge_arith):
    """On CPU, pieces that are one stamp of their chosen size and fit a 6 x 6 stamp take that one
    (setup.stamp_sizes): bitwise the same outputs as the device sizes (4, 8, 16, 32), on scenes
    where the class holds pieces, clipping and batches included."""
    from render_npu.backends.torch import driver, setup

    assert 6 in setup.stamp_sizes(torch.device("cpu")) and 6 not in setup.stamp_sizes(torch.device("meta"))
    pos, faces = sphere(20000, ortho=False)
    near, nfaces = soup(np.random.default_rng(5), 2, 300, "near")
    for inp in (inputs(pos, faces, 512, 480), inputs(near, nfaces, 97, 101)):
        run, _ = driver._prepare(inp, None, edge_arith)
        k6 = run.sizes.index(6)
        assert sum(int(c[k6]) for _, _, c in run.pc.blocks) > 0  # the class is used
        cpu = tb.rasterize(inp, edge_arith=edge_arith)
        with monkeypatch.context() as m:
            m.setattr(driver, "stamp_sizes", lambda device: setup._STAMP_SIZES)
            assert_same(cpu, tb.rasterize(inp, edge_arith=edge_arith), f"6x6 class, {edge_arith}")


def collinear_slivers(seed: int, n: int) -> tuple:
    """n triangles whose vertices are exactly collinear (dyadic clip coordinates, w = 1): their
    parent-triangle depth is 0 / 0, but snapping to the 1/256-pixel grid leaves some of them a
    sliver that covers pixel centres, where the depth-test depth is the output depth."""
    rng = np.random.default_rng(seed)
    p0 = rng.integers(-900, 900, (n, 2)) / 1024.0
    d = rng.integers(-200, 200, (n, 2)) / 1024.0
    pos = np.zeros((n, 3, 4), np.float32)
    pos[..., :2] = np.stack([p0, p0 + d, p0 + 2 * d], 1)
    pos[..., 2], pos[..., 3] = 0.5, 1.0
    return pos.reshape(1, 3 * n, 4), np.arange(3 * n, dtype=np.int32).reshape(n, 3)


@pytest.mark.parametrize("workers", [1, 3])
def test_cpu_shortcuts_change_nothing(monkeypatch, workers):
    """The CPU-only variants (setup.cpu_shortcuts: keys scattered through a window view of the key
    buffer; the depth-test depth computed afterwards, only for chunks with a non-finite parent
    depth) give bitwise the device sequence's outputs and coverage counts, also where that
    fallback depth is the output (collinear slivers; the late path is seen running)."""
    from render_npu.backends.torch import driver

    late = []
    resolve_chunk = driver._resolve_chunk

    def spy(*args):
        late.append(driver.cpu_shortcuts(args[0].device))
        return resolve_chunk(*args)

    monkeypatch.setattr(driver, "_resolve_chunk", spy)
    pos, faces = sphere(20000, ortho=False)
    near, nfaces = soup(np.random.default_rng(7), 2, 300, "near")
    sliv, sfaces = collinear_slivers(0, 3000)
    before = torch.get_num_threads()
    torch.set_num_threads(workers)
    try:
        for inp in (inputs(pos, faces, 256, 240), inputs(near, nfaces, 97, 101), inputs(sliv, sfaces, 64, 64)):
            cpu = tb.rasterize(inp), tb.coverage_counts(inp)
            with monkeypatch.context() as m:
                m.setattr(driver, "cpu_shortcuts", lambda device: False)
                dev = tb.rasterize(inp), tb.coverage_counts(inp)
            assert_same(cpu[0], dev[0], f"cpu shortcuts, {workers} workers")
            assert torch.equal(cpu[1], dev[1])
    finally:
        torch.set_num_threads(before)
    assert any(late), "the late depth-test depth never ran"
    rast, depth = tb.rasterize(inputs(sliv, sfaces, 64, 64))
    assert (rast[..., 3] > 0).any() and torch.isfinite(depth).all()


def test_static_shapes_full_graph_under_torch_compile():
    """rasterize_static + render_npu.interpolate trace as ONE graph: torch.compile(fullgraph=True)
    raises on any graph break (a host sync, a data-dependent shape, an unsupported op). Run with
    the "eager" backend (the tracing is what is tested; fast on CPU) and equal to the eager run."""
    pos, faces = soup(np.random.default_rng(3), 1, 30, "near")
    H, W = 20, 24
    p, f = torch.from_numpy(pos), torch.from_numpy(faces)
    attr = torch.from_numpy(np.random.default_rng(5).normal(size=(pos.shape[1], 3)).astype(np.float32))

    def render(p, f, attr):
        rast, depth, need = static.rasterize_static(p, f, H, W, max_stamps=4096, max_clipped=30)
        return render_npu.interpolate(attr, rast, f), rast, depth, need

    eager = render(p, f, attr)
    assert int(eager[3][0]) <= 30 and int(eager[3][1]) <= 4096 and int(eager[3][2]) == 0  # capacities held
    torch._dynamo.reset()
    compiled = torch.compile(render, fullgraph=True, dynamic=False, backend="eager")
    out = compiled(p, f, attr)
    for x, y in zip(out, eager):
        assert torch.equal(x, y)
    # and the result is the dynamic mode's
    assert_same(eager[1:3], tb.rasterize(inputs(pos, faces, H, W)))


def test_static_shapes_compile_option():
    """The eager entry point's ``compile`` option: the whole static computation as one compiled
    graph (``aot_eager``: functionalized through AOTAutograd, no C++ build; inductor works too but
    takes minutes to build here), same results as eager."""
    pos, faces = soup(np.random.default_rng(3), 1, 12, "near")
    inp = inputs(pos, faces, 12, 10)
    eager = tb.rasterize(inp, static_shapes=True)
    torch._dynamo.reset()
    assert_same(tb.rasterize(inp, static_shapes=True, compile="aot_eager"), eager, "compiled")


# ----------------------------------------------------------------------------- cracks

@pytest.mark.parametrize("edge_arith", ["int64", "float32"])
@pytest.mark.parametrize("case", ["jittered", "perspective", "centres"])
def test_crack_free(case, edge_arith):
    """Every pixel of a surface that fills the view is covered exactly once (coverage counts, not
    just the visible id), and the rendered image has no hole."""
    H, W = 61, 67
    if case == "jittered":
        pos, faces = tessellated_plane(23, H, W, seed=5)
    elif case == "perspective":
        pos, faces = tessellated_plane(17, H, W, seed=6, w_range=(0.4, 3.0))
    else:
        pos, faces = pixel_centre_grid(H, W, 3)
        # a fan of 8 triangles around the centre of pixel (20, 30): edges through that centre
        cx, cy = 20, 30
        ring = [(cx + dx, cy + dy) for dx, dy in ((5, 0), (5, 5), (0, 5), (-5, 5), (-5, 0), (-5, -5), (0, -5), (5, -5))]
        pts = [(cx, cy)] + ring
        fan = np.array([[-1 + 2 * x / (W - 1), -1 + 2 * y / (H - 1), 0.5, 1.0] for x, y in pts], np.float32)
        inp_fan = inputs(fan, np.array([[0, 1 + i, 1 + (i + 1) % 8] for i in range(8)], np.int32), H, W)
        counts = tb.coverage_counts(inp_fan, edge_arith=edge_arith)
        assert counts[0, cy, cx] == 1 and counts.max() == 1
        assert torch.equal(counts[0, cy - 4:cy + 5, cx - 4:cx + 5], torch.ones(9, 9, dtype=torch.int32))
    inp = inputs(pos, faces, H, W)
    counts = tb.coverage_counts(inp, edge_arith=edge_arith)
    assert counts.min() == 1 and counts.max() == 1, \
        f"coverage counts {torch.bincount(counts.flatten()).tolist()} (index = times a pixel is covered)"
    rast, _ = tb.rasterize(inp, edge_arith=edge_arith)
    assert (rast[..., 3] > 0).all()


# ----------------------------------------------------------------------------- structure: ops, syncs, dtypes, devices

def test_op_count_independent_of_faces_and_resolution():
    """Same chunk counts -> the same number of dispatched ops, whatever the number of faces or the
    resolution: no Python loop over faces, tiles or pixels (static mode: one stamp size)."""
    counts, chunks = {}, set()
    for n_faces, res in ((800, 64), (3200, 64), (3200, 96)):
        pos, faces = sphere(n_faces)
        inp = inputs(pos, faces, res, res)
        _, n = testing.count_ops(tb.rasterize, inp, static_shapes=True)
        counts[(n_faces, res)] = n.total
        chunks.add(n.by_name["scatter_reduce_"])  # one per raster chunk
    assert len(chunks) == 1 and len(set(counts.values())) == 1, counts
    # dynamic mode: four copies of a mesh have the same stamp size classes and chunk counts
    pos, faces = sphere(1500)
    inp1 = inputs(pos, faces, 80, 80)
    inp4 = inputs(pos, np.concatenate([faces] * 4), 80, 80)
    n1 = testing.count_ops(tb.rasterize, inp1)[1].total
    n4 = testing.count_ops(tb.rasterize, inp4)[1].total
    assert n1 == n4, (n1, n4)


def test_host_syncs_are_constant():
    """Three device -> host syncs per call (clip count; piece and stamp counts; covered pixels),
    independent of faces, resolution, clipping and chunking, and on CPU a fourth (a flag per
    resolve chunk: was a parent depth non-finite, setup.cpu_shortcuts); static shapes: one (the
    capacity check), none inside :func:`static.rasterize_static`."""
    scenes = [(sphere(500), 32, {}), (sphere(20000), 128, {}), (sphere(20000, ortho=False), 100, {}),
              (soup(np.random.default_rng(2), 2, 50, "near"), 40, {}),
              (sphere(20000), 128, {"memory_budget": 1 << 20}),
              (sphere(20000), 128, {"static_shapes": True, "edge_arith": "float32"}),
              (sphere(20000, ortho=False), 100, {"static_shapes": True})]
    for (pos, faces), res, opts in scenes:
        inp = inputs(pos, faces, res, res)
        _, n = testing.count_ops(tb.rasterize, inp, **opts)
        expected = 1 if opts.get("static_shapes") else 4  # CPU tensors: the fourth, see the docstring
        assert n.syncs == expected, (len(faces), res, opts, n.syncs,
                                     {k: v for k, v in n.by_name.items() if k in testing.SYNC_OPS})
    _, n = testing.count_ops(static.rasterize_static, inp.pos, inp.faces, res, res)
    assert n.syncs == 0, {k: v for k, v in n.by_name.items() if k in testing.SYNC_OPS}


def test_sync_and_op_growth_bounds_at_default_settings():
    """Counted from outside, through the public API at default settings: at most 4 host syncs per
    call at every size, batch and resolution (clipping included), and the dispatched ops grow at
    most 1.5x from 20k faces at 512² to 200k faces at 1024² (the chunks grow, not their number)."""
    totals = {}
    for n_faces, res in ((20000, 512), (200000, 1024)):
        pos, faces = sphere(n_faces)
        _, n = testing.count_ops(render_npu.rasterize, res, torch.from_numpy(faces), torch.from_numpy(pos),
                                 backend="torch")
        assert n.syncs <= 4, (n_faces, res, n.syncs)
        totals[n_faces] = n.total
    assert totals[200000] <= 1.5 * totals[20000], totals
    pos, faces = sphere(3000, ortho=False)
    p3 = np.stack([pos, pos * np.float32([1.0, 1.0, 1.0, 0.2]), pos * np.float32([40.0, 1.0, 1.0, 1.0])])
    for res in ((7, 300), (257, 129)):
        _, n = testing.count_ops(render_npu.rasterize, res, torch.from_numpy(faces), torch.from_numpy(p3),
                                 backend="torch")
        assert n.syncs <= 4, (res, n.syncs)


def test_cpu_call_restores_the_thread_setting():
    """The CPU path runs on one intra-op thread (docs: behaviour under load) and gives the
    caller's setting back, also when it raises."""
    pos, faces = sphere(200)
    inp = inputs(pos, faces, 16, 16)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        class _Spy(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                seen.append(torch.get_num_threads())
                return func(*args, **(kwargs or {}))

        with _Spy():
            tb.rasterize(inp)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            tb.rasterize(inp, edge_arith="float16")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


_FACTORIES = {"arange", "full", "zeros", "ones", "empty", "empty_strided", "eye", "scalar_tensor", "lift_fresh",
              "tensor", "randperm", "linspace"}


class _DtypeDeviceCheck(TorchDispatchMode):
    """Records float64 outputs (unless allowed), tensors made without the input's device, and host
    copies."""

    def __init__(self, device, allow_float64: bool = False):
        super().__init__()
        self.device = torch.device(device)
        self.allow_float64 = allow_float64
        self.bad = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        out = func(*args, **kwargs)
        for o in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(o, torch.Tensor) and o.dtype == torch.float64 and not self.allow_float64:
                self.bad.append(f"{name} made a float64 tensor")
        if name == "_to_copy" and kwargs.get("device") is not None and torch.device(kwargs["device"]).type == "cpu":
            return out  # an explicit host copy: a counted sync (test_host_syncs_are_constant)
        if name in _FACTORIES and kwargs.get("device") is None:
            self.bad.append(f"{name} without an explicit device")
        if kwargs.get("device") is not None and torch.device(kwargs["device"]) != self.device:
            self.bad.append(f"{name} on {kwargs['device']}")
        return out


@pytest.mark.parametrize("opts", [{}, {"edge_arith": "float32"}, {"static_shapes": True},
                                  {"static_shapes": True, "edge_arith": "float32"}])
def test_no_float64_and_no_stray_device(opts):
    """With the device arithmetic (edge_arith="float32", the default on NPUs) no float64 anywhere;
    with int64 edges (CPU, CUDA) float64 only in the parent-triangle resolve. Every tensor factory
    gets the input's device (nothing is made on the host and copied over inside the loops)."""
    pos, faces = soup(np.random.default_rng(11), 2, 40, "near")
    inp = inputs(pos, faces, 29, 31)
    mode = _DtypeDeviceCheck(inp.pos.device, allow_float64=opts.get("edge_arith") != "float32")
    with mode:
        tb.rasterize(inp, **opts)
        tb.coverage_counts(inp)
    assert not mode.bad, sorted(set(mode.bad))


# ----------------------------------------------------------------------------- memory

def test_peak_memory_bounded_by_budget():
    """Peak tensor memory <= outputs + memory_budget + the per-face tables and per-pixel buffers
    (~300 B per face, ~17 B per pixel of the padded key buffer); the chunked scratch follows the
    budget; results do not depend on it."""
    pos, faces = sphere(20000)
    H = W = 256
    inp = inputs(pos, faces, H, W)
    F = faces.shape[0]
    outputs = H * W * 20
    fixed = 320 * F + 20 * (H + 32) * (W + 32)
    peaks = {}
    for budget in (1 << 20, 4 << 20, 64 << 20):
        for ea in ("int64", "float32"):
            res, peak = testing.peak_tensor_bytes(tb.rasterize, inp, memory_budget=budget, edge_arith=ea)
            assert peak <= outputs + budget + fixed, (budget, ea, peak, outputs + budget + fixed)
            peaks[(budget, ea)] = peak
    assert peaks[(1 << 20, "int64")] < peaks[(64 << 20, "int64")]
    assert_same(tb.rasterize(inp, memory_budget=1 << 20), tb.rasterize(inp))


# ----------------------------------------------------------------------------- options, imports

def test_option_errors():
    pos, faces = sphere(100)
    inp = inputs(pos, faces, 8, 8)
    with pytest.raises(ValueError, match="memory_budget"):
        tb.rasterize(inp, memory_budget=1000)
    with pytest.raises(TypeError, match="memory_budget"):
        tb.rasterize(inp, memory_budget=1.5e9)
    with pytest.raises(ValueError, match="edge_arith"):
        tb.rasterize(inp, edge_arith="float16")
    with pytest.raises(ValueError, match="static_shapes"):
        tb.rasterize(inp, stamp_size=8)
    with pytest.raises(ValueError, match="stamp_size"):
        tb.rasterize(inp, static_shapes=True, stamp_size=6)
    with pytest.raises(ValueError, match="static_shapes"):
        tb.rasterize(inp, compile=True)
    with pytest.raises(ValueError, match="memory_budget"):
        render_npu.rasterize(8, torch.from_numpy(faces), torch.from_numpy(pos), backend="torch", memory_budget=5)


def test_torch_npu_is_optional(tmp_path):
    """Neither ``import render_npu`` nor the torch backend imports torch_npu; "auto" picks this
    backend for any non-CPU device, and on CPU when the compiled module is missing."""
    import subprocess

    code = ("import sys, render_npu, render_npu.backends.torch as tb; import torch; "
            "assert set(render_npu.backends()) >= {'torch', 'cpu'}; "
            "from render_npu import resolve_backend; "
            "assert 'torch_npu' not in sys.modules; "
            "assert resolve_backend('auto', 'cuda') == 'torch'; "
            "assert resolve_backend('auto', 'npu') in ('torch', 'ascendc'); "
            "assert tb.default_edge_arith(torch.device('cpu')) == 'int64'; "
            "assert tb.default_edge_arith(torch.device('meta')) == 'float32'; print('ok')")
    # a fresh process on the package under test (cwd: not the repository, whose source tree `-c` would import)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
