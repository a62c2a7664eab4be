"""texgen.uv: the atlas is deterministic, never covers a texel twice, keeps charts `padding`
texels apart, bounds the stretch; `texgen unwrap` round-trips a file and stops on Ctrl-C."""
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import render_npu
import torch
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from texgen import Mesh, load_mesh
from texgen.cli import main
from texgen.uv import (HARD_ANGLE, XATLAS_MAX_FACES, atlas_stats, choose_method, mesh_uv_wrap, unwrap,
                       uv_overlap_texels)


def _sphere(subdiv=4, noise=0.0, seed=0):
    ico = trimesh.creation.icosphere(subdivisions=subdiv)
    v = np.asarray(ico.vertices)
    if noise:
        v = v * (1 + noise * np.random.default_rng(seed).standard_normal(len(v)))[:, None]
    return Mesh(v.astype(np.float32), ico.faces, name="sphere")


def _parts(n=60, seed=1):
    """Many small disconnected boxes and spheres at random places and orientations."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n):
        p = trimesh.creation.box(extents=rng.uniform(0.02, 0.1, 3)) if i % 2 else \
            trimesh.creation.icosphere(subdivisions=1, radius=rng.uniform(0.01, 0.05))
        p.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
        p.apply_translation(rng.uniform(-1, 1, 3))
        parts.append(p)
    tm = trimesh.util.concatenate(parts)
    return Mesh(np.asarray(tm.vertices, np.float32), tm.faces, name="parts")


def _shell(n=24, thickness=0.02):
    """A thin wavy plate: top and bottom grids joined by a rim one `thickness` wide."""
    g = np.linspace(-1, 1, n + 1)
    x, z = np.meshgrid(g, g, indexing="ij")
    top = np.stack([x, 0.25 * np.sin(2.5 * x) * np.cos(2 * z), z], -1).reshape(-1, 3)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    tf = np.concatenate([np.stack([a, d, c], 1), np.stack([a, c, b], 1)])
    off = len(top)
    ring = np.concatenate([idx[:, 0], idx[-1, 1:], idx[::-1, -1][1:], idx[0, ::-1][1:-1]])
    r2 = np.roll(ring, -1)
    rim = np.concatenate([np.stack([ring, r2, r2 + off], 1), np.stack([ring, r2 + off, ring + off], 1)])
    pos = np.concatenate([top, top - [0, thickness, 0]])
    return Mesh(pos.astype(np.float32), np.concatenate([tf, tf[:, ::-1] + off, rim]), name="shell")


MESHES = {"noisy sphere": lambda: _sphere(4, 0.01), "parts": _parts, "thin shell": _shell}


def _uv_charts(m):
    """Chart id per face: faces connected through shared UV vertices."""
    T, ti = len(m.uv), m.uv_idx.astype(np.int64)
    g = coo_matrix((np.ones(2 * len(ti)), (np.r_[ti[:, 0], ti[:, 1]], np.r_[ti[:, 1], ti[:, 2]])), shape=(T, T))
    return connected_components(g, directed=False)[1][ti[:, 0]]


def _face_image(m, size):
    uv = torch.from_numpy(m.uv.copy())
    clip = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2, torch.zeros_like(uv[:, 0]), torch.ones_like(uv[:, 0])], 1)
    rast, _ = render_npu.rasterize(size, torch.from_numpy(m.uv_idx.copy()), clip, viewport="align_corners")
    return rast[0, ..., 3].numpy().astype(np.int64) - 1  # face per texel, -1 empty


def _gutter_violations(m, size, padding):
    """Texel pairs of different charts closer than padding + 1 texels (Chebyshev, texel centres
    inside UV triangles)."""
    face = _face_image(m, size)
    chart = np.where(face >= 0, _uv_charts(m)[np.maximum(face, 0)], -1)
    bad = 0
    for dy in range(0, padding + 1):
        for dx in range(-padding, padding + 1):
            if dy == 0 and dx <= 0:
                continue
            a = chart[:size - dy, max(0, -dx):size - max(0, dx)]
            b = chart[dy:, max(0, dx):size - max(0, -dx)]
            bad += int(((a >= 0) & (b >= 0) & (a != b)).sum())
    return bad


@pytest.mark.parametrize("name", sorted(MESHES))
def test_charts_atlas_no_overlap_gutter_and_stretch(name):
    m = MESHES[name]()
    size, pad = 512, 3
    r = unwrap(m, size, pad, method="charts")
    assert np.array_equal(r.pos_idx, m.pos_idx) and np.array_equal(r.pos, m.pos)
    assert r.uv.min() >= 0 and r.uv.max() <= 1
    s = atlas_stats(r, size)
    print(name, s)
    assert s["overlap"] == 0
    # bilinear-safe gutter: `pad` empty texels between the two charts' bilinear footprints (the
    # texels within one texel of their triangles), so covered texels of two charts are >= pad + 3 apart
    assert _gutter_violations(r, size, pad + 2) == 0
    assert s["use"] > 0.35
    assert s["l2"] < 1.1
    # per face: an orthographic projection within HARD_ANGLE of the face normal stretches by at
    # most 1 / cos(HARD_ANGLE) across the slope and not at all along it
    p, t = r.pos.astype(np.float64)[r.pos_idx], r.uv.astype(np.float64)[r.uv_idx]
    e3 = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], 2)  # [F, 3, 2]
    e2 = np.stack([t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]], 2)  # [F, 2, 2]
    keep = np.abs(np.linalg.det(e2)) > 1e-14
    J = e3[keep] @ np.linalg.inv(e2[keep])
    sv = np.linalg.svd(J, compute_uv=False)
    assert (sv[:, 0] / sv[:, 1]).max() <= 1 / math.cos(math.radians(HARD_ANGLE)) * 1.001


def test_wide_gutter_costs_at_most_its_density_bound(monkeypatch):
    """The gutter is widened only while the density stays within WIDE_GUTTER_LOSS of the narrow
    gutter's: compare the charts' scale with and without the extra gutters."""
    from texgen import uv

    m = _sphere(4)
    scales = {}
    for wide in ((), uv.WIDE_GUTTERS):
        monkeypatch.setattr(uv, "WIDE_GUTTERS", wide)
        r = unwrap(m, 512, 2, method="charts")
        # texels per world unit: UV edge length over 3D edge length (one density for all charts)
        p, t = r.pos.astype(np.float64)[r.pos_idx], r.uv.astype(np.float64)[r.uv_idx] * 511
        scales[wide] = np.median(np.linalg.norm(t[:, 1] - t[:, 0], axis=1) / np.linalg.norm(p[:, 1] - p[:, 0], axis=1))
    assert scales[uv.WIDE_GUTTERS] >= uv.WIDE_GUTTER_LOSS * scales[()] * 0.99


def test_thin_shell_atlas_use_near_xatlas():
    """The shell's plates are halved (not quartered) and one half turned: 3 halves stacked and 1
    turned fill a square (quarters in a 3 x 3 grid leave a slot empty; before: 0.44 here)."""
    m = _shell()
    charts = atlas_stats(unwrap(m, 512, method="charts"), 512)
    xat = atlas_stats(unwrap(m, 512, method="xatlas"), 512)
    assert charts["overlap"] == 0 and charts["l2"] < 1.01
    assert charts["use"] >= 0.9 * xat["use"], (charts, xat)


@pytest.mark.parametrize("turns", [1, 2])
def test_skyline_turns_a_chart_that_fits_only_turned(turns):
    """A 10 x 3 texel chart in a 6-wide, 12-high bin fits only turned (4 columns, 10 high)."""
    from texgen.uv import _skyline

    wc, hc = np.array([11, 4]), np.array([3.0, 10.0])
    offset = np.array([0, 11, 15])
    bottom, top = np.zeros(15), np.repeat(hc, wc)
    order = np.array([0])
    assert not _skyline(bottom[:11], top[:11], offset[:2], wc[:1], hc[:1], 6, 12, order, 1)[3]
    x, y, turn, ok, used = _skyline(bottom, top, offset, wc, hc, 6, 12, order, 1, turns)
    assert ok and turn[0] and used == 10.0 and x[0] == 0 and y[0] == 0


def test_outline_profiles_hold_every_triangle():
    """Profiles from the charts' outline edges bound every point of every triangle (vertices,
    centroids and edge midpoints, in the column they fall in), also where a chart folds."""
    from texgen import uv

    m = _sphere(3, 0.05)
    p, f = m.pos.astype(np.float64), m.pos_idx.astype(np.int64)
    n, area = uv._face_geometry(p, f)
    label = np.zeros(len(f), np.int64)
    label[len(f) // 2:] = 1  # two charts, each projected on one plane: the far side folds over
    t1, t2 = uv._chart_frames(label, 2, n, area, np.array([[0, 0, 1.0], [0, 1.0, 0]]))
    uvw, uv_idx, _, size_w = uv._project(p, f, label, 2, t1, t2)
    scale = 40.0
    seg, seg_chart = uv._outline(uvw, uv_idx, label)
    assert len(seg) < 3 * len(f)
    wc = np.floor(size_w[:, 0] * scale).astype(np.int64) + 1
    bottom, top, offset = uv._profiles(uvw[seg] * scale, seg_chart, 2, wc)
    tri = uvw[uv_idx] * scale
    pts = np.concatenate([tri, tri.mean(1, keepdims=True), 0.5 * (tri + np.roll(tri, 1, 1))], 1)
    col = offset[label][:, None] + np.minimum(np.floor(pts[..., 0]).astype(np.int64), wc[label][:, None] - 1)
    assert (pts[..., 1] >= bottom[col] - 1e-9).all() and (pts[..., 1] <= top[col] + 1e-9).all()


def test_overlap_counter_sees_overlaps():
    m = unwrap(_sphere(2), 128, method="charts")
    assert uv_overlap_texels(m, 128) == 0
    uv_idx = m.uv_idx.copy()
    uv_idx[1] = uv_idx[0]  # two faces on the same UV triangle
    assert uv_overlap_texels(m.copy(uv_idx=uv_idx), 128) > 0


def test_deterministic():
    m = _sphere(4, 0.01)
    a = unwrap(m, 512, method="charts")
    b = unwrap(Mesh(m.pos.copy(), m.pos_idx.copy()), 512, method="charts")
    assert np.array_equal(a.uv, b.uv) and np.array_equal(a.uv_idx, b.uv_idx)


def test_smooth_sphere_low_stretch_few_charts():
    s = atlas_stats(unwrap(_sphere(4), 512, method="charts"), 512)
    assert s["l2"] < 1.02 and s["charts"] < 40 and s["use"] > 0.5 and s["overlap"] == 0


def test_auto_uses_xatlas_on_small_meshes():
    m = _sphere(1)
    a, x = unwrap(m, 128), unwrap(m, 128, method="xatlas")
    assert np.array_equal(a.uv, x.uv) and np.array_equal(a.uv_idx, x.uv_idx)


def test_auto_choice_follows_the_largest_part():
    ico = trimesh.creation.icosphere(subdivisions=3)  # 1280 faces
    v, f = np.asarray(ico.vertices), np.asarray(ico.faces)
    many = Mesh(np.concatenate([v + 3 * i for i in range(30)]), np.concatenate([f + len(v) * i for i in range(30)]))
    assert many.num_faces > XATLAS_MAX_FACES and choose_method(many) == "xatlas"  # small parts: xatlas is quick
    one = _sphere(6)
    assert one.num_faces > XATLAS_MAX_FACES and choose_method(one) == "charts"
    assert choose_method(_sphere(2)) == "xatlas"


@pytest.mark.parametrize("kw", [{"method": "lscm"}, {"max_angle": 0}, {"max_angle": 90}, {"padding": -1},
                                {"texture_size": 1}])
def test_bad_arguments(kw):
    name = next(iter(kw))
    args = {"texture_size": 64, **kw}
    with pytest.raises(ValueError, match=name):
        unwrap(_sphere(1), **args)


def test_mesh_uv_wrap_trimesh_in_trimesh_out():
    tm = trimesh.creation.icosphere(subdivisions=2)
    out = mesh_uv_wrap(tm, 256, method="charts")
    assert isinstance(out, trimesh.Trimesh) and len(out.faces) == len(tm.faces)
    assert out.visual.uv.shape == (len(out.vertices), 2)
    np.testing.assert_allclose(out.vertices[out.faces], tm.vertices[tm.faces])  # same faces, same order
    with pytest.raises(TypeError, match="mesh"):
        mesh_uv_wrap("not a mesh")


@pytest.mark.parametrize("method", ["charts", "xatlas"])
def test_cli_round_trip(tmp_path, method):
    src = tmp_path / "in.glb"
    trimesh.creation.icosphere(subdivisions=2).export(src)
    out = tmp_path / "out.glb"
    assert main(["unwrap", str(src), "-o", str(out), "--method", method, "--texture-size", "256",
                 "--no-progress"]) == 0
    a, b = load_mesh(src), load_mesh(out)
    assert b.has_uv and b.num_faces == a.num_faces and b.texture is None
    np.testing.assert_allclose(b.pos[b.pos_idx], a.pos[a.pos_idx], atol=1e-6)
    assert uv_overlap_texels(b, 256) == 0


def test_cli_errors(tmp_path, capsys):
    src = tmp_path / "in.glb"
    trimesh.creation.icosphere(subdivisions=1).export(src)
    assert main(["unwrap", str(tmp_path / "missing.glb"), "-o", str(tmp_path / "o.glb")]) == 2
    assert main(["unwrap", str(src), "-o", str(tmp_path / "o.png")]) == 2
    assert main(["unwrap", str(src), "-o", str(tmp_path / "o.glb"), "--padding", "-3", "--no-progress"]) == 2
    assert "padding" in capsys.readouterr().err


def _processes_mentioning(text: str) -> int:
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    n += text.encode() in f.read()
            except OSError:
                pass
    return n


@pytest.mark.skipif(sys.platform != "linux", reason="SIGINT to a child process and /proc are Linux's")
@pytest.mark.parametrize("method,subdiv", [("xatlas", 5), ("charts", 7)])
def test_ctrl_c_stops_within_a_second(tmp_path, method, subdiv):
    """A real `texgen unwrap` process gets SIGINT while unwrapping (xatlas: in its child process;
    charts: 330k faces) and exits within 1 s with status 130, a message, and no child left."""
    src = tmp_path / "in.ply"
    trimesh.creation.icosphere(subdivisions=subdiv).export(src)
    tmp = tmp_path / "tmp"  # the xatlas child's files go here: its command line names this folder
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "texgen.cli", "unwrap", str(src), "-o", str(tmp_path / "o.glb"),
                             "--method", method, "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TMPDIR": str(tmp)},
                            cwd=tmp_path)  # not the repository: `-m` would import its source tree
    try:
        line = proc.stderr.readline().decode()  # printed just before unwrapping starts
        assert line.startswith("texgen: unwrapping"), line
        time.sleep(0.5)  # well inside the unwrap (xatlas alone takes seconds on this mesh)
        assert proc.poll() is None, "finished before the signal: use a bigger mesh"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=10)
        dt = time.monotonic() - t0
    finally:
        proc.kill()
    err = proc.stderr.read().decode()
    assert rc == 130 and "interrupted" in err, (rc, err)
    assert dt <= 1.0, f"took {dt:.2f} s to stop"
    assert not (tmp_path / "o.glb").exists()
    assert _processes_mentioning(str(tmp)) == 0  # no xatlas child left behind
    assert not any(tmp.iterdir())  # and its files were removed
