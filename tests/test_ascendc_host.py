"""The AscendC fine-raster kernel (ascendc_kernels/), built for the host against the emulated AscendC
API (ascendc_kernels/host/) into render_npu._C, checked against the contract.

* every golden scene, through the whole pipeline (setup, binning, packing, kernel, unpacking),
  under the agreement rule -- with IEEE host rounding and with the device's documented rounding
  bounds (fused Axpy, Div one ulp off);
* hand-made tile inputs (one piece per tile, tiles anywhere in a 16384 x 16384 image, vertices up
  to the 2**29 fixed-point bound, edges through pixel centres): the coverage mask equals the
  exact int64 edge-function test with the top-left rule on every pixel, barycentrics and depth
  are within 1e-5 of float64 values;
* depth ties resolve to the lowest id whatever the list order; block count and thread count do
  not change the output; instruction statistics show whole-tile vector instructions and no
  per-pixel scalar work; bad inputs are rejected before the kernel runs;
* status() says the device path is unavailable here, and why.

Nothing here needs an NPU or the CANN toolkit; nothing here shows that the kernel compiles with
CANN or runs on a device (ascendc_kernels/README.md, "What was verified").
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import scenes
from agreement import assert_agree
from render_npu import _validate
from render_npu.backends import ascendc as ab

pytestmark = pytest.mark.compiled("ascendc_host_fine_raster")

GOLDENS = scenes.NAMES


def load_golden(name):
    g = scenes.load_golden(name)
    return g, g["H"], g["W"], g["viewport"], g["cull_backfaces"]


def inputs(g, H, W, viewport, cull):
    return _validate.rasterize_inputs((H, W), torch.from_numpy(g["faces"]), torch.from_numpy(g["pos"]), viewport, cull)


# ---------------------------------------------------------------------------------- golden scenes

SETUPS = ["torch", "reference"]


@pytest.mark.parametrize("device_rounding", [False, True], ids=["ieee", "device_bounds"])
@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("name", GOLDENS)
def test_golden_scene(name, setup, device_rounding):
    """The whole pipeline (setup, binning, packing, host-emulated kernel, unpacking) vs the golden."""
    g, H, W, viewport, cull = load_golden(name)
    rast, depth = ab.rasterize_host(inputs(g, H, W, viewport, cull), setup=setup, block_dim=5,
                                    device_rounding=device_rounding)
    rep = assert_agree((g["rast"], g["depth"]), (rast, depth), g["pos"], g["faces"], H, W, viewport,
                       tag=f"{name}-ascendc-host-{setup}-{'dev' if device_rounding else 'ieee'}")
    # Coverage is exact (README, "Exactness") and coincident pieces are bit-identical, so on these
    # scenes not even the excused mismatches occur.
    assert rep["id_mismatch"] == 0, rep["first_unexcused"]
    covered = rast[..., 3] > 0
    assert torch.all(torch.abs(rast[..., :3].sum(-1)[covered] - 1) < 1e-6)
    assert torch.all(rast[..., :3][covered] >= 0) and torch.all(rast[..., :3][covered] <= 1)


# ---------------------------------------------------------------------------------- hand-made tiles

def exact_tile(X, Y, px0, py0):
    """Exact int64 edge functions of one piece over the 16 x 16 tile at (px0, py0): (inside [256], E [3, 256])."""
    X = [int(v) for v in X]
    Y = [int(v) for v in Y]
    signed = (X[1] - X[0]) * (Y[2] - Y[0]) - (X[2] - X[0]) * (Y[1] - Y[0])
    s = 1 if signed > 0 else -1
    p = np.arange(256, dtype=np.int64)
    px, py = px0 + p % 16, py0 + p // 16
    E, inside = [], np.ones(256, bool)
    for i in range(3):
        ia, ib = (i + 1) % 3, (i + 2) % 3
        dx, dy = s * (X[ib] - X[ia]), s * (Y[ib] - Y[ia])
        e = np.int64(dx) * (256 * py + 128 - Y[ia]) - np.int64(dy) * (256 * px + 128 - X[ia])
        bias = 0 if (dy < 0 or (dy == 0 and dx < 0)) else 1
        inside &= e >= bias
        E.append(e)
    return inside, np.stack(E), abs(signed)


def run_tiles(Xs, Ys, origins, q=None, coef=None, faces=None, device_rounding=False, block_dim=3):
    """One piece per tile: piece t at tile origins[t]. Returns out [T, 5, 256] (numpy)."""
    T = len(Xs)
    if q is None:
        q = np.zeros((T, 3), np.float32)
    if coef is None:
        coef = np.broadcast_to(np.eye(3), (T, 3, 3)).copy()
    pieces = ab.tables_from_vertices(torch.tensor(np.asarray(Xs, np.int64)), torch.tensor(np.asarray(Ys, np.int64)),
                                     torch.tensor(q, dtype=torch.float32), torch.tensor(coef, dtype=torch.float64),
                                     torch.tensor(np.arange(T) if faces is None else faces),
                                     torch.zeros(T, dtype=torch.int64), 16384, 16384)
    rec_i, rec_f = ab.records(pieces)
    tiles = torch.zeros((T, 8), dtype=torch.int32)
    tiles[:, 0] = torch.tensor([o[0] for o in origins], dtype=torch.int32)
    tiles[:, 1] = torch.tensor([o[1] for o in origins], dtype=torch.int32)
    tiles[:, 2] = torch.arange(T, dtype=torch.int32) * 8
    tiles[:, 3] = 1
    lists = torch.full((8 * T,), -1, dtype=torch.int32)
    lists[::8] = torch.arange(T, dtype=torch.int32)
    out, _ = ab.fine_raster_host(ab.coords_table(), tiles, lists, rec_i, rec_f, block_dim=block_dim,
                                 device_rounding=device_rounding)
    return out.numpy().reshape(T, 5, 256)


def tile_at(point_fixed):
    """Origin of the 16 x 16 tile containing the pixel nearest to a fixed-point point, clamped to the image."""
    p = np.clip(np.floor((np.asarray(point_fixed, np.float64) - 128) / 256), 0, 16383).astype(np.int64)
    return int(p[0] // 16 * 16), int(p[1] // 16 * 16)


def random_pieces(rng, n, scale, through_centres=False, jitter=0):
    """n pieces with an edge crossing a tile of the 16384 x 16384 image, vertices within +-scale (fixed).
    through_centres: vertices on pixel centres, edges along small integer directions; jitter: then
    move the other two vertices by up to +-jitter fixed-point units (|E| tiny but nonzero)."""
    Xs, Ys, origins = [], [], []
    while len(Xs) < n:
        if through_centres:
            # vertices on pixel centres, edge directions small integers times a large step: many
            # pixel centres lie exactly on the edges (E = 0 tests the top-left rule)
            c = rng.randint(0, 16384, size=2)
            A = 256 * c + 128
            steps = rng.randint(-3, 4, size=(2, 2))
            mult = rng.randint(1, max(2, scale // (256 * 4)))
            B = A + 256 * mult * steps[0]
            C = A + 256 * rng.randint(1, 40) * steps[1]
            V = np.stack([A, B, C])
            V[1:] += rng.randint(-jitter, jitter + 1, size=(2, 2))
        else:
            # an edge through a random point of the image, its ends up to `scale` away, the third
            # vertex anywhere within +-scale
            P = rng.randint(0, 16384 * 256, size=2)
            ang = rng.uniform(0, 2 * np.pi)
            d = np.array([np.cos(ang), np.sin(ang)])
            A = np.rint(P - rng.uniform(0, scale) * d).astype(np.int64)
            B = np.rint(P + rng.uniform(0, scale) * d).astype(np.int64)
            C = rng.randint(-scale, scale + 1, size=2).astype(np.int64)
            V = np.stack([A, B, C])
        if np.any(np.abs(V) > 2 ** 29):
            continue
        area = (V[1, 0] - V[0, 0]) * (V[2, 1] - V[0, 1]) - (V[2, 0] - V[0, 0]) * (V[1, 1] - V[0, 1])
        if area == 0:
            continue
        if through_centres:
            e = rng.randint(3)
            a, b = V[(e + 1) % 3], V[(e + 2) % 3]
            origin = tile_at(a + rng.rand() * (b - a))
        else:
            origin = tile_at(P)
        perm = rng.permutation(3)
        Xs.append(V[perm, 0])
        Ys.append(V[perm, 1])
        origins.append(origin)
    return Xs, Ys, origins


@pytest.mark.parametrize("device_rounding", [False, True], ids=["ieee", "device_bounds"])
@pytest.mark.parametrize("kind", ["guard_band", "image", "small", "centres", "centres_huge", "near_centres_huge"])
def test_coverage_exact(kind, device_rounding):
    rng = np.random.RandomState({"guard_band": 1, "image": 2, "small": 3, "centres": 4, "centres_huge": 5,
                                 "near_centres_huge": 6}[kind])
    if kind == "guard_band":
        Xs, Ys, origins = random_pieces(rng, 300, 2 ** 29)
    elif kind == "image":
        Xs, Ys, origins = random_pieces(rng, 300, 2 ** 22)
    elif kind == "small":
        # triangles of a few pixels near random points of the image
        Xs, Ys, origins = [], [], []
        for _ in range(300):
            c = rng.randint(0, 16384 * 256, size=2)
            V = c + rng.randint(-2000, 2000, size=(3, 2))
            if (V[1, 0] - V[0, 0]) * (V[2, 1] - V[0, 1]) == (V[2, 0] - V[0, 0]) * (V[1, 1] - V[0, 1]):
                continue
            Xs.append(V[:, 0])
            Ys.append(V[:, 1])
            origins.append(tile_at(c))
    elif kind == "centres":
        Xs, Ys, origins = random_pieces(rng, 300, 2 ** 16, through_centres=True)
    elif kind == "centres_huge":
        Xs, Ys, origins = random_pieces(rng, 300, 2 ** 29, through_centres=True)
    else:
        Xs, Ys, origins = random_pieces(rng, 300, 2 ** 29, through_centres=True, jitter=2)
    out = run_tiles(Xs, Ys, origins, device_rounding=device_rounding)
    crossing = 0
    on_edge = 0
    for t in range(len(Xs)):
        inside, E, _ = exact_tile(Xs[t], Ys[t], *origins[t])
        got = out[t, 3] > 0
        assert np.array_equal(got, inside), (
            f"piece {t} X={list(Xs[t])} Y={list(Ys[t])} tile {origins[t]}: "
            f"{int((got != inside).sum())} pixels differ from the exact test")
        crossing += int(inside.any() and not inside.all())
        on_edge += int((np.abs(E) <= 2 ** 20).any())  # pixel centres on or within ~1e-6 px of an edge
    assert crossing > 20  # the generator does produce tiles that edges cross
    if "centres" in kind:
        assert on_edge > 20  # and pixel centres on (or next to) edges


@pytest.mark.parametrize("device_rounding", [False, True], ids=["ieee", "device_bounds"])
def test_barycentrics_and_depth(device_rounding):
    """Covered pixels: b_k = (sum_i E_i c_ik) / (sum) and depth = sum q_i E_i / area within 1e-5 of
    float64 values from the exact edge functions, for random depths and clipped-style coefficients."""
    rng = np.random.RandomState(7)
    Xs, Ys, origins = random_pieces(rng, 200, 2 ** 23)
    q = rng.uniform(-1, 1, size=(len(Xs), 3)).astype(np.float32)
    beta = rng.dirichlet(np.ones(3), size=(len(Xs), 3))  # rows: piece vertex i in parent barycentrics
    w = rng.uniform(0.05, 20.0, size=(len(Xs), 3))
    coef = beta / w[:, :, None]
    coef[::2] = np.eye(3)[None] / w[::2, :, None]  # every other piece unclipped (diagonal fast path)
    out = run_tiles(Xs, Ys, origins, q=q, coef=coef, device_rounding=device_rounding)
    checked = 0
    for t in range(len(Xs)):
        inside, E, area = exact_tile(Xs[t], Ys[t], *origins[t])
        if not inside.any():
            continue
        Ef = E[:, inside].astype(np.float64)
        u = np.einsum("ip,ik->kp", Ef, coef[t])
        bary = u / u.sum(0)
        depth = (q[t].astype(np.float64)[:, None] * Ef).sum(0) / area
        np.testing.assert_allclose(out[t, :3][:, inside], bary, atol=1e-5, rtol=0)
        np.testing.assert_allclose(out[t, 4][inside], depth, atol=1e-5, rtol=0)
        assert np.all(out[t, 3][inside] == t + 1)
        assert np.all(out[t, :, ~inside] == 0)  # empty pixels: all planes zero, depth 0 too
        checked += int(inside.sum())
    assert checked > 10000


def test_depth_tie_lowest_id_any_order():
    """Coincident pieces (same triangle, vertices in different orders, both windings) listed in
    either order in one tile: the lowest id wins everywhere; a nearer piece with a higher id still
    wins where it is nearer."""
    X = np.array([200 * 256 + 128, 215 * 256, 201 * 256])
    Y = np.array([100 * 256 + 128, 103 * 256, 116 * 256])
    qd = np.array([0.5, 0.2, 0.1], np.float32)
    orders = ([0, 1, 2], [1, 2, 0], [2, 1, 0])
    Xs = [X[o] for o in orders] + [X]
    Ys = [Y[o] for o in orders] + [Y]
    q = np.stack([qd[o] for o in orders] + [np.array([0.4, 0.1, 0.0], np.float32)])
    coef = np.broadcast_to(np.eye(3), (4, 3, 3)).copy()
    pieces = ab.tables_from_vertices(torch.tensor(np.stack(Xs)), torch.tensor(np.stack(Ys)), torch.tensor(q),
                                     torch.tensor(coef), torch.tensor([9, 7, 4, 11]), torch.zeros(4, dtype=torch.int64),
                                     64, 64)
    rec_i, rec_f = ab.records(pieces)
    tiles = torch.tensor([[192, 96, 0, 4, 0, 0, 0, 0], [192, 96, 8, 4, 0, 0, 0, 0]], dtype=torch.int32)
    lists = torch.tensor([0, 1, 2, 3, -1, -1, -1, -1, 3, 2, 1, 0, -1, -1, -1, -1], dtype=torch.int32)
    out, _ = ab.fine_raster_host(ab.coords_table(), tiles, lists, rec_i, rec_f, block_dim=2)
    ids = out.numpy().reshape(2, 5, 256)[:, 3]
    inside, E, area = exact_tile(X, Y, 192, 96)
    assert inside.sum() > 20
    lam = E[:, inside] / area
    d_dup = (qd.astype(np.float64)[:, None] * lam).sum(0)
    d_near = (np.array([0.4, 0.1, 0.0])[:, None] * lam).sum(0)
    expect = np.where(d_near < d_dup, 12, 5)  # id + 1: the nearer piece (11) or the lowest duplicate (4)
    clear = np.abs(d_near - d_dup) > 1e-6
    for order in range(2):
        got = ids[order][inside]
        assert np.all(got[clear] == expect[clear]), order
        assert set(np.unique(got).tolist()) <= {5, 12}, np.unique(got)  # never 8 or 10: ties go to 4


def test_block_and_thread_invariance():
    g, H, W, viewport, cull = load_golden("sphere_persp")
    k = ab.prepare(inputs(g, H, W, viewport, cull), setup="reference")
    outs = [ab.fine_raster_host(k["coords"], k["tiles"], k["lists"], k["rec_i"], k["rec_f"], block_dim=b,
                                num_threads=n)[0] for b, n in ((1, 1), (7, 1), (24, 2), (40, 3))]
    for o in outs[1:]:
        assert torch.equal(o, outs[0])


def test_instruction_profile():
    """Whole-tile vector instructions; scalar GM reads only for tile descriptors and list entries;
    the UB budget stated in the README."""
    g, H, W, viewport, cull = load_golden("sphere_persp")
    k = ab.prepare(inputs(g, H, W, viewport, cull), setup="reference")
    _, st = ab.fine_raster_host(k["coords"], k["tiles"], k["lists"], k["rec_i"], k["rec_f"], block_dim=8)
    num_tiles = k["tiles"].shape[0]
    pairs = int(k["tiles"][:, 3].sum())
    assert st["scalar_gm_reads"] == 4 * num_tiles + pairs
    assert st["dma_copies"] == 8 + 2 * pairs + num_tiles  # coords per core, 2 records per pair, 1 tile out
    # all vector instructions cover a full tile (256 lanes) except the bit-mask And/Or (16 x u16)
    full = st["vector_elements"] / st["vector_instructions"]
    assert full > 200, st
    assert st["ub_bytes_peak"] == 35008
    assert st["vector_instructions"] < 70 * pairs + 10 * num_tiles


def test_rejects_bad_inputs():
    coords = ab.coords_table()
    rec_i = torch.zeros((1, 12), dtype=torch.int64)
    rec_f = torch.zeros((1, 16), dtype=torch.float32)
    lists = torch.zeros(8, dtype=torch.int32)
    good = torch.tensor([[0, 0, 0, 1, 0, 0, 0, 0]], dtype=torch.int32)
    ab.fine_raster_host(coords, good, lists, rec_i, rec_f)
    for bad in ([[0, 0, 0, 1, 0, 0, 0, 0]], [[3, 0, 0, 1, 0, 0, 0, 0]], [[0, 0, 4, 1, 0, 0, 0, 0]],
                [[0, 0, 0, 9, 0, 0, 0, 0]], [[0, -16, 0, 1, 0, 0, 0, 0]]):
        t = torch.tensor(bad, dtype=torch.int32)
        bad_lists = torch.full((8,), 5, dtype=torch.int32) if bad == [[0, 0, 0, 1, 0, 0, 0, 0]] else lists
        with pytest.raises(ValueError):
            ab.fine_raster_host(coords, t, bad_lists, rec_i, rec_f)
    with pytest.raises(ValueError):
        ab.fine_raster_host(coords, good, torch.zeros(7, dtype=torch.int32), rec_i, rec_f)
    with pytest.raises(TypeError):
        ab.fine_raster_host(coords, good.long(), lists, rec_i, rec_f)


def test_device_path_wiring():
    """The NPU path's Python side (schema, argument order, packing, unpacking) with a CPU stand-in op
    of the same schema that runs the host-emulated kernel; the schema matches torch_npu_op.cpp."""
    src = open(os.path.join(scenes.ROOT, "ascendc_kernels", "torch_npu_op.cpp")).read()
    assert f'm.def("{ab.OP_SCHEMA}")' in src
    lib = torch.library.Library("render_npu_ascendc_hosttest", "DEF")
    lib.define(ab.OP_SCHEMA)

    def cpu_impl(coords, tiles, lists, rec_i, rec_f, block_dim):
        return ab.fine_raster_host(coords, tiles, lists, rec_i, rec_f, block_dim=block_dim or 8)[0]

    lib.impl("fine_raster", cpu_impl, "CPU")
    op = torch.ops.render_npu_ascendc_hosttest.fine_raster
    for name in ("batch3", "nonsquare_37x1000"):
        g, H, W, viewport, cull = load_golden(name)
        rast, depth = ab.rasterize_with_op(inputs(g, H, W, viewport, cull), op, block_dim=3, setup="torch")
        assert_agree((g["rast"], g["depth"]), (rast, depth), g["pos"], g["faces"], H, W, viewport,
                     tag=f"{name}-ascendc-opwiring")


def test_status_here():
    ok, why = ab.status()
    try:
        import torch_npu  # noqa: F401
        has_npu = True
    except Exception:  # noqa: BLE001
        has_npu = False
    if not has_npu:
        assert not ok and "torch_npu" in why
    import render_npu

    assert "ascendc" in render_npu.backends()
    assert render_npu.backends()["ascendc"][0] == ok
