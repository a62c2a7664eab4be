"""texgen.export: GLB and OBJ round trips keep geometry, UVs, texture and vertex colours."""
import numpy as np
import pytest

from texgen import Mesh, export_glb, export_mesh, export_obj, load_mesh, normalize, to_trimesh


def textured_quad():
    """Two triangles sharing an edge whose two ends have different UVs in each triangle (a seam),
    at an offset from the origin, with a 4x4 texture of distinct colours."""
    pos = np.array([[10, 20, 30], [11, 20, 30], [11, 21, 30], [10, 21, 30]], np.float64)
    pos_idx = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    uv = np.array([[0, 0], [0.5, 0], [0.5, 0.5], [0.6, 0.6], [1, 1], [0.6, 1]], np.float32)
    uv_idx = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    tex = (np.arange(48, dtype=np.float32).reshape(4, 4, 3) * 5 + 10) / 255.0
    return Mesh(pos, pos_idx, uv, uv_idx, texture=tex, name="quad")


def corners(m):
    """(position, uv) of every face corner, in face order."""
    return m.pos[m.pos_idx.reshape(-1)], m.uv[m.uv_idx.reshape(-1)]


@pytest.mark.parametrize("ext", [".glb", ".obj"])
def test_round_trip(tmp_path, ext):
    m = textured_quad()
    path = export_mesh(m, tmp_path / f"quad{ext}")
    back = load_mesh(path)
    assert back.num_faces == 2
    p0, uv0 = corners(m)
    p1, uv1 = corners(back)
    np.testing.assert_allclose(p1, p0, atol=1e-5)
    np.testing.assert_allclose(uv1, uv0, atol=1e-6)
    np.testing.assert_allclose(back.texture[..., :3], m.texture, atol=0.5 / 255)  # 8-bit PNG


def test_seams_split_vertices_once_per_position_uv_pair():
    tm = to_trimesh(textured_quad())
    assert len(tm.vertices) == 6 and len(tm.faces) == 2  # 4 positions, 6 (position, uv) pairs


def test_original_frame_unless_normalized(tmp_path):
    m = normalize(textured_quad())
    assert np.abs(m.pos).max() < 1  # cameras' frame
    out = load_mesh(export_glb(m, tmp_path / "a.glb"))
    np.testing.assert_allclose(corners(out)[0], corners(textured_quad())[0], atol=1e-4)
    out = load_mesh(export_glb(m, tmp_path / "b.glb", normalized=True))
    np.testing.assert_allclose(corners(out)[0], corners(m)[0], atol=1e-5)


def test_texture_argument_overrides_the_mesh_texture(tmp_path):
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 1
    out = load_mesh(export_glb(textured_quad(), tmp_path / "r.glb", texture=red))
    np.testing.assert_allclose(out.texture[..., :3], red)


def test_obj_writes_material_and_texture_beside_it(tmp_path):
    path = export_obj(textured_quad(), tmp_path / "quad.obj")
    text = open(path).read()
    assert "mtllib quad.mtl" in text and (tmp_path / "quad.mtl").exists()
    tex_name = next(ln.split()[1] for ln in open(tmp_path / "quad.mtl") if ln.startswith("map_Kd"))
    assert (tmp_path / tex_name).stat().st_size > 0


def test_vertex_colours_without_texture(tmp_path):
    m = textured_quad()
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], np.float32)
    plain = Mesh(m.pos, m.pos_idx, vertex_colors=colours)
    back = load_mesh(export_glb(plain, tmp_path / "vc.glb"))
    assert back.texture is None
    # per face corner (loading may renumber vertices)
    np.testing.assert_allclose(back.vertex_colors[back.pos_idx.reshape(-1), :3], colours[m.pos_idx.reshape(-1)],
                               atol=0.5 / 255)
    np.testing.assert_allclose(back.pos[back.pos_idx.reshape(-1)], m.pos[m.pos_idx.reshape(-1)], atol=1e-5)


def test_unsupported_extension(tmp_path):
    with pytest.raises(ValueError, match=r"unsupported output format '\.fbx': use \.glb or \.obj"):
        export_mesh(textured_quad(), tmp_path / "x.fbx")
