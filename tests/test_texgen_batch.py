"""texgen batch: manifests, a real local Ray cluster and the local pool with a bad input and a worker
killed mid-job, resume by checksum, byte-identical outputs from both executors."""
import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import ray
import trimesh
from PIL import Image

from texgen.batch import load_manifest, read_report, run_batch, running_marker
from texgen.cli import main
from texgen.demo import demo_mesh, ground_truth
from texgen.export import export_glb

from conftest import TEXGEN_BACKEND as BACKEND
SMALL = {"render_size": 128, "texture_size": 128, "backend": BACKEND}
VICTIM = "demo/victim.glb"
BAD = "bad.glb"


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """One local Ray cluster for the module (startup costs seconds). Ray's workers start in the
    driver's working directory and import from it first: started from the project root they
    would test the source tree, not the package under test, so start it elsewhere."""
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ray_cwd"))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        os.chdir(here)
    yield
    ray.shutdown()


def _write_inputs(d):
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=2.0)
    sphere.export(d / "sphere.ply")
    trimesh.creation.box(extents=(1, 2, 1)).export(d / "box.obj")
    for i in range(6):
        img = np.zeros((128, 128, 3), np.uint8)
        img[...] = (40 * i, 255 - 40 * i, 128)
        img[32:96, 32:96] = (255, 255, 255)
        Image.fromarray(img).save(d / f"v{i}.png")
    export_glb(ground_truth(demo_mesh(1), 64, backend=BACKEND), d / "truth.glb")
    (d / "bad.obj").write_text("this is not an obj file\n v v v\n")


def _manifest(d, name="m.jsonl"):
    views = [f"v{i}.png" for i in range(6)]
    jobs = [
        {"mode": "bake", "mesh": "sphere.ply", "views": views, "out": "sphere.glb", "options": SMALL},
        {"mode": "bake", "mesh": "box.obj", "views": views, "out": "box/box.obj",
         "options": dict(SMALL, inpaint="pushpull")},
        {"mode": "bake", "mesh": "sphere.ply", "views": views[:2], "out": "two.glb",
         "options": dict(SMALL, cameras="0:0:1,0:180:1", no_vertex_inpaint=True)},
        {"mode": "transfer", "source": "truth.glb", "target": "sphere.ply", "out": "transfer.glb", "options": SMALL},
        {"mode": "bake", "mesh": "bad.obj", "views": views, "out": BAD, "options": SMALL},
        {"mode": "demo", "subdivisions": 1, "out": "demo/a.glb", "options": SMALL},
        {"mode": "demo", "subdivisions": 2, "ring": False, "out": "demo/b.glb", "options": SMALL},
        # the victim: long enough (about a second) to be killed while it runs
        {"mode": "demo", "subdivisions": 3, "out": VICTIM, "options": dict(SMALL, render_size=256, texture_size=256)},
    ]
    path = d / name
    path.write_text("# eight jobs\n" + "\n".join(json.dumps(j) for j in jobs) + "\n\n")
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch_in")
    _write_inputs(d)
    return d


class Killer(threading.Thread):
    """SIGKILLs the process running job ``out`` as soon as its running marker appears."""

    def __init__(self, out_dir, out):
        super().__init__(daemon=True)
        self.path = running_marker(out_dir, out)
        self.killed = None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                with open(self.path) as f:
                    pid = json.load(f)["pid"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.005)
                continue
            os.kill(pid, signal.SIGKILL)
            self.killed = pid
            return


def _run_with_killer(manifest, out, **kw):
    killer = Killer(out, VICTIM)
    killer.start()
    try:
        summary = run_batch(str(manifest), str(out), progress=False, log=None, **kw)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None and killer.killed != os.getpid()
    return summary


def _outputs(out):
    files = {}
    for root, dirs, names in os.walk(out):
        dirs[:] = [x for x in dirs if x != ".batch"]
        for n in names:
            if n != "report.jsonl":
                p = os.path.join(root, n)
                files[os.path.relpath(p, out)] = open(p, "rb").read()
    return files


def _check_first_run(summary, out):
    by_job = {r["job"]: r for r in summary.records}
    assert (summary.done, summary.skipped, summary.failed) == (6, 0, 2)
    assert by_job[BAD]["status"] == "failed" and "bad.obj" in by_job[BAD]["error"]
    assert "MeshError" in by_job[BAD]["error"]
    assert by_job[VICTIM]["status"] == "failed"
    # a failed job leaves nothing under its name, and no private folder or marker behind
    assert not (out / VICTIM).exists() and not (out / BAD).exists()
    assert os.listdir(out / ".batch" / "tmp") == [] and os.listdir(out / ".batch" / "running") == []
    for r in summary.records:
        assert r["seconds"] is not None and r["seconds"] >= 0
        if r["status"] == "ok":
            assert r["peak_rss_mb"] > 0 and r["cpu_seconds"] > 0 and r["files"]
            for rel in r["files"]:
                assert (out / rel).is_file()
    assert set(by_job["box/box.obj"]["files"]) == {"box/box.obj", "box/box.mtl", "box/box.png"}
    # every record reached the report
    assert {r["job"] for r in read_report(out).values()} == set(by_job)


def _fix_and_resume(manifest, out, **kw):
    before = {rel: os.stat(out / rel).st_mtime_ns for rel in _outputs(out)}
    summary = run_batch(str(manifest), str(out), progress=False, log=None, **kw)
    by_job = {r["job"]: r for r in summary.records}
    assert (summary.done, summary.skipped, summary.failed) == (2, 6, 0)
    assert {j for j, r in by_job.items() if r["status"] == "ok"} == {BAD, VICTIM}
    # the finished jobs were not run again: their files are untouched
    for rel, mtime in before.items():
        assert os.stat(out / rel).st_mtime_ns == mtime
    return summary


@pytest.fixture(scope="module")
def ray_out(ray_cluster, tmp_path_factory):
    """The Ray run (bad input, killed worker) and its resume, with the bad mesh repaired."""
    d = tmp_path_factory.mktemp("batch_ray")
    _write_inputs(d)
    manifest = _manifest(d)
    out = d / "out"
    first = _run_with_killer(manifest, out, ray="local")
    _check_first_run(first, out)
    victim = next(r for r in first.records if r["job"] == VICTIM)
    assert "WorkerCrashedError" in victim["error"], victim["error"]
    trimesh.creation.icosphere(subdivisions=1).export(d / "bad.obj")
    second = _fix_and_resume(manifest, out, ray="local")
    return d, out, first, second


def test_ray_cluster_isolates_failures_and_resumes(ray_out):
    d, out, first, second = ray_out
    assert ray.is_initialized()  # the caller's cluster is used, not shut down
    # a third run has nothing to do
    third = run_batch(str(d / "m.jsonl"), str(out), progress=False, log=None, ray="local")
    assert (third.done, third.skipped, third.failed) == (0, 8, 0)


def test_pool_matches_ray_byte_for_byte(ray_out, tmp_path):
    d, ray_dir, _, _ = ray_out
    # the same manifest (bad input still bad) in a fresh folder, on the local pool
    _write_inputs(tmp_path)
    manifest = _manifest(tmp_path)
    out = tmp_path / "out"
    first = _run_with_killer(manifest, out, workers=2)
    _check_first_run(first, out)
    victim = next(r for r in first.records if r["job"] == VICTIM)
    assert "SIGKILL" in victim["error"]
    trimesh.creation.icosphere(subdivisions=1).export(tmp_path / "bad.obj")
    _fix_and_resume(manifest, out, workers=2)
    ours, theirs = _outputs(out), _outputs(ray_dir)
    assert sorted(ours) == sorted(theirs) and len(ours) == 10
    for rel in ours:
        assert ours[rel] == theirs[rel], rel


def test_resume_redoes_damaged_or_changed_jobs(inputs, tmp_path, capsys):
    d = inputs
    lines = [
        {"mode": "bake", "mesh": str(d / "sphere.ply"), "views": [str(d / f"v{i}.png") for i in range(6)],
         "out": "a.glb", "options": SMALL},
        {"mode": "demo", "subdivisions": 1, "out": "b.glb", "options": SMALL},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(j) for j in lines))
    out = tmp_path / "out"
    args = ["batch", str(manifest), "--out", str(out), "--workers", "0", "--no-progress"]
    assert main(args) == 0
    assert "2 done, 0 skipped, 0 failed" in capsys.readouterr().out
    # a damaged output is redone, the intact one skipped
    data = bytearray((out / "a.glb").read_bytes())
    data[-1] ^= 0xFF
    (out / "a.glb").write_bytes(bytes(data))
    assert main(args) == 0
    assert "1 done, 1 skipped, 0 failed" in capsys.readouterr().out
    # an edited manifest line is a new job
    lines[1]["options"] = dict(SMALL, inpaint="pushpull")
    manifest.write_text("\n".join(json.dumps(j) for j in lines))
    assert main(args) == 0
    assert "1 done, 1 skipped, 0 failed" in capsys.readouterr().out
    recs = [json.loads(ln) for ln in (out / "report.jsonl").read_text().splitlines()]
    assert [r["status"] for r in recs] == ["ok", "ok", "skipped", "ok", "skipped", "ok"]
    # a failed job makes the exit status 1, and is reported on stderr
    lines.append({"mode": "transfer", "source": str(d / "box.obj"), "target": str(d / "sphere.ply"),
                  "out": "c.glb", "options": SMALL})
    manifest.write_text("\n".join(json.dumps(j) for j in lines))
    assert main(args) == 1
    cap = capsys.readouterr()
    assert "0 done, 2 skipped, 1 failed" in cap.out and "c.glb failed" in cap.err and "neither a texture" in cap.err


@pytest.mark.parametrize("line,msg", [
    ("{not json", "not valid JSON"),
    ('["bake"]', "JSON object"),
    ('{"mode": "paint", "out": "a.glb"}', "mode must be one of"),
    ('{"mode": "demo"}', "'out'"),
    ('{"mode": "demo", "out": "a.png"}', ".glb or .obj"),
    ('{"mode": "demo", "out": "../a.glb"}', "inside the output folder"),
    ('{"mode": "demo", "out": ".batch/a.glb"}', "inside the output folder"),
    ('{"mode": "bake", "out": "a.glb", "views": ["x.png"]}', "needs 'mesh'"),
    ('{"mode": "bake", "out": "a.glb", "mesh": "m.obj", "views": []}', "'views'"),
    ('{"mode": "demo", "out": "a.glb", "mesh": "m.obj"}', "unknown field"),
    ('{"mode": "demo", "out": "a.glb", "subdivisions": 9}', "subdivisions"),
    ('{"mode": "demo", "out": "a.glb", "options": {"texture_sise": 64}}', "texture-sise"),
    ('{"mode": "demo", "out": "a.glb", "options": {"texture_size": 1}}', "texture-size"),
    ('{"mode": "demo", "out": "a.glb", "options": {"inpaint": "blur"}}', "invalid choice"),
    ('{"mode": "demo", "out": "a.glb", "options": {"workers": 4}}', "set by texgen batch"),
    ('{"mode": "bake", "out": "a.glb", "mesh": "m.obj", "views": ["v.png"], "options": {"unwrap": "sometimes"}}',
     "invalid choice"),
    ('{"mode": "demo", "out": "a.glb", "options": {"fov": 200}}', "--fov"),
    ('{"mode": "demo", "out": "a.glb", "options": {"cameras": [1, 2]}}', "number, a string or a boolean"),
    ('{"mode": "demo", "out": "a.glb"}\n{"mode": "demo", "out": "A.glb"}', "also line 1"),
    ("# nothing\n", "holds no jobs"),
])
def test_manifest_errors_name_the_line(tmp_path, capsys, line, msg):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(line)
    with pytest.raises(ValueError, match="holds no jobs" if msg == "holds no jobs" else r"m\.jsonl:\d"):
        load_manifest(str(manifest))
    with pytest.raises(ValueError) as err:
        load_manifest(str(manifest))
    assert msg in str(err.value)
    # the command line prints it as one error line, exit status 2, before any job runs
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("texgen: error:")
    assert not (tmp_path / "out").exists()


def test_ray_is_imported_only_when_asked(tmp_path, monkeypatch):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"mode": "demo", "subdivisions": 0, "out": "a.glb", "options": SMALL}))
    code = ("import sys, texgen.batch, texgen.cli; texgen.cli.build_parser(); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)  # cwd: not the source tree
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=r"render_npu\[batch\]"):
        run_batch(str(manifest), str(tmp_path / "out"), ray="local", progress=False, log=None)


def test_bad_arguments(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"mode": "demo", "out": "a.glb"}))
    with pytest.raises(ValueError, match="workers"):
        run_batch(str(manifest), str(tmp_path / "o"), workers=-1)
    with pytest.raises(ValueError, match="threads"):
        run_batch(str(manifest), str(tmp_path / "o"), threads=0)
    with pytest.raises(ValueError, match="ray"):
        run_batch(str(manifest), str(tmp_path / "o"), ray="")
    with pytest.raises(ValueError, match="manifest not found"):
        run_batch(str(tmp_path / "missing.jsonl"), str(tmp_path / "o"))


def test_one_run_per_output_folder(tmp_path):
    from texgen.batch import _lock_out_dir

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"mode": "demo", "out": "a.glb"}))
    (tmp_path / "o" / ".batch").mkdir(parents=True)
    held = _lock_out_dir(str(tmp_path / "o"))  # as if another run were going on
    try:
        with pytest.raises(ValueError, match="another texgen batch run"):
            run_batch(str(manifest), str(tmp_path / "o"), workers=0, progress=False, log=None)
    finally:
        held.close()


def test_job_warnings_go_into_the_report(inputs, tmp_path):
    # the demo truth (radius 0.575) sits inside the radius-2 sphere: no view sees it
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"mode": "transfer", "source": str(inputs / "truth.glb"),
                                    "target": str(inputs / "sphere.ply"), "out": "hidden.glb", "options": SMALL}))
    summary = run_batch(str(manifest), str(tmp_path / "out"), workers=0, progress=False, log=None)
    (rec,) = summary.records
    assert rec["status"] == "ok"
    assert any("covers only" in w for w in rec["warnings"]), rec["warnings"]
