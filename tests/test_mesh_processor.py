"""render_npu.mesh_processor.meshVerticeInpaint: C++ kernel == numpy fallback == a literal,
loop-by-loop reading of docs/inpaint.md, bit for bit; hand-checked meshes; input checks.

Run: PYTHONPATH=. RENDER_NPU_EXT_DIR=build/<dir> python -m pytest tests/test_mesh_processor.py
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from render_npu import inpaint
from render_npu import mesh_processor as mp

needs_cpp = pytest.mark.compiled("mesh_vertex_inpaint")  # conftest: skip, or fail when strict
IMPLS = ("python", "cpp")
f32 = np.float32


# ---------------------------------------------------------------------------------------------
# A literal reading of the specification (docs/inpaint.md), one scalar step at a time.
# ---------------------------------------------------------------------------------------------
def _round_half_away(x: float) -> int:
    a = abs(x)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    return int(math.copysign(r, x))


def literal_inpaint(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx, method="smooth"):
    H, W, C = texture.shape
    V = vtx_pos.shape[0]

    def texel(t):
        col = _round_half_away(float(f32(vtx_uv[t, 0]) * f32(W - 1)))
        row = _round_half_away((1.0 - float(vtx_uv[t, 1])) * float(H - 1))
        return row, col

    def weight(a, b):
        pa, pb = vtx_pos[a], vtx_pos[b]
        dx, dy, dz = pa[0] - pb[0], pa[1] - pb[1], pa[2] - pb[2]
        d = np.sqrt(dx * dx + dy * dy + dz * dz)
        r = f32(1.0) / (f32(1e-4) if d < f32(1e-4) else d)
        return r * r

    colored = [False] * V
    color = [np.zeros(C, f32) for _ in range(V)]
    uncolored, G = [], [[] for _ in range(V)]
    for f in range(pos_idx.shape[0]):
        for k in range(3):
            p = int(pos_idx[f, k])
            r, c = texel(int(uv_idx[f, k]))
            if mask[r, c] > 0:
                colored[p] = True
                color[p] = texture[r, c].astype(f32).copy()
            else:
                uncolored.append(p)
            G[p].append(int(pos_idx[f, (k + 1) % 3]))

    iterations = 0
    with np.errstate(all="ignore"):
        if method == "smooth":
            smooth_count, last = 2, 0
            while smooth_count > 0:
                count = 0
                for p in uncolored:
                    acc, total = np.zeros(C, f32), f32(0.0)
                    for q in G[p]:
                        if colored[q]:
                            w = weight(p, q)
                            acc = acc + color[q] * w
                            total = total + w
                    if total > 0:
                        color[p] = acc / total
                        colored[p] = True
                    else:
                        count += 1
                iterations += 1
                smooth_count += -1 if count == last else 1
                last = count
        else:
            vm = [f32(1.0) if c else f32(0.0) for c in colored]
            active = [v for v in range(V) if colored[v]]
            while active:
                pending = []
                for p in active:
                    for q in G[p]:
                        if vm[q] > 0:
                            continue
                        w = weight(p, q)
                        color[q] = color[q] + color[p] * w
                        if vm[q] == 0:
                            pending.append(q)
                        vm[q] = vm[q] - w
                for q in pending:
                    color[q] = color[q] / (-vm[q])
                    vm[q] = f32(1.0)
                    colored[q] = True
                active = pending
                iterations += 1

    out_t, out_m = texture.copy(), mask.copy()
    for f in range(pos_idx.shape[0]):
        for k in range(3):
            p = int(pos_idx[f, k])
            if colored[p]:
                r, c = texel(int(uv_idx[f, k]))
                out_t[r, c] = color[p]
                out_m[r, c] = 255
    return out_t, out_m, iterations


# ---------------------------------------------------------------------------------------------
# Meshes
# ---------------------------------------------------------------------------------------------
def random_soup(seed, F=120, V=60, T=90, H=24, W=28, C=3, cover=0.5):
    """Random, non-manifold index soup: high degrees, duplicate and degenerate edges."""
    rng = np.random.default_rng(seed)
    return dict(texture=rng.random((H, W, C), dtype=np.float32),
                mask=np.where(rng.random((H, W)) < cover, 255, 0).astype(np.uint8),
                vtx_pos=rng.standard_normal((V, 3)).astype(np.float32),
                vtx_uv=rng.random((T, 2), dtype=np.float32),
                pos_idx=rng.integers(0, V, (F, 3)).astype(np.int32),
                uv_idx=rng.integers(0, T, (F, 3)).astype(np.int32))


def chart_grid(seed, n=10, chart=3, H=48, W=48, C=3, cover=0.5, shuffle=False, flip=0.0):
    """n x n quad grid (bumpy), cut into chart x chart charts with their own UVs (vertices split
    at chart seams, pos_idx != uv_idx), optionally with shuffled faces / flipped windings."""
    rng = np.random.default_rng(seed)
    ii, jj = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    vtx_pos = np.stack([jj, ii, 0.3 * rng.standard_normal(ii.shape)], -1).reshape(-1, 3).astype(np.float32)
    m = -(-n // chart)
    cell = 1.0 / m
    faces, uvf, uvs = [], [], []
    for i in range(n):
        for j in range(n):
            ci, cj = i // chart, j // chart
            base = len(uvs)
            for a, b in ((i, j), (i, j + 1), (i + 1, j), (i + 1, j + 1)):
                uvs.append([cj * cell + (b - cj * chart + 0.2) * cell / (chart + 0.5),
                            ci * cell + (a - ci * chart + 0.2) * cell / (chart + 0.5)])
            v00, v01, v10, v11 = i * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j, (i + 1) * (n + 1) + j + 1
            for tri, tuv in (((v00, v01, v11), (0, 1, 3)), ((v00, v11, v10), (0, 3, 2))):
                if rng.random() < flip:
                    tri, tuv = tri[::-1], tuv[::-1]
                faces.append(tri)
                uvf.append([base + t for t in tuv])
    pos_idx, uv_idx = np.array(faces, np.int32), np.array(uvf, np.int32)
    if shuffle:
        perm = rng.permutation(len(faces))
        pos_idx, uv_idx = pos_idx[perm], uv_idx[perm]
    return dict(texture=rng.random((H, W, C), dtype=np.float32),
                mask=np.where(rng.random((H, W)) < cover, 255, 0).astype(np.uint8),
                vtx_pos=vtx_pos, vtx_uv=np.array(uvs, np.float32), pos_idx=pos_idx, uv_idx=uv_idx)


def run(mesh, method="smooth", backend="auto"):
    return mp.mesh_vertex_inpaint(**mesh, method=method, backend=backend, return_stats=True)


def assert_same(a, b):
    """Bit-identical textures (NaNs compare equal), identical masks."""
    np.testing.assert_array_equal(a[0].view(np.uint32) if a[0].dtype == np.float32 else a[0],
                                  b[0].view(np.uint32) if b[0].dtype == np.float32 else b[0])
    np.testing.assert_array_equal(a[1], b[1])


def _nan_equal(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


MESHES = (
    [("soup", s, lambda s=s: random_soup(s, cover=(0.05, 0.3, 0.6, 0.95)[s % 4], V=(30, 60, 150)[s % 3]))
     for s in range(8)]
    + [("grid", s, lambda s=s: chart_grid(s, cover=(0.1, 0.4, 0.7, 0.9)[s % 4], shuffle=s % 2 == 1,
                                          flip=0.2 * (s % 3 == 2)))
       for s in range(8)]
)


# ---------------------------------------------------------------------------------------------
# Equality of the three implementations
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["smooth", "forward"])
@pytest.mark.parametrize("kind,seed,make", MESHES, ids=[f"{k}{s}" for k, s, _ in MESHES])
def test_python_fallback_matches_literal_spec(kind, seed, make, method):
    mesh = make()
    tex, msk, st = run(mesh, method, "python")
    ref_t, ref_m, ref_it = literal_inpaint(*mesh.values(), method=method)
    assert_same((tex, msk), (ref_t, ref_m))
    assert st.iterations == ref_it


@needs_cpp
@pytest.mark.parametrize("method", ["smooth", "forward"])
@pytest.mark.parametrize("kind,seed,make", MESHES, ids=[f"{k}{s}" for k, s, _ in MESHES])
def test_cpp_matches_python_fallback_exactly(kind, seed, make, method):
    mesh = make()
    a, b = run(mesh, method, "cpp"), run(mesh, method, "python")
    assert a[2].backend == "cpp" and b[2].backend == "python"
    assert_same(a, b)
    assert a[2][:4] == b[2][:4]


@needs_cpp
@pytest.mark.parametrize("method", ["smooth", "forward"])
def test_cpp_matches_python_on_larger_meshes(method):
    for seed in range(3):
        mesh = chart_grid(100 + seed, n=40, chart=5, H=128, W=128, cover=0.35, shuffle=seed == 1)
        a, b = run(mesh, method, "cpp"), run(mesh, method, "python")
        assert_same(a, b)
        assert a[2][:4] == b[2][:4]


@needs_cpp
@pytest.mark.parametrize("C", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("method", ["smooth", "forward"])
def test_channel_counts(C, method):
    """Any channel count; channels are independent, so C channels == C single-channel runs."""
    mesh = chart_grid(7, C=C, cover=0.4)
    backends = IMPLS
    results = {be: run(mesh, method, be) for be in backends}
    for be, (tex, msk, _) in results.items():
        assert tex.shape == mesh["texture"].shape and tex.dtype == np.float32 and msk.dtype == np.uint8
        for c in range(C):
            one = dict(mesh, texture=np.ascontiguousarray(mesh["texture"][..., c:c + 1]))
            t1, m1, _ = run(one, method, be)
            np.testing.assert_array_equal(tex[..., c:c + 1], t1)
            np.testing.assert_array_equal(msk, m1)
    assert_same(results["cpp"], results["python"])


@needs_cpp
@pytest.mark.parametrize("method", ["smooth", "forward"])
def test_non_finite_positions_and_zero_weights(method):
    """NaN positions give NaN weights; coordinates ~1e20 give weights that underflow to 0 (which
    makes "forward" queue a vertex more than once). All implementations still agree."""
    mesh = chart_grid(3, cover=0.3)
    pos = mesh["vtx_pos"].copy()
    pos[5] = np.nan
    pos[17] = [1e20, -1e20, 0]
    pos[18] = [-1e20, 1e20, 3e19]
    mesh["vtx_pos"] = pos
    ref = literal_inpaint(*mesh.values(), method=method)
    py = run(mesh, method, "python")
    _nan_equal(py, ref)
    _nan_equal(run(mesh, method, "cpp"), py)


# ---------------------------------------------------------------------------------------------
# Hand-checked meshes
# ---------------------------------------------------------------------------------------------
def fan_mesh():
    """Vertex 0 at the origin, unpainted, surrounded by 1..4 at distances 1, 2, 1, 2.
    Texture 3x3, one channel: each vertex has its own texel."""
    vtx_pos = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [-1, 0, 0], [0, -2, 0]], np.float32)
    # texel (row, col) = (round((1 - v) * 2), round(u * 2))
    vtx_uv = np.array([[0.5, 0.5], [1.0, 0.5], [0.5, 1.0], [0.0, 0.5], [0.5, 0.0]], np.float32)
    # texels: v0 (1,1)  v1 (1,2)  v2 (0,1)  v3 (1,0)  v4 (2,1)
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]], np.int32)
    texture = np.full((3, 3, 1), 7.0, np.float32)
    texture[1, 2], texture[0, 1], texture[1, 0], texture[2, 1] = 1.0, 0.0, 0.0, 1.0
    texture[1, 1] = -5.0  # unpainted, must be replaced
    mask = np.full((3, 3), 255, np.uint8)
    mask[1, 1] = 0
    return dict(texture=texture, mask=mask, vtx_pos=vtx_pos, vtx_uv=vtx_uv, pos_idx=faces, uv_idx=faces.copy())


@pytest.mark.parametrize("backend", ["python", pytest.param("cpp", marks=needs_cpp)])
@pytest.mark.parametrize("method", ["smooth", "forward"])
def test_fan_by_hand(method, backend):
    mesh = fan_mesh()
    tex, msk, st = run(mesh, method, backend)
    # G[0] = [1, 2, 3, 4], weights 1/d^2 = 1, 1/4, 1, 1/4; colours 1, 0, 0, 1
    # -> (1 * 1 + 0.25 * 0 + 1 * 0 + 0.25 * 1) / 2.5 = 0.5
    expected = mesh["texture"].copy()
    expected[1, 1] = 0.5
    np.testing.assert_array_equal(tex, expected)
    np.testing.assert_array_equal(msk, np.full((3, 3), 255, np.uint8))
    if method == "smooth":
        # the list holds vertex 0 four times; pass 1 colours it (count 0 == last 0 -> 1 left),
        # pass 2 changes nothing (-> 0 left)
        assert (st.iterations, st.list_entries, st.last_uncolored, st.colored_vertices) == (2, 4, 0, 5)
    else:
        assert (st.iterations, st.colored_vertices) == (2, 5)  # layer 1 reaches 0, layer 2 is empty


@needs_cpp
def test_directed_neighbours_quirk():
    """Neighbours come from directed corner edges p -> next(p) only. Square 0-1-2 / 1-3-2:
    G[3] = [2], so vertex 3 copies vertex 2 and ignores vertex 1, although 1-3 is an edge."""
    vtx_pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    vtx_uv = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)  # texels (1,0) (1,1) (0,0) (0,1)
    faces = np.array([[0, 1, 2], [1, 3, 2]], np.int32)
    texture = np.zeros((2, 2, 1), np.float32)
    texture[1, 0], texture[1, 1], texture[0, 0] = 1.0, 10.0, 100.0
    mask = np.array([[255, 0], [255, 255]], np.uint8)
    for backend in IMPLS:
        for method in ("smooth", "forward"):
            tex, msk, _ = mp.mesh_vertex_inpaint(texture, mask, vtx_pos, vtx_uv, faces, faces, method=method,
                                                 backend=backend, return_stats=True)
            # smooth: vertex 3 reads G[3] = [2]. forward: 3 is reached from p with 3 in G[p]: only 1.
            assert tex[0, 1, 0] == (100.0 if method == "smooth" else 10.0)
            assert msk[0, 1] == 255


@needs_cpp
def test_painted_vertex_in_list_is_resmoothed_and_last_corner_wins():
    """A vertex with one painted and one unpainted corner (a UV seam) is coloured in step 1 but
    is also in the list, so the smooth method overwrites its colour with the neighbour average
    and writes that into both corner texels, the painted one included. Forward keeps it."""
    # fan again, but vertex 1 has a second corner (face 3 uses UV row 5) on an unpainted texel
    mesh = fan_mesh()
    mesh["vtx_uv"] = np.concatenate([mesh["vtx_uv"], [[0.0, 1.0]]]).astype(np.float32)  # texel (0, 0)
    mesh["uv_idx"] = mesh["uv_idx"].copy()
    mesh["uv_idx"][3, 2] = 5
    mesh["mask"] = mesh["mask"].copy()
    mesh["mask"][0, 0] = 0
    for backend in IMPLS:
        tex, msk, st = run(mesh, "smooth", backend)
        # list = [0, 0, 0, 0, 1] (face 3's corners are 0, 4, 1): pass 1 gives vertex 0 the fan's 0.5,
        # then vertex 1 (G[1] = [2, 0]) (0 * 1/5 + 0.5 * 1) / 1.2; later passes keep smoothing both.
        t = literal_inpaint(*mesh.values())[0]
        np.testing.assert_array_equal(tex, t)
        assert tex[1, 2, 0] != 1.0  # vertex 1's painted texel was overwritten
        assert tex[1, 2, 0] == tex[0, 0, 0]  # both of its corners carry its final colour
        assert msk[0, 0] == 255 and st.list_entries == 5
        tex_f, _, _ = run(mesh, "forward", backend)
        assert tex_f[1, 2, 0] == 1.0 and tex_f[0, 0, 0] == 1.0  # painted colour kept, copied to seam


@needs_cpp
def test_later_corner_overrides():
    """Step 1: a vertex painted at two corners keeps the colour of the later corner (in face
    order), and write-back then puts that colour into both texels."""
    vtx_pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    vtx_uv = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)
    pos_idx = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    uv_idx = np.array([[0, 1, 2], [3, 2, 1]], np.int32)  # vertex 0: texel (1,0) then (0,1)
    texture = np.arange(4, dtype=np.float32).reshape(2, 2, 1)
    mask = np.full((2, 2), 255, np.uint8)
    for backend in IMPLS:
        for method in ("smooth", "forward"):
            tex, msk = mp.meshVerticeInpaint(texture, mask, vtx_pos, vtx_uv, pos_idx, uv_idx, method, backend)
            # texels: uv0 (1,0) = 2, uv1 (1,1) = 3, uv2 (0,0) = 0, uv3 (0,1) = 1. Vertex 0 is painted
            # at (1,0) (face 0), then at (0,1) (face 1): it keeps 1 and writes 1 into both texels.
            np.testing.assert_array_equal(tex[..., 0], [[0, 1], [1, 3]])
            np.testing.assert_array_equal(msk, mask)


# ---------------------------------------------------------------------------------------------
# Termination and degenerate inputs
# ---------------------------------------------------------------------------------------------
BACKENDS = ["python", pytest.param("cpp", marks=needs_cpp)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["smooth", "forward"])
def test_empty_mesh(method, backend):
    tex = np.random.default_rng(0).random((4, 5, 3), dtype=np.float32)
    msk = np.zeros((4, 5), np.uint8)
    out_t, out_m, st = mp.mesh_vertex_inpaint(tex, msk, np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32),
                                              np.zeros((0, 3), np.int32), np.zeros((0, 3), np.int32),
                                              method=method, backend=backend, return_stats=True)
    np.testing.assert_array_equal(out_t, tex)
    np.testing.assert_array_equal(out_m, msk)
    assert out_t is not tex and out_m is not msk
    assert st.colored_vertices == 0 and st.list_entries == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["smooth", "forward"])
def test_all_unpainted_mask_changes_nothing(method, backend):
    mesh = chart_grid(1, cover=0.0)
    tex, msk, st = run(mesh, method, backend)
    np.testing.assert_array_equal(tex, mesh["texture"])
    np.testing.assert_array_equal(msk, mesh["mask"])
    assert st.colored_vertices == 0
    if method == "smooth":
        # count N != 0 (-> 3 left), then N, N, N (-> 2, 1, 0): four passes
        assert st.iterations == 4 and st.last_uncolored == st.list_entries == mesh["pos_idx"].size


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["smooth", "forward"])
def test_all_painted_mask(method, backend):
    mesh = chart_grid(2, cover=1.0)
    tex, msk, st = run(mesh, method, backend)
    assert (msk == 255).all() and st.list_entries == 0 and st.colored_vertices == mesh["vtx_pos"].shape[0]
    ref = literal_inpaint(*mesh.values(), method=method)
    np.testing.assert_array_equal(tex, ref[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["smooth", "forward"])
def test_component_without_colour_stays_uncoloured(method, backend):
    a, b = chart_grid(4, n=6, cover=1.0), chart_grid(5, n=6, cover=1.0)
    V, T = a["vtx_pos"].shape[0], a["vtx_uv"].shape[0]
    # put both components into one texture: b's UVs on the left half, a's on the right half
    uv_a = a["vtx_uv"] * np.float32([0.5, 1]) + np.float32([0.5, 0])
    uv_b = b["vtx_uv"] * np.float32([0.5, 1])
    mask = np.zeros((48, 48), np.uint8)
    mask[:, 26:] = 255  # only a's side is painted
    mesh = dict(texture=a["texture"], mask=mask, vtx_pos=np.concatenate([a["vtx_pos"], b["vtx_pos"] + 100]),
                vtx_uv=np.concatenate([uv_a, uv_b]), pos_idx=np.concatenate([a["pos_idx"], b["pos_idx"] + V]),
                uv_idx=np.concatenate([a["uv_idx"], b["uv_idx"] + T]))
    tex, msk, st = run(mesh, method, backend)
    # b's texels are in columns <= 22, a's in columns >= 24
    np.testing.assert_array_equal(msk[:, :24], 0)
    np.testing.assert_array_equal(tex[:, :24], mesh["texture"][:, :24])
    assert st.colored_vertices == V


@needs_cpp
def test_adverse_order_needs_many_passes():
    """A strip listed away from its only painted vertex colours one step per pass; with k steps
    the loop makes 2k + 2 passes (k passes that change the count, then as many that do not)."""
    n = 12
    pos = np.array([[i // 2, i % 2, 0] for i in range(n)], np.float32)
    faces = np.array([[i, i + 1, i + 2] if i % 2 == 0 else [i + 1, i, i + 2] for i in range(n - 2)], np.int32)
    uv = np.array([[i / (n - 1), 0.0] for i in range(n)], np.float32)  # texel (0, i) of a 1 x n texture
    texture = np.arange(n, dtype=np.float32).reshape(1, n, 1)
    mask = np.zeros((1, n), np.uint8)
    mask[0, n - 1] = 255
    results = [mp.mesh_vertex_inpaint(texture, mask, pos, uv, faces, faces, backend=be, return_stats=True)
               for be in IMPLS]
    ref = literal_inpaint(texture, mask, pos, uv, faces, faces)
    for tex, msk, st in results:
        np.testing.assert_array_equal(tex, ref[0])
        assert st.iterations == ref[2] and st.iterations > 10
        assert (msk == 255).all()


# ---------------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------------
def test_torch_inputs_and_dtype_conversion():
    torch = pytest.importorskip("torch")
    mesh = chart_grid(9, cover=0.5)
    ref_t, ref_m = mp.meshVerticeInpaint(**mesh)
    tt = {k: torch.from_numpy(v) for k, v in mesh.items()}
    tt["pos_idx"] = tt["pos_idx"].long()
    tt["vtx_pos"] = tt["vtx_pos"].double().requires_grad_(True)
    out_t, out_m = mp.meshVerticeInpaint(**tt)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32 and out_m.dtype == torch.uint8
    np.testing.assert_array_equal(out_t.numpy(), ref_t)
    np.testing.assert_array_equal(out_m.numpy(), ref_m)
    # numpy texture -> numpy out, whatever the other arguments are
    t2, _ = mp.meshVerticeInpaint(mesh["texture"], tt["mask"], tt["vtx_pos"], tt["vtx_uv"], tt["pos_idx"],
                                  tt["uv_idx"])
    assert isinstance(t2, np.ndarray)
    # float64 / int64 / bool mask / non-contiguous inputs are converted
    m2 = dict(mesh, texture=mesh["texture"].astype(np.float64), mask=mesh["mask"] > 0,
              uv_idx=mesh["uv_idx"].astype(np.int64), vtx_uv=np.asfortranarray(mesh["vtx_uv"]))
    t3, m3 = mp.meshVerticeInpaint(**m2)
    np.testing.assert_array_equal(t3, ref_t)
    np.testing.assert_array_equal(m3 > 0, ref_m > 0)


@needs_cpp
def test_inputs_not_modified():
    mesh = chart_grid(11, cover=0.3)
    before = {k: v.copy() for k, v in mesh.items()}
    for be in IMPLS:
        for method in ("smooth", "forward"):
            mp.meshVerticeInpaint(**mesh, method=method, backend=be)
            for k in mesh:
                np.testing.assert_array_equal(mesh[k], before[k])


def test_hunyuan_named_entry_points():
    mesh = chart_grid(12, cover=0.5)
    a = mp.meshVerticeInpaint_smooth(*mesh.values())
    b = mp.meshVerticeInpaint(*mesh.values(), method="smooth")
    c = mp.meshVerticeInpaint_forward(*mesh.values())
    d = mp.meshVerticeInpaint(*mesh.values(), method="forward")
    _nan_equal(a, b)
    _nan_equal(c, d)


def test_auto_falls_back_to_python(monkeypatch):
    mesh = chart_grid(13, cover=0.5)
    monkeypatch.setattr(inpaint, "_compiled", lambda: None)
    _, _, st = run(mesh)
    assert st.backend == "python"
    with pytest.raises(RuntimeError, match="backend='cpp'"):
        run(mesh, backend="cpp")


@pytest.mark.parametrize("change,exc,match", [
    (dict(texture=np.zeros((4, 4), np.float32)), ValueError, "texture must have shape"),
    (dict(texture=np.zeros((4, 4, 0), np.float32)), ValueError, "texture must have H, W, C >= 1"),
    (dict(texture=np.zeros((4, 4, 3), np.uint8)), TypeError, "texture must have a floating-point"),
    (dict(mask=np.zeros((4, 5), np.uint8)), ValueError, "mask must have shape"),
    (dict(mask=np.zeros((4, 4), np.float32)), TypeError, "mask must be uint8"),
    (dict(vtx_pos=np.zeros((4, 2), np.float32)), ValueError, "vtx_pos must have shape"),
    (dict(vtx_pos=np.zeros((4, 3), np.int32)), TypeError, "vtx_pos must have a floating-point"),
    (dict(vtx_uv=np.zeros((4, 3), np.float32)), ValueError, "vtx_uv must have shape"),
    (dict(pos_idx=np.zeros((2, 4), np.int32)), ValueError, "pos_idx must have shape"),
    (dict(pos_idx=np.zeros((2, 3), np.float32)), TypeError, "pos_idx must have an integer"),
    (dict(uv_idx=np.zeros((2, 3), bool)), TypeError, "uv_idx must have an integer"),
    (dict(uv_idx=np.zeros((3, 3), np.int32)), ValueError, "same number of faces"),
    (dict(pos_idx=np.array([[0, 1, 2], [0, 1, 4]], np.int32)), ValueError, r"pos_idx\[1, 2\] = 4"),
    (dict(pos_idx=np.array([[0, -1, 2], [0, 1, 3]], np.int32)), ValueError, r"pos_idx\[0, 1\] = -1"),
    (dict(uv_idx=np.array([[0, 1, 2], [2 ** 40, 1, 3]], np.int64)), ValueError, "uv_idx must index vtx_uv"),
    (dict(vtx_uv=np.array([[0, 0], [1, 0], [0, 1], [1.2, 1]], np.float32)), ValueError, r"vtx_uv\[3\].*outside"),
    (dict(vtx_uv=np.array([[0, 0], [1, 0], [0, np.nan], [1, 1]], np.float32)), ValueError, r"vtx_uv\[2\]"),
    (dict(vtx_uv=np.array([[0, 0], [1, 0], [0, -0.3], [1, 1]], np.float32)), ValueError, r"vtx_uv\[2\]"),
    (dict(method="linear"), ValueError, "method must be one of"),
    (dict(backend="gpu"), ValueError, "backend must be one of"),
    (dict(texture="abc"), TypeError, "texture must have a floating-point"),
])
def test_bad_inputs_raise_clear_errors(change, exc, match):
    args = dict(texture=np.zeros((4, 4, 3), np.float32), mask=np.zeros((4, 4), np.uint8),
                vtx_pos=np.zeros((4, 3), np.float32), vtx_uv=np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32),
                pos_idx=np.array([[0, 1, 2], [0, 2, 3]], np.int32), uv_idx=np.array([[0, 1, 2], [0, 2, 3]], np.int32))
    args.update(change)
    with pytest.raises(exc, match=match):
        mp.mesh_vertex_inpaint(**args)


def test_unreferenced_bad_uv_rows_are_fine():
    """A UV row that no face uses may hold anything: it is not validated and changes nothing."""
    args = fan_mesh()
    want = mp.meshVerticeInpaint(**args)
    args["vtx_uv"] = np.concatenate([args["vtx_uv"], [[5.0, np.nan]]]).astype(np.float32)
    got = mp.meshVerticeInpaint(**args)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[0][1, 1, 0] == 0.5  # the fan's hand-computed value (test_fan_by_hand)


@pytest.mark.parametrize("backend", BACKENDS)
def test_uv_rounding_is_half_away_from_zero(backend):
    """C's round(): u * (W - 1) = 0.5 * 5 = 2.5 -> column 3 and (1 - v) * (H - 1) = 0.625 * 4 = 2.5
    -> row 3 (Python's / numpy's round() would give 2 for both)."""
    tex = np.zeros((5, 6, 1), np.float32)
    mask = np.zeros((5, 6), np.uint8)
    mask[4, 0] = 255  # texel of uv (0, 0)
    tex[4, 0] = 9.0
    uv = np.array([[0.5, 0.375], [0.0, 0.0]], np.float32)
    out, msk = mp.meshVerticeInpaint(tex, mask, np.eye(3, dtype=np.float32), uv, np.array([[0, 1, 2]], np.int32),
                                     np.array([[0, 1, 1]], np.int32), backend=backend)
    assert msk[3, 3] == 255 and out[3, 3, 0] == 9.0
    assert msk[2, 2] == 0 and (msk > 0).sum() == 2


@needs_cpp
def test_compiled_binding_checks_indices_itself():
    """The C++ entry point re-checks what Python validates (last line of defence)."""
    ext = inpaint._compiled()
    mesh = fan_mesh()
    out_t, out_m = np.empty_like(mesh["texture"]), np.empty_like(mesh["mask"])
    bad = mesh["pos_idx"].copy()
    bad[2, 1] = 99
    with pytest.raises(IndexError, match="pos_idx"):
        ext.mesh_vertex_inpaint(mesh["texture"], mesh["mask"], mesh["vtx_pos"], mesh["vtx_uv"], bad,
                                mesh["uv_idx"], 0, out_t, out_m)
    far = mesh["vtx_uv"].copy()
    far[0] = [3.0, 0.5]
    with pytest.raises(IndexError, match="vtx_uv"):
        ext.mesh_vertex_inpaint(mesh["texture"], mesh["mask"], mesh["vtx_pos"], far, mesh["pos_idx"],
                                mesh["uv_idx"], 0, out_t, out_m)
    with pytest.raises(ValueError, match="mask"):
        ext.mesh_vertex_inpaint(mesh["texture"], mesh["mask"][:2], mesh["vtx_pos"], mesh["vtx_uv"], mesh["pos_idx"],
                                mesh["uv_idx"], 0, out_t, out_m)
