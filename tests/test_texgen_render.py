"""texgen Renderer and RasterCache: one rasterization per view, never stale, bounded, thread-safe;
maps agree with render_npu.interpolate; texel-space conventions."""
import threading
import time

import numpy as np
import pytest
import torch
import trimesh

import render_npu
import texgen.render as trender
from texgen import Camera, Mesh, RasterCache, Renderer, TexturePipeline, hunyuan_cameras, load_mesh, unwrap
from texgen.demo import demo_mesh
from texgen.mesh import vertex_normals
from texgen.render import bilinear_sample
from conftest import TEXGEN_BACKEND as BACKEND



@pytest.fixture(scope="module")
def sphere():
    return load_mesh(trimesh.creation.icosphere(subdivisions=2, radius=0.5))


class Counter:
    def __init__(self, monkeypatch):
        self.calls = []
        real = render_npu.rasterize

        def counting(resolution, faces, pos, **kw):
            self.calls.append(tuple(resolution) if not isinstance(resolution, int) else resolution)
            return real(resolution, faces, pos, **kw)

        monkeypatch.setattr(trender.render_npu, "rasterize", counting)


def test_standard_flow_rasterizes_each_view_once(monkeypatch):
    counter = Counter(monkeypatch)
    cams = hunyuan_cameras()
    seen = {}

    def source(batch):  # a diffusion-model-like source: uses normal and position maps
        seen["normals"] = batch.normal_maps.shape
        seen["positions"] = batch.position_maps.shape
        seen["masks"] = batch.masks.shape
        return [np.full((48, 48, 3), 0.5, np.float32)] * len(batch.cameras)

    pipe = TexturePipeline(render_size=48, texture_size=32, backend=BACKEND, progress=False, workers=2)
    res = pipe(demo_mesh(1, ring=False), source)
    assert seen == {"normals": (6, 48, 48, 3), "positions": (6, 48, 48, 3), "masks": (6, 48, 48)}
    assert len(counter.calls) == len(cams) + 1  # six views + the UV layout, each once
    # previews of the same views reuse the cache too
    for cam in cams:
        res.renderer.render_textured(cam, 48)
        res.renderer.normal_map(cam, 48, "camera")
    assert len(counter.calls) == len(cams) + 1


def test_cache_never_returns_stale_results(sphere, monkeypatch):
    counter = Counter(monkeypatch)
    m = sphere.copy()
    r = Renderer(m, backend=BACKEND)
    cam = Camera(0, 0)
    a = r.rasterize(cam, 32)
    assert r.rasterize(cam, 32) is a and len(counter.calls) == 1
    b = r.rasterize(cam, 40)  # resolution is part of the key
    assert b.rast.shape[:2] == (40, 40) and len(counter.calls) == 2
    assert r.rasterize(Camera(0.0, 0.0, 1.45), 32) is a  # equal cameras share a key
    m.pos = m.pos * 0.5  # geometry change -> new version -> new raster
    c = r.rasterize(cam, 32)
    assert c is not a and int(c.mask.sum()) < int(a.mask.sum())
    fresh = Renderer(m.copy(), backend=BACKEND).rasterize(cam, 32)
    assert torch.equal(c.rast, fresh.rast) and torch.equal(c.depth, fresh.depth)
    assert not any(k.mesh_version != m.version for k in r.cache._data if k.mesh_uid == m.uid)  # old dropped
    # a different mesh with identical geometry never hits another mesh's entries
    twin = m.copy()
    assert Renderer(twin, backend=BACKEND, cache=r.cache).rasterize(cam, 32) is not c
    # swapping the renderer's mesh
    r.mesh = sphere
    assert int(r.rasterize(cam, 32).mask.sum()) == int(a.mask.sum())
    # texels follow UV changes of the same mesh object
    um = unwrap(load_mesh(trimesh.creation.box()), 32)
    ru = Renderer(um, backend=BACKEND)
    t1 = ru.texels(32)
    um.uv = um.uv * 0.5
    t2 = ru.texels(32)
    assert int(t2.mask.sum()) < int(t1.mask.sum())


def test_cache_bounded():
    c = RasterCache(max_entries=3, max_bytes=10_000)
    for i in range(5):
        c.get_or_compute(("k", i), lambda: torch.zeros(10))
    assert len(c) == 3 and ("k", 0) not in c and ("k", 4) in c and c.evictions == 2
    c.get_or_compute(("big",), lambda: torch.zeros(10_000))  # larger than max_bytes: returned, not kept
    assert ("big",) not in c
    for i in range(10):
        c.get_or_compute(("m", i), lambda: torch.zeros(1000))  # 4000 bytes each
    assert c.nbytes <= 10_000 and len(c) == 2
    with pytest.raises(ValueError):
        RasterCache(max_entries=0)


def test_cache_thread_safe_single_computation():
    c = RasterCache()
    calls = []
    lock = threading.Lock()

    def compute(i):
        def fn():
            with lock:
                calls.append(i)
            time.sleep(0.05)
            return torch.full((3,), float(i))
        return fn

    results = {}
    barrier = threading.Barrier(8)

    def worker(t):
        barrier.wait()
        results[t] = c.get_or_compute(("key", t % 2), compute(t % 2))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls) == [0, 1]  # each key computed exactly once
    assert all(results[t] is results[t % 2] for t in range(8))
    assert c.hits == 6 and c.misses == 2


def test_cache_failure_is_not_cached():
    c = RasterCache()
    with pytest.raises(RuntimeError):
        c.get_or_compute("k", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert c.get_or_compute("k", lambda: 5) == 5


def test_maps_agree_with_render_npu_interpolate(sphere):
    r = Renderer(sphere, backend=BACKEND)
    cam = Camera(20, 30)
    ras = r.rasterize(cam, 40)
    faces = torch.from_numpy(np.array(sphere.pos_idx))
    ref = render_npu.interpolate(torch.from_numpy(np.array(sphere.pos, np.float32)), ras.rast[None], faces)[0]
    # positions are unprojected from the depth map: equal up to float rounding of z/w
    torch.testing.assert_close(r.position_map(cam, 40), ref, atol=2e-4, rtol=0)
    vn = torch.from_numpy(vertex_normals(sphere.pos, sphere.pos_idx))
    nref = torch.nn.functional.normalize(render_npu.interpolate(vn, ras.rast[None], faces)[0], dim=-1)
    torch.testing.assert_close(r.normal_map(cam, 40), nref, atol=1e-6, rtol=0)
    n = r.normal_map(cam, 40)
    lens = n[ras.mask].norm(dim=1)
    torch.testing.assert_close(lens, torch.ones_like(lens), atol=1e-5, rtol=0)
    assert torch.all(n[~ras.mask] == 0)
    # sphere: normal ~ position direction; depth = distance along the view axis
    p = r.position_map(cam, 40)[ras.mask]
    assert torch.nn.functional.cosine_similarity(n[ras.mask], p).min() > 0.97
    back = torch.tensor(cam.basis()[2], dtype=torch.float32)
    dist = cam.distance - p @ back
    torch.testing.assert_close(r.depth_map(cam, 40)[ras.mask], dist, atol=1e-4, rtol=0)


def test_camera_space_normals(sphere):
    r = Renderer(sphere, backend=BACKEND)
    for azim in (0, 90, 200):
        cam = Camera(0, azim)
        c = r.normal_map(cam, 33, "camera")[16, 16]
        assert c[2] > 0.97  # the centre of the sphere faces the viewer
        w = r.normal_map(cam, 33, "world")[16, 16]
        torch.testing.assert_close(w, torch.tensor(cam.basis()[2], dtype=torch.float32), atol=0.05, rtol=0)
    # the top of the front view (image row 0 side) has normals pointing up in camera space
    top = r.normal_map(Camera(0, 0), 33, "camera")[3:8, 16]
    assert torch.all(top[:, 1] > 0.5)


def test_texel_raster_convention():
    """Texel (row, col) centre <-> (u, v) = (col / (W - 1), 1 - row / (H - 1))."""
    H, W = 6, 9
    pos = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)  # position = (u, v, 0)
    m = Mesh(pos, [[0, 1, 2], [0, 2, 3]], uv=pos[:, :2], uv_idx=[[0, 1, 2], [0, 2, 3]])
    tx = Renderer(m, backend=BACKEND).texels((H, W))
    assert tx.mask[1:-1, 1:-1].all()  # every interior texel is inside the UV square
    rows, cols = tx.index // W, tx.index % W
    expect = torch.stack([cols / (W - 1), 1 - rows / (H - 1), torch.zeros_like(rows, dtype=torch.float32)], 1)
    torch.testing.assert_close(tx.pos, expect.float(), atol=1e-4, rtol=0)
    # the textured render samples the same convention: a texture whose texel (r, c) is (r, c, 0)
    tex = np.zeros((H, W, 3), np.float32)
    tex[..., 0] = np.arange(H)[:, None] / 10
    tex[..., 1] = np.arange(W)[None, :] / 10
    m.texture = tex
    uv = torch.tensor([[0.5, 0.25]])
    got = bilinear_sample(torch.from_numpy(tex), uv[:, 0] * (W - 1), (1 - uv[:, 1]) * (H - 1))
    torch.testing.assert_close(got[0, :2], torch.tensor([0.75 * (H - 1) / 10, 0.5 * (W - 1) / 10]))


def test_bilinear_sample():
    img = torch.arange(12, dtype=torch.float32).view(3, 4, 1)
    x = torch.tensor([0.0, 3.0, 1.5, -2.0, 0.5])
    y = torch.tensor([0.0, 2.0, 1.0, 0.0, 0.5])
    torch.testing.assert_close(bilinear_sample(img, x, y)[:, 0], torch.tensor([0.0, 11.0, 5.5, 0.0, 2.5]))


def test_render_textured_vertex_colors_and_errors(sphere):
    m = sphere.copy(vertex_colors=np.tile([[0.2, 0.4, 0.6]], (sphere.num_vertices, 1)))
    r = Renderer(m, backend=BACKEND)
    img = r.render_textured(Camera(), 24, background=(1, 0, 1))
    mask = r.mask(Camera(), 24)
    torch.testing.assert_close(img[mask], torch.tensor([0.2, 0.4, 0.6]).expand(int(mask.sum()), 3))
    assert torch.all(img[~mask] == torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="nothing to render"):
        Renderer(sphere, backend=BACKEND).render_textured(Camera(), 8)
    with pytest.raises(ValueError, match="no UVs"):
        Renderer(sphere, backend=BACKEND).texels(8)
    with pytest.raises(ValueError):
        Renderer(sphere, backend=BACKEND).normal_map(Camera(), 8, space="screen")


def test_view_batch_maps_match_renderer_and_are_computed_once(sphere):
    from texgen import ViewBatch

    r = Renderer(sphere, backend=BACKEND)
    cams = hunyuan_cameras()
    batch = ViewBatch(r, cams, 24, workers=3)
    n, p, m = batch.normal_maps, batch.position_maps, batch.masks
    assert batch.normal_maps is n and batch.position_maps is p
    for i, cam in enumerate(cams):
        assert torch.equal(n[i], r.normal_map(cam, 24))
        assert torch.equal(p[i], r.position_map(cam, 24))
        assert torch.equal(m[i], r.mask(cam, 24))
    cn = batch.camera_normal_maps
    assert torch.all(cn[0][m[0]][:, 2] > -0.2)  # camera space: mostly facing the viewer
    assert len(batch.position_images()) == 6


def test_pipeline_rejects_wrong_image_counts():
    from texgen import ImageSource

    pipe = TexturePipeline(render_size=16, texture_size=16, backend=BACKEND, progress=False)
    mesh = demo_mesh(1, ring=False)
    with pytest.raises(ValueError, match="5 images for 6 cameras"):
        pipe(mesh, ImageSource([np.zeros((16, 16, 3), np.float32)] * 5))
    with pytest.raises(ValueError, match="returned 2 images for 6 cameras"):
        pipe(mesh, lambda batch: [np.zeros((16, 16, 3), np.float32)] * 2)
    with pytest.raises(TypeError):
        pipe(mesh, 42)
