"""Thread determinism (docs/robustness.md): the compiled backend gives bitwise identical results
for any ``num_threads``, and concurrent calls from several Python threads -- on the same mesh and on
different meshes -- give exactly what sequential calls give. Same for ``meshVerticeInpaint``."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import render_npu
from render_npu import mesh_processor as mp
from render_npu.meshes import look_at, perspective, sphere_with_faces, to_clip

needs_cpu = pytest.mark.compiled("rasterize")


def _scene(n_faces: int, seed: int, batch: int = 2):
    """A sphere seen in perspective from close by (some faces cross the near plane, so clipping and
    w <= 0 run), plus a copy of its first faces (exact depth ties: the lower id must win), plus a
    few large random triangles. Returns pos float32 [B, V, 4], faces int32 [F, 3]."""
    rng = np.random.default_rng(seed)
    verts, faces = sphere_with_faces(n_faces)
    poses = []
    for b in range(batch):
        eye = rng.normal(size=3)
        eye = eye / np.linalg.norm(eye) * rng.uniform(1.05, 2.5)
        mvp = perspective(rng.uniform(40, 90), 0.1, 10.0) @ look_at(eye)
        poses.append(to_clip(verts, mvp))
    pos = np.stack(poses)
    big = rng.uniform(-1.5, 1.5, size=(batch, 12, 4)).astype(np.float32)
    big[..., 3] = rng.uniform(0.5, 2.0, size=(batch, 12))
    V = pos.shape[1]
    pos = np.concatenate([pos, big], axis=1)
    extra = V + rng.integers(0, 12, size=(4, 3))
    faces = np.concatenate([faces, faces[:200], extra]).astype(np.int32)
    return torch.from_numpy(pos), torch.from_numpy(faces)


SCENES = {
    "sphere": dict(n_faces=20_000, seed=1),
    "small": dict(n_faces=2_000, seed=2),
}


def _raster(pos, faces, res=(192, 256), **kw):
    return render_npu.rasterize(res, faces, pos, backend="cpu", **kw)


def _same(a, b):
    return torch.equal(a.rast, b.rast) and torch.equal(a.depth, b.depth)


@needs_cpu
@pytest.mark.parametrize("viewport", ["align_corners", "opengl"])
def test_thread_count_does_not_change_the_result(viewport):
    pos, faces = _scene(**SCENES["sphere"])
    base = _raster(pos, faces, num_threads=1, viewport=viewport)
    assert (base.rast[..., 3] > 0).float().mean() > 0.2  # the scene is not empty
    for n in (2, 3, 4, 8):
        out = _raster(pos, faces, num_threads=n, viewport=viewport)
        assert _same(base, out), f"num_threads={n} differs from num_threads=1"


@needs_cpu
def test_thread_count_more_threads_than_work():
    """More threads than tiles or faces: still identical (idle threads must not disturb anything)."""
    pos, faces = _scene(n_faces=50, seed=3, batch=3)
    base = _raster(pos, faces, res=(5, 7), num_threads=1)
    for n in (2, 8, 64):
        assert _same(base, _raster(pos, faces, res=(5, 7), num_threads=n)), n


@needs_cpu
def test_matches_reference_on_the_thread_scene():
    """The scene used above is rasterized correctly (cpu == reference, bitwise), so the determinism
    checks compare right answers, not merely repeatable ones."""
    pos, faces = _scene(n_faces=300, seed=4, batch=1)
    ref = render_npu.rasterize((40, 48), faces, pos, backend="reference")
    out = render_npu.rasterize((40, 48), faces, pos, backend="cpu", num_threads=4)
    assert _same(ref, out)


@needs_cpu
@pytest.mark.parametrize("threads_per_call", [1, 2])
def test_concurrent_calls_same_mesh(threads_per_call):
    pos, faces = _scene(**SCENES["sphere"])
    expected = _raster(pos, faces, num_threads=threads_per_call)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: _raster(pos, faces, num_threads=threads_per_call), range(12)))
    for i, out in enumerate(results):
        assert _same(expected, out), f"concurrent call {i} differs from the sequential result"


@needs_cpu
def test_concurrent_calls_different_meshes():
    jobs = []
    for i, (name, kw) in enumerate(SCENES.items()):
        pos, faces = _scene(**kw)
        for res, viewport, cull in (((192, 256), "align_corners", False), ((100, 64), "opengl", True)):
            jobs.append((pos, faces, res, dict(viewport=viewport, cull_backfaces=cull, num_threads=1 + i)))
    expected = [_raster(p, f, r, **kw) for p, f, r, kw in jobs]
    order = list(range(len(jobs))) * 3
    np.random.default_rng(0).shuffle(order)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(lambda j: _raster(jobs[j][0], jobs[j][1], jobs[j][2], **jobs[j][3]), order))
    for j, out in zip(order, results):
        assert _same(expected[j], out), f"job {j} differs under concurrency"


@needs_cpu
def test_concurrent_calls_with_errors_mixed_in():
    """A call that fails validation or inside the compiled code does not disturb calls running
    beside it, and leaves nothing behind."""
    pos, faces = _scene(**SCENES["small"])
    expected = _raster(pos, faces, num_threads=2)
    bad = faces.clone()
    bad[5, 1] = pos.shape[1]

    def call(i):
        if i % 3 == 0:
            with pytest.raises(ValueError, match="faces"):
                _raster(pos, bad, num_threads=2)
            return None
        return _raster(pos, faces, num_threads=2)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(call, range(12)))
    for out in results:
        assert out is None or _same(expected, out)


# ---------------------------------------------------------------------------------------------
# meshVerticeInpaint


def _inpaint_case(seed: int, n_faces: int = 4000, size: int = 128):
    rng = np.random.default_rng(seed)
    verts, faces = sphere_with_faces(n_faces)
    uv = rng.uniform(0, 1, size=(verts.shape[0], 2)).astype(np.float32)
    texture = rng.uniform(0, 1, size=(size, size, 3)).astype(np.float32)
    mask = (rng.uniform(size=(size, size)) < 0.3).astype(np.uint8) * 255
    return texture, mask, verts, uv, faces, faces.copy()


@pytest.mark.compiled("mesh_vertex_inpaint")
@pytest.mark.parametrize("method", ["smooth", "forward"])
def test_inpaint_concurrent_calls(method):
    cases = [_inpaint_case(s) for s in (1, 2, 3)]

    def run(i):
        return mp.meshVerticeInpaint(*cases[i % 3], method=method, backend="cpp")

    expected = [run(i) for i in range(3)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run, range(12)))
    for i, (tex, mask) in enumerate(results):
        np.testing.assert_array_equal(tex, expected[i % 3][0])
        np.testing.assert_array_equal(mask, expected[i % 3][1])
    py = mp.meshVerticeInpaint(*cases[0], method=method, backend="python")
    np.testing.assert_array_equal(py[0], expected[0][0])
    np.testing.assert_array_equal(py[1], expected[0][1])


def test_split_intra_op_threads_nests_and_restores():
    """render_npu._threads: one setting shared by nested users (the torch backend's chunk workers,
    texgen's and the Hunyuan3D path's view pools): divided while any runs, the caller's value
    restored when the last leaves, also after users on other threads; devices and one worker: no
    change."""
    import threading

    import torch

    from render_npu._threads import one_intra_op_thread, split_intra_op_threads

    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        with split_intra_op_threads(2, "cpu"):
            assert torch.get_num_threads() == 2
            with one_intra_op_thread("cpu"):  # nested: the setting is left as the first user made it
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 4
        with split_intra_op_threads(1, "cpu"), split_intra_op_threads(8, "meta"):
            assert torch.get_num_threads() == 4
        with split_intra_op_threads(4, "cpu"):
            seen = []
            worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
            worker.start()
            worker.join()
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
