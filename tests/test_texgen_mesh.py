"""texgen mesh preparation: loading, welding, normalisation, unwrapping, versioning, errors."""
import numpy as np
import pytest
import trimesh

from texgen import Mesh, MeshError, load_mesh, normalize, prepare_mesh, unwrap
from texgen.export import export_glb, export_obj
from texgen.mesh import DEFAULT_RADIUS, vertex_normals


def _textured_box():
    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    box.apply_translation((3.0, -1.0, 0.25))
    m = load_mesh(box)
    m = unwrap(m, 64)
    tex = np.zeros((8, 8, 3), np.float32)
    tex[..., 0] = np.linspace(0, 1, 8)[None, :]
    m.texture = tex
    return m


@pytest.mark.parametrize("ext", ["obj", "ply", "glb", "stl"])
def test_load_formats(tmp_path, ext):
    sphere = trimesh.creation.icosphere(subdivisions=1)
    path = tmp_path / f"s.{ext}"
    sphere.export(path)
    m = load_mesh(path)
    assert m.num_faces == 80 and m.num_vertices == 42  # welded back to the shared vertices
    assert m.pos.dtype == np.float64 and m.pos_idx.dtype == np.int32


def test_textured_round_trip_keeps_separate_index_buffers(tmp_path):
    m = _textured_box()
    for name, fn in (("box.obj", export_obj), ("box.glb", export_glb)):
        fn(m, tmp_path / name)
        back = load_mesh(tmp_path / name)
        assert back.has_uv and back.texture is not None and back.texture.shape == (8, 8, 3)
        assert back.num_vertices == 8  # positions welded across seams ...
        assert back.uv.shape[0] > 8  # ... UVs split
        assert back.pos_idx.shape == back.uv_idx.shape == (12, 3)
        # the same surface: corner positions and UVs agree face by face (up to face order)
        def corners(mm):
            c = np.concatenate([mm.pos[mm.pos_idx].reshape(-1, 3), mm.uv[mm.uv_idx].reshape(-1, 2)], 1)
            return c[np.lexsort(np.round(c, 3).T[::-1])]
        np.testing.assert_allclose(corners(back), corners(m), atol=1e-5)
    assert (tmp_path / "box.mtl").exists() and list(tmp_path.glob("*.png"))


def test_vertex_colors_loaded(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=1)
    sphere.visual.vertex_colors = np.tile([255, 0, 0, 255], (len(sphere.vertices), 1))
    sphere.export(tmp_path / "c.ply")
    m = load_mesh(tmp_path / "c.ply")
    assert m.vertex_colors is not None and np.allclose(m.vertex_colors, [1, 0, 0])


def test_normalize_hunyuan_convention():
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(48, 3)) * [3, 1, 2] + [10, -4, 2]
    m = Mesh(pos, rng.permutation(48).reshape(16, 3))
    n = normalize(m)
    lo, hi = n.pos.min(0), n.pos.max(0)
    np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-6)  # bounding-box centre at the origin
    assert np.linalg.norm(n.pos, axis=1).max() == pytest.approx(DEFAULT_RADIUS, rel=1e-6)
    np.testing.assert_allclose(n.original_positions(), m.pos, atol=1e-4)
    # a second mesh placed in the first one's frame
    moved = normalize(m.copy(pos=m.pos + 0.0), like=n)
    np.testing.assert_allclose(moved.pos, n.pos, atol=1e-6)
    assert n.uid != m.uid
    # vertices no face uses do not move the frame
    extra = Mesh(np.concatenate([pos, [[100.0, 100.0, 100.0]]]), m.pos_idx)
    np.testing.assert_allclose(normalize(extra).pos[:48], n.pos, atol=1e-6)


def test_unwrap_splits_uvs_keeps_positions():
    m = load_mesh(trimesh.creation.icosphere(subdivisions=2))
    u = unwrap(m, 256)
    np.testing.assert_array_equal(u.pos_idx, m.pos_idx)
    np.testing.assert_array_equal(u.pos, m.pos)
    assert u.uv.shape[0] > u.num_vertices and u.uv_idx.shape == u.pos_idx.shape
    assert u.uv.min() >= 0 and u.uv.max() <= 1
    p = prepare_mesh(trimesh.creation.icosphere(subdivisions=2), 256)
    assert p.has_uv and p.normalization is not None
    with pytest.raises(MeshError):
        prepare_mesh(trimesh.creation.icosphere(subdivisions=1), 64, unwrap_mode="never")


def test_version_tracking_and_read_only_buffers():
    m = load_mesh(trimesh.creation.icosphere(subdivisions=1))
    v0, a0 = m.version, m.appearance_version
    with pytest.raises(ValueError):
        m.pos[0, 0] = 5.0  # buffers are read-only: in-place edits cannot bypass the version
    m.pos = m.pos * 2
    assert m.version == v0 + 1
    m.texture = np.zeros((4, 4, 3), np.float32)
    assert m.version == v0 + 1 and m.appearance_version == a0 + 1  # appearance does not touch rasters
    m.touch()
    assert m.version == v0 + 2
    with pytest.raises(AttributeError):
        m.version = 0
    assert len({Mesh(m.pos, m.pos_idx).uid for _ in range(5)}) == 5


def test_vertex_normals_sphere():
    s = trimesh.creation.icosphere(subdivisions=3)
    n = vertex_normals(np.asarray(s.vertices, np.float32), np.asarray(s.faces, np.int32))
    np.testing.assert_allclose(n, s.vertices / np.linalg.norm(s.vertices, axis=1, keepdims=True), atol=2e-2)


def test_errors(tmp_path):
    with pytest.raises(MeshError, match="not found"):
        load_mesh(tmp_path / "missing.obj")
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"this is not a mesh")
    with pytest.raises(MeshError, match="cannot read|no triangle"):
        load_mesh(bad)
    cloud = trimesh.PointCloud(np.random.default_rng(0).random((10, 3)))
    cloud.export(tmp_path / "cloud.ply")
    with pytest.raises(MeshError, match="no faces|point cloud|no triangle"):
        load_mesh(tmp_path / "cloud.ply")
    with pytest.raises(MeshError, match="no faces"):
        Mesh(np.zeros((3, 3)), np.zeros((0, 3)))
    with pytest.raises(MeshError, match="pos_idx"):
        Mesh(np.zeros((3, 3)), [[0, 1, 3]])
    with pytest.raises(MeshError, match="shape"):
        Mesh(np.zeros((3, 2)), [[0, 1, 2]])
    with pytest.raises(MeshError, match="together"):
        Mesh(np.zeros((3, 3)), [[0, 1, 2]], uv=np.zeros((3, 2)))


def test_multi_geometry_scene_keeps_each_texture(tmp_path):
    """trimesh's own concatenation can swap packed textures between parts; texgen packs them."""
    from texgen import Camera, Renderer
    from texgen.demo import demo_mesh
    from texgen.export import to_trimesh

    parts = []
    for shade, dx in ((0.2, 0.0), (0.8, 2.0)):
        m = unwrap(demo_mesh(1, ring=False), 32)
        m.texture = np.full((8, 8, 3), shade, np.float32)
        tm = to_trimesh(m)
        tm.apply_translation((dx, 0, 0))
        parts.append(tm)
    parts.append(trimesh.creation.box(extents=(0.3, 0.3, 0.3)))  # no texture at all
    parts[-1].apply_translation((1.0, 2.0, 0.0))
    trimesh.Scene(parts).export(tmp_path / "scene.glb")
    m = normalize(load_mesh(tmp_path / "scene.glb"))
    assert m.num_faces == 80 + 80 + 12 and m.texture is not None
    r = Renderer(m)
    img = r.render_textured(Camera(), 64).numpy()
    pm = r.position_map(Camera(), 64).numpy()
    mask = r.mask(Camera(), 64).numpy()
    left = mask & (pm[..., 0] < -0.1) & (pm[..., 1] < 0.0)
    right = mask & (pm[..., 0] > 0.1) & (pm[..., 1] < 0.0)
    np.testing.assert_allclose(img[left], 0.2, atol=1e-4)
    np.testing.assert_allclose(img[right], 0.8, atol=1e-4)
