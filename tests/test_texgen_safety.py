"""texgen never loses a user's file and says clearly what went wrong (issue 13): one test (or a
few) per row of the issue's table. Every CLI error is exactly one ``texgen: error: ...`` line with
status 2, and the user's files are byte-identical afterwards."""
import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import trimesh
from PIL import Image

import texgen.files
from texgen import load_image, load_mesh
from texgen.cli import main
from texgen.demo import demo_mesh, ground_truth, held_out_cameras, held_out_psnr
from texgen.export import VERTEX_MAP_KEY, export_glb, export_obj
from texgen_inputs import write_bake_inputs
from texgen.mesh import Mesh, MeshError, TexgenWarning, prepare_mesh, unwrap, vertex_normals

BACKEND = os.environ.get("TEXGEN_TEST_BACKEND", "auto")
SMALL = ["--texture-size", "64", "--no-progress", "--backend", BACKEND]


# -- helpers ------------------------------------------------------------------------------------------
def snapshot(folder):
    """{name: bytes} of every file in ``folder`` (temporaries included: none may be left)."""
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder)) if (folder / n).is_file()}


def run(capsys, args):
    """CLI status and stderr; the stderr of a failure must be one error line, no traceback."""
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    return rc, err


def one_error(capsys, args, message):
    rc, err = run(capsys, args)
    assert (rc, err) == (2, f"texgen: error: {message}\n")


@pytest.fixture()
def work(tmp_path):
    """A mesh away from the origin, six small views and a user's own file to protect."""
    views = write_bake_inputs(tmp_path, 32)
    (tmp_path / "texgen.png").write_bytes(b"the user's own texgen.png")
    return tmp_path, views


def bake_args(d, views, out, *extra):
    return ["bake", d / "sphere.ply", "--views", *views, "-o", out, *SMALL, *extra]


@pytest.fixture(scope="module")
def truth_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("truth")
    truth = ground_truth(demo_mesh(1), 64, backend=BACKEND)
    export_glb(truth, d / "truth.glb")
    target = demo_mesh(1)
    trimesh.Trimesh(target.pos, target.pos_idx, process=False).export(d / "target.ply")
    return d, truth, target


# -- row 1: a failure during export leaves the old file exactly as it was -----------------------------
def _fill_disk_halfway(monkeypatch):
    def write_half(f, data):
        f.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(texgen.files, "_write_all", write_half)


def test_failed_glb_export_keeps_the_old_file(work, capsys, monkeypatch):
    d, views = work
    (d / "out.glb").write_bytes(b"the user's previous result")
    before = snapshot(d)
    _fill_disk_halfway(monkeypatch)
    one_error(capsys, bake_args(d, views, d / "out.glb"), f"cannot write {d / 'out.glb'}: No space left on device")
    assert snapshot(d) == before  # old file intact, no truncated GLB, no temporary left


def test_failed_obj_export_changes_none_of_its_three_files(work, capsys, monkeypatch):
    d, views = work
    for name in ("out.obj", "out.mtl", "out.png"):
        (d / name).write_bytes(b"old " + name.encode())
    before = snapshot(d)
    calls = []

    def fail_on_third(f, data):  # the first two files are complete, the third fails halfway
        calls.append(len(data))
        f.write(data[:len(data) // 2])
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        f.write(data[len(data) // 2:])
    monkeypatch.setattr(texgen.files, "_write_all", fail_on_third)
    rc, err = run(capsys, bake_args(d, views, d / "out.obj", "--overwrite"))
    assert rc == 2 and err.startswith("texgen: error: cannot write ") and err.endswith(": No space left on device\n")
    assert err.count("\n") == 1 and len(calls) == 3
    assert snapshot(d) == before


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    """Ctrl-C (or any exception) in the middle of a write: the temporary goes, the old file stays."""
    (tmp_path / "a.png").write_bytes(b"old")

    def interrupted(f, data):
        f.write(data[:3])
        raise KeyboardInterrupt
    monkeypatch.setattr(texgen.files, "_write_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        texgen.files.write_file(tmp_path / "a.png", b"new contents")
    assert snapshot(tmp_path) == {"a.png": b"old"}


def test_write_keeps_permissions(tmp_path):
    p = tmp_path / "x.glb"
    p.write_bytes(b"old")
    os.chmod(p, 0o640)
    texgen.files.write_file(p, b"new")
    assert p.read_bytes() == b"new" and (os.stat(p).st_mode & 0o777) == 0o640


# -- row 2: OBJ companions are named after the output and never silently replaced ----------------------
def test_two_obj_exports_in_one_folder(work, capsys):
    d, views = work
    for stem in ("a", "b"):
        rc, err = run(capsys, bake_args(d, views, d / f"{stem}.obj"))
        assert rc == 0 and err == ""
        assert f"mtllib {stem}.mtl" in (d / f"{stem}.obj").read_text()
        mtl = (d / f"{stem}.mtl").read_text()
        assert f"newmtl {stem}" in mtl and f"map_Kd {stem}.png" in mtl
        assert load_mesh(d / f"{stem}.obj").texture.shape == (64, 64, 3)
    assert (d / "texgen.png").read_bytes() == b"the user's own texgen.png"
    # a third run onto a.obj: a.mtl / a.png exist and were not written by this run
    before = snapshot(d)
    one_error(capsys, bake_args(d, views, d / "a.obj"),
              f"-o/--out {d / 'a.obj'} would replace {d / 'a.mtl'}, {d / 'a.png'}, which already exist; "
              f"pass --overwrite or choose another name")
    assert snapshot(d) == before
    assert run(capsys, bake_args(d, views, d / "a.obj", "--overwrite"))[0] == 0


def test_obj_api_refuses_existing_companions(tmp_path):
    m = ground_truth(demo_mesh(0), 16, backend=BACKEND)
    (tmp_path / "m.png").write_bytes(b"mine")
    with pytest.raises(texgen.files.OutputError) as e:
        export_obj(m, tmp_path / "m.obj")
    assert str(e.value) == (f"path {tmp_path / 'm.obj'} would replace {tmp_path / 'm.png'}, which already exists; "
                            f"pass --overwrite or choose another name")
    assert snapshot(tmp_path) == {"m.png": b"mine"}
    export_obj(m, tmp_path / "m.obj", overwrite=True)
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


# -- row 3: -o equal to an input is refused ---------------------------------------------------------
def test_output_equal_to_an_input(work, truth_files, capsys, tmp_path):
    d, views = work
    td, _, _ = truth_files
    src = tmp_path / "src.glb"
    src.write_bytes((td / "truth.glb").read_bytes())
    before = snapshot(d)
    one_error(capsys, ["bake", d / "sphere.ply", "--views", *views, "-o", d / "v0.png", *SMALL],
              f"-o/--out must end in .glb or .obj, got {str(d / 'v0.png')!r}")
    one_error(capsys, ["transfer", src, td / "target.ply", "-o", src, *SMALL],
              f"-o/--out {src} would overwrite the input {src}; choose another output name")
    # the same file by another spelling
    one_error(capsys, ["transfer", src, td / "target.ply", "-o", tmp_path / "." / "src.glb", *SMALL],
              f"-o/--out {tmp_path / '.' / 'src.glb'} would overwrite the input {src}; choose another output name")
    # an OBJ whose texture would land on a view image (even with --overwrite)
    Image.open(views[0]).save(d / "out.png")
    one_error(capsys, ["bake", d / "sphere.ply", "--views", d / "out.png", *views[1:], "-o", d / "out.obj",
                       "--overwrite", *SMALL],
              f"-o/--out {d / 'out.obj'} would overwrite the input {d / 'out.png'} (the OBJ writes out.png); "
              f"choose another output name")
    assert {k: v for k, v in snapshot(d).items() if k != "out.png"} == before
    assert (tmp_path / "src.glb").read_bytes() == (td / "truth.glb").read_bytes()


def test_output_equal_to_an_obj_inputs_texture(tmp_path, capsys):
    """The texture an input OBJ's material names is an input too."""
    m = ground_truth(demo_mesh(0), 16, backend=BACKEND)
    export_obj(m, tmp_path / "src.obj")
    trimesh.Trimesh(m.pos, m.pos_idx, process=False).export(tmp_path / "target.ply")
    (tmp_path / "src.mtl").write_text((tmp_path / "src.mtl").read_text().replace("map_Kd src.png", "map_Kd out.png"))
    os.replace(tmp_path / "src.png", tmp_path / "out.png")
    before = snapshot(tmp_path)
    one_error(capsys, ["transfer", tmp_path / "src.obj", tmp_path / "target.ply", "-o", tmp_path / "out.obj",
                       "--overwrite", *SMALL],
              f"-o/--out {tmp_path / 'out.obj'} would overwrite the input {tmp_path / 'out.png'} (the OBJ writes "
              f"out.png); choose another output name")
    assert snapshot(tmp_path) == before


# -- row 4: UVs validated; --unwrap auto|always|never ----------------------------------------------------
def _tiled(m: Mesh) -> Mesh:
    return m.copy(uv=m.uv * 3 - 1)


def _mirrored(m: Mesh) -> Mesh:
    uv = m.uv.copy()
    uv[:, 0] = np.where(uv[:, 0] > 0.5, 1 - uv[:, 0], uv[:, 0])
    return m.copy(uv=uv)


def test_uv_problems_are_found_with_numbers():
    from texgen.uvcheck import uv_problem

    m = unwrap(demo_mesh(1), 256)
    assert uv_problem(m, 256) is None  # xatlas's own atlas: no texel covered twice
    tiled = uv_problem(_tiled(m), 256)
    assert "lie outside [0, 1]" in tiled and "tiled UVs" in tiled
    over = uv_problem(_mirrored(m), 256)
    assert over.startswith("its UV triangles overlap: ") and "covered by more than one triangle" in over
    uv = m.uv.copy()
    uv[5] = np.nan
    assert uv_problem(m.copy(uv=uv), 256) == f"1 of its {len(np.unique(m.uv_idx))} UVs are NaN or infinite"


def test_uv_overlap_counts_exactly():
    """A unit square, then the same square twice: every covered texel is then covered twice (the
    top-left rule leaves out the last row and column, whose centres lie on the square's edges)."""
    from texgen.uvcheck import uv_overlap

    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    single = np.array([[0, 1, 2], [0, 2, 3]])
    twice, covered = uv_overlap(uv, single, 64)
    assert (twice, covered) == (0, 63 * 63)
    twice, covered = uv_overlap(uv, np.concatenate([single, single]), 64)
    assert (twice, covered) == (63 * 63, 63 * 63)


@pytest.mark.parametrize("bad", ["tiled", "mirrored", "nan"])
def test_bad_uvs_auto_unwraps_never_refuses(truth_files, tmp_path, capsys, bad):
    td, truth, target = truth_files
    m = unwrap(target, 64)
    if bad == "tiled":
        m = _tiled(m)
    elif bad == "mirrored":
        m = _mirrored(m)
    else:
        uv = m.uv.copy()
        uv[0] = np.nan
        m = m.copy(uv=uv)
    tm = trimesh.Trimesh(m.pos[m.pos_idx].reshape(-1, 3), np.arange(3 * m.num_faces).reshape(-1, 3),
                         visual=trimesh.visual.TextureVisuals(uv=m.uv[m.uv_idx].reshape(-1, 2)), process=False)
    tm.export(tmp_path / "t.obj")
    before = snapshot(tmp_path)
    from texgen.uvcheck import uv_problem
    why = uv_problem(load_mesh(tmp_path / "t.obj"), 64)
    assert why is not None
    args = ["transfer", td / "truth.glb", tmp_path / "t.obj", "-o", tmp_path / "out.glb", "--render-size", "96", *SMALL]
    one_error(capsys, args + ["--unwrap", "never"],
              f"t.obj: {why}; --unwrap never (unwrap_mode='never') keeps a mesh's UVs, so texgen refuses: "
              f"use --unwrap auto to unwrap again")
    assert snapshot(tmp_path) == before
    rc, err = run(capsys, args)
    assert rc == 0
    assert err == f"texgen: warning: t.obj: {why}; unwrapping it again (--unwrap never would refuse instead)\n"
    out = load_mesh(tmp_path / "out.glb")
    assert np.isfinite(out.uv).all() and out.uv.min() >= 0 and out.uv.max() <= 1
    # the fresh atlas bakes properly: held-out views match the truth
    res = load_mesh(tmp_path / "out.glb")
    from texgen.mesh import normalize
    psnr = held_out_psnr(normalize(res), normalize(load_mesh(td / "truth.glb"), like=normalize(res)),
                         held_out_cameras(), 96, backend=BACKEND)["mean"]
    assert psnr > 20.0


def test_valid_uvs_kept_and_always_unwraps(truth_files):
    _, truth, _ = truth_files
    with_uv = truth.copy(uv=truth.uv * 0.5 + 0.25, texture=None)  # valid UVs, not xatlas's
    with _no_texgen_warning():
        kept = prepare_mesh(with_uv, 64, None, "auto")
        np.testing.assert_array_equal(kept.uv, with_uv.uv)
        never = prepare_mesh(with_uv, 64, None, "never")
        np.testing.assert_array_equal(never.uv, with_uv.uv)
    again = prepare_mesh(with_uv, 64, None, "always")
    np.testing.assert_array_equal(again.uv, truth.uv)  # xatlas's atlas of the same geometry
    with pytest.raises(MeshError, match="the mesh has no UVs; --unwrap never"):
        prepare_mesh(demo_mesh(0), 64, None, "never")


class _no_texgen_warning:
    def __enter__(self):
        import warnings
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error", TexgenWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def test_cli_unwrap_option(work, capsys):
    d, views = work
    rc, err = run(capsys, ["bake", d / "sphere.ply", "--views", *views, "--unwrap", "never", *SMALL])
    assert (rc, err) == (2, "texgen: error: sphere.ply: the mesh has no UVs; --unwrap never (unwrap_mode='never') "
                            "keeps a mesh's UVs, so texgen refuses: use --unwrap auto to unwrap again\n")


# -- row 5: images of every bit depth -----------------------------------------------------------------
def test_high_bit_depth_and_palette_images(tmp_path):
    ramp16 = (np.arange(32 * 32).reshape(32, 32) * 60).astype(np.uint16)
    Image.fromarray(ramp16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    img = load_image(tmp_path / "g16.png")
    assert img.shape == (32, 32, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img[..., 1], ramp16 / 65535.0, atol=1e-6)
    ramp = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(ramp).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    np.testing.assert_array_equal(load_image(tmp_path / "f.tif")[..., 2], ramp)
    Image.fromarray(ramp * 255).save(tmp_path / "f255.tif")
    with pytest.raises(ValueError) as e:
        load_image(tmp_path / "f255.tif")
    assert str(e.value) == (f"{tmp_path / 'f255.tif'}: float image with values in [0, 255]; texgen reads float "
                            f"images as colours in [0, 1]: rescale it, or save it as 8/16-bit")
    pal = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    pal.info["transparency"] = 1
    pal.save(tmp_path / "p.png")
    p = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(p[0, 0], [1, 0, 0, 1])
    np.testing.assert_array_equal(p[0, 1], [0, 1, 0, 0])  # the transparent index keeps its colour, alpha 0
    Image.fromarray(np.dstack([np.full((4, 4), 128, np.uint8), np.full((4, 4), 255, np.uint8)]), "LA").save(
        tmp_path / "la.png")
    np.testing.assert_allclose(load_image(tmp_path / "la.png")[0, 0], [128 / 255] * 3 + [1.0])


def test_16bit_views_bake_their_colour(work, capsys):
    """Mid-grey 16-bit views give a mid-grey texture (clipping gave white)."""
    d, _ = work
    Image.fromarray(np.full((32, 32), 30000, np.uint16)).save(d / "g.png")
    rc, _ = run(capsys, ["bake", d / "sphere.ply", "--views", *[d / "g.png"] * 6, "-o", d / "g.glb", *SMALL])
    assert rc == 0
    tex = load_mesh(d / "g.glb").texture
    assert abs(float(np.median(tex)) - 30000 / 65535) < 0.01


def test_image_size_cap(tmp_path, capsys, work):
    d, views = work
    Image.new("L", (20000, 8)).save(d / "wide.png")
    one_error(capsys, ["bake", d / "sphere.ply", "--views", d / "wide.png", *views[1:], *SMALL],
              f"image {d / 'wide.png'} is 20000x8 pixels; texgen reads images up to 16384 pixels a side and "
              f"134217728 pixels in all")
    # a decompression bomb: a tiny file that claims 30000 x 30000 pixels
    Image.new("1", (15000, 15000)).save(d / "bomb.png")
    assert os.path.getsize(d / "bomb.png") < 100_000
    rc, err = run(capsys, ["bake", d / "sphere.ply", "--views", d / "bomb.png", *views[1:], *SMALL])
    assert rc == 2 and err.startswith(f"texgen: error: image {d / 'bomb.png'} is too large to read safely (")
    assert err.count("\n") == 1


# -- row 6: float64 geometry ---------------------------------------------------------------------------
def test_far_from_origin_transfer_keeps_shape(truth_files, tmp_path, capsys):
    td, truth, target = truth_files
    off = np.array([1e6, -2e6, 5e5])
    src = truth.copy(pos=truth.pos * 10 + off)
    export_glb(src, tmp_path / "src.glb")
    far = target.pos * 10 + off
    trimesh.Trimesh(far, target.pos_idx, process=False).export(tmp_path / "tgt.ply", encoding="ascii")
    file_pos = np.asarray(trimesh.load(tmp_path / "tgt.ply", process=False).vertices, np.float64)
    assert run(capsys, ["transfer", tmp_path / "src.glb", tmp_path / "tgt.ply", "-o", tmp_path / "out.glb",
                        "--render-size", "96", *SMALL])[0] == 0
    out = load_mesh(tmp_path / "out.glb")
    assert out.pos.dtype == np.float64
    size = np.ptp(file_pos, axis=0).max()
    assert np.abs(out.pos - file_pos).max() < 1e-6 * size  # float32 steps at 1e6 were 0.06 = 0.5% of the size
    n_out, n_in = vertex_normals(out.pos, out.pos_idx), vertex_normals(file_pos, target.pos_idx)
    angle = np.degrees(np.arccos(np.clip((n_out * n_in).sum(1), -1, 1))).max()
    assert angle < 0.1  # float32 welding turned them by up to 44 degrees
    loaded = load_mesh(tmp_path / "tgt.ply")
    np.testing.assert_array_equal(loaded.pos, file_pos)


# -- row 7: warnings with numbers ------------------------------------------------------------------------
def test_warns_when_source_and_target_do_not_overlap(truth_files, tmp_path, capsys):
    td, truth, target = truth_files
    trimesh.Trimesh(target.pos + [0.0, 0.0, 50.0], target.pos_idx, process=False).export(tmp_path / "away.ply")
    src = truth.copy(pos=truth.pos)
    export_glb(src, tmp_path / "src.glb")
    rc, err = run(capsys, ["transfer", tmp_path / "src.glb", tmp_path / "away.ply", "-o", tmp_path / "o.glb",
                           "--render-size", "64", *SMALL])
    assert rc == 0
    assert err.startswith("texgen: warning: the transfer source src.glb covers only 0.0% of the target's pixels in "
                          "the 6 views (0 of ")
    assert err.endswith("): source and target barely overlap (both are placed with the target's normalisation, so "
                        "they must overlap in their files' frames)\n")
    rc, err = run(capsys, ["transfer", td / "truth.glb", td / "target.ply", "-o", tmp_path / "ok.glb",
                           "--render-size", "64", *SMALL])
    assert (rc, err) == (0, "")


def test_warns_when_a_material_texture_is_missing(tmp_path, capsys):
    m = ground_truth(demo_mesh(0), 16, backend=BACKEND)
    export_obj(m, tmp_path / "src.obj")
    os.remove(tmp_path / "src.png")
    with pytest.warns(TexgenWarning) as w:
        load_mesh(tmp_path / "src.obj")
    assert str(w[0].message) == (f"texgen: src.obj: 1 of the 2 material/texture files it names are missing "
                                 f"({tmp_path / 'src.png'}); its appearance falls back to flat material colours")


# -- row 8: one error line for every failure, checked before any work -------------------------------------
@pytest.fixture()
def no_work(monkeypatch):
    """Fail the test if any mesh is loaded: the error must come before the work."""
    import texgen.mesh

    def boom(*a, **k):
        raise AssertionError("work started before the error was found")
    monkeypatch.setattr(texgen.mesh, "load_mesh", boom)


def test_cli_errors_before_any_work(work, capsys, no_work, monkeypatch):
    d, views = work
    (d / "folder.glb").mkdir()
    (d / "file").write_text("x")
    before = snapshot(d)
    cases = [
        (bake_args(d, views, d / "folder.glb"), f"-o/--out {d / 'folder.glb'} is a folder; give a file name ending "
                                                 f"in .glb or .obj"),
        (bake_args(d, views, d / "missing" / "o.glb"), f"output folder {d / 'missing'} does not exist"),
        (bake_args(d, views, d / "file" / "o.glb"), f"output folder {d / 'file'} is not a folder"),
        (["demo", "-o", d / "file", "--no-progress"], f"-o/--out {d / 'file'} is a file; the demo writes into a folder"),
        (bake_args(d, views, d / "o.glb", "--device", "bogus"), None),
        (bake_args(d, views, d / "o.glb", "--backend", "ascendc"), None),
    ]
    for args, msg in cases:
        rc, err = run(capsys, args)
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        if msg:
            assert err == f"texgen: error: {msg}\n"
    rc, err = run(capsys, bake_args(d, views, d / "o.glb", "--device", "bogus"))
    assert err.startswith("texgen: error: --device 'bogus' is not a torch device (")
    import torch
    if not torch.cuda.is_available():
        rc, err = run(capsys, bake_args(d, views, d / "o.glb", "--device", "cuda"))
        assert rc == 2 and err.startswith("texgen: error: --device cuda is not usable with this torch (")
    import render_npu
    if not render_npu.backends()["ascendc"][0]:
        rc, err = run(capsys, bake_args(d, views, d / "o.glb", "--backend", "ascendc"))
        why = render_npu.backends()["ascendc"][1]
        assert err == f"texgen: error: --backend ascendc with --device cpu: backend 'ascendc' is not available " \
                      f"here: {why.splitlines()[0]}\n"
    # a folder that cannot be written (simulated: root ignores permission bits)
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    monkeypatch.setattr(texgen.files.tempfile, "mkstemp", denied)
    one_error(capsys, bake_args(d, views, d / "o.glb"), f"cannot write into output folder {d}: Permission denied")
    assert snapshot(d) == before


# -- row 9: numeric options ------------------------------------------------------------------------------
@pytest.mark.parametrize("opt,value,msg", [
    ("--bake-exp", "nan", "--bake-exp must be a finite number in [0, 64], got nan"),
    ("--bake-exp", "-4", "--bake-exp must be a finite number in [0, 64], got -4.0"),
    ("--workers", "-3", "--workers must be an integer in [1, 1024], got -3"),
    ("--max-angle", "200", "--max-angle must be a finite number in (0, 90], got 200.0"),
    ("--max-angle", "0", "--max-angle must be a finite number in (0, 90], got 0.0"),
    ("--fov", "180", "--fov must be a finite number in (0, 180), got 180.0"),
    ("--distance", "inf", "--distance must be a finite number in (0, 1e+06], got inf"),
    ("--ortho-half-width", "0", "--ortho-half-width must be a finite number in (0, 1e+06], got 0.0"),
    ("--render-size", "1", "--render-size must be an integer in [2, 16384], got 1"),
    ("--texture-size", "99999", "--texture-size must be an integer in [2, 16384], got 99999"),
    ("--cameras", "0:nan", "camera spec '0:nan': angles must be finite and the weight finite and >= 0"),
    ("--cameras", "0:0:-1", "camera spec '0:0:-1': angles must be finite and the weight finite and >= 0"),
])
def test_numeric_options(work, capsys, opt, value, msg):
    d, views = work
    before = snapshot(d)
    one_error(capsys, ["bake", d / "sphere.ply", "--views", *views, "--no-progress", opt, value], msg)
    assert snapshot(d) == before


def test_bake_settings_validate():
    from texgen import BakeSettings
    for kw, msg in [({"bake_exp": float("nan")}, "BakeSettings.bake_exp"), ({"workers": 0}, "BakeSettings.workers"),
                    ({"max_angle": 91}, "BakeSettings.max_angle"), ({"border": -1}, "BakeSettings.border")]:
        with pytest.raises(ValueError, match=msg):
            BakeSettings(**kw)


def test_demo_subdivisions_checked(tmp_path, capsys):
    one_error(capsys, ["demo", "-o", tmp_path / "d", "--subdivisions", "12", "--no-progress"],
              "--subdivisions must be an integer in [0, 7], got 12")
    assert not (tmp_path / "d").exists()


# -- row 11: Ctrl-C stops the real CLI within a second, even inside xatlas -----------------------------------
def _family(pid):
    """``pid`` and its descendants (xatlas may run in a child process)."""
    kids = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _xatlas_loaded(pid):
    for p in _family(pid):
        try:
            with open(f"/proc/{p}/maps") as f:
                if "xatlas" in f.read():
                    return True
        except OSError:
            pass
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches /proc to send Ctrl-C inside xatlas")
def test_sigint_stops_the_cli_within_a_second(tmp_path):
    trimesh.creation.icosphere(subdivisions=5).export(tmp_path / "big.ply")  # 20480 faces: xatlas takes seconds
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "v.png")
    out = tmp_path / "big.glb"
    # a shell's background jobs ignore SIGINT, and Python then keeps ignoring it: restore the default
    proc = subprocess.Popen([sys.executable, "-m", "texgen.cli", "bake", str(tmp_path / "big.ply"), "--views",
                             *[str(tmp_path / "v.png")] * 6, "-o", str(out), "--no-progress", "--texture-size", "1024",
                             "--render-size", "32"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path,  # not the repository: `-m` would import its source tree
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not _xatlas_loaded(proc.pid):  # xatlas is imported right before it unwraps
            assert proc.poll() is None and time.monotonic() < deadline, "the CLI never started xatlas"
            time.sleep(0.05)
        time.sleep(0.5)  # well inside the unwrap (about 10 s on this mesh)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
        waited = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists()
    assert (proc.returncode, err) == (130, "texgen: interrupted\n")
    assert waited < 1.0, f"exited {waited:.1f} s after Ctrl-C"


def test_ctrl_c_swallowed_by_a_loader_still_stops(work, capsys, monkeypatch):
    """trimesh's loaders catch BaseException: a Ctrl-C inside them must still stop the run (status
    130) and nothing may be written."""
    import texgen.mesh

    d, views = work
    before = snapshot(d)
    real = texgen.mesh.load_mesh

    def swallowing_loader(*a, **k):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # the handler runs here
        except BaseException:  # as trimesh does
            pass
        return real(*a, **k)
    monkeypatch.setattr(texgen.mesh, "load_mesh", swallowing_loader)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # background shells start with it ignored
    try:
        rc, err = run(capsys, bake_args(d, views, d / "o.glb"))
    finally:
        signal.signal(signal.SIGINT, old)
    assert (rc, err) == (130, "texgen: interrupted\n")
    assert snapshot(d) == before


# -- row 12: transfer keeps the target's vertices --------------------------------------------------------
def test_transfer_keeps_target_vertices(truth_files, tmp_path, capsys):
    td, _, target = truth_files
    ply = np.asarray(trimesh.load(td / "target.ply", process=False).vertices)
    assert run(capsys, ["transfer", td / "truth.glb", td / "target.ply", "-o", tmp_path / "o.glb",
                        "--render-size", "64", *SMALL])[0] == 0
    geom = trimesh.load(tmp_path / "o.glb", process=False).dump()[0]
    v = np.asarray(geom.vertices)
    np.testing.assert_array_equal(v[:len(ply)], ply.astype(np.float32))  # same positions, same order
    vmap = np.asarray(geom.metadata[VERTEX_MAP_KEY])
    assert len(v) > len(ply) and len(vmap) == len(v)  # the fresh atlas has seams: extra vertices, mapped
    np.testing.assert_array_equal(vmap[:len(ply)], np.arange(len(ply)))
    np.testing.assert_array_equal(v, v[vmap])
    # faces reference the same input vertices as the target's faces
    np.testing.assert_array_equal(vmap[np.asarray(geom.faces)], target.pos_idx)
    # and OBJ output keeps them first too
    assert run(capsys, ["transfer", td / "truth.glb", td / "target.ply", "-o", tmp_path / "o.obj",
                        "--render-size", "64", *SMALL])[0] == 0
    vo = np.asarray(trimesh.load(tmp_path / "o.obj", process=False).vertices)
    np.testing.assert_allclose(vo[:len(ply)], ply, atol=1e-6)


def test_weld_keeps_file_order():
    from texgen.mesh import weld
    p = np.array([[3, 0, 0], [1, 0, 0], [2, 0, 0], [1, 0, 0]], np.float64)
    pos, idx, first = weld(p, np.array([[0, 1, 2], [3, 2, 0]]))
    np.testing.assert_array_equal(pos, p[:3])
    np.testing.assert_array_equal(idx, [[0, 1, 2], [1, 2, 0]])
    np.testing.assert_array_equal(first, [0, 1, 2])


def test_api_export_names_and_folders(tmp_path):
    """The API writes any file name (the format is the function's), but still checks the folder."""
    m = ground_truth(demo_mesh(0), 16, backend=BACKEND)
    export_glb(m, tmp_path / "model.bin")
    assert (tmp_path / "model.bin").read_bytes()[:4] == b"glTF"
    with pytest.raises(texgen.files.OutputError) as e:
        export_glb(m, tmp_path / "nowhere" / "m.glb")
    assert str(e.value) == f"output folder {tmp_path / 'nowhere'} does not exist"
    with pytest.raises(texgen.files.OutputError) as e:
        export_glb(m, tmp_path)
    assert str(e.value) == f"path {tmp_path} is a folder; give a file name ending in .glb or .obj"


def test_vertex_map_names_file_vertices(tmp_path):
    """A file with duplicate positions (split at its UV seams): the map gives file indices."""
    m = unwrap(demo_mesh(0), 64)
    corners = m.pos[m.pos_idx].reshape(-1, 3)  # every face corner its own file vertex
    tm = trimesh.Trimesh(corners, np.arange(len(corners)).reshape(-1, 3), process=False)
    tm.export(tmp_path / "dup.ply")
    loaded = load_mesh(tmp_path / "dup.ply")
    assert loaded.num_vertices == m.num_vertices and loaded.file_vertex.max() < len(corners)
    res = unwrap(loaded, 64).copy(texture=np.full((8, 8, 3), 0.5, np.float32))
    export_glb(res, tmp_path / "o.glb")
    geom = trimesh.load(tmp_path / "o.glb", process=False).dump()[0]
    vmap = np.asarray(geom.metadata[VERTEX_MAP_KEY])
    np.testing.assert_allclose(np.asarray(geom.vertices), corners[vmap], atol=1e-6)
    np.testing.assert_array_equal(vmap[:loaded.num_vertices], loaded.file_vertex)
