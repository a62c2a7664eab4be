"""``texgen batch``: texture many meshes from a JSON-lines manifest, on a local process pool or
on a Ray cluster, resumably.

**Manifest.** One JSON object a line (blank lines and lines starting with ``#`` are skipped).
Every job has a ``mode``, an ``out`` name (a ``.glb`` or ``.obj`` path relative to the output
folder; unique) and optional ``options``; input paths are relative to the manifest's folder:

    {"mode": "bake", "mesh": "chair.obj", "views": ["f.png", "r.png", "b.png", "l.png", "t.png", "u.png"], "out": "chair.glb"}
    {"mode": "transfer", "source": "hi.glb", "target": "lo.obj", "out": "lo.glb", "options": {"texture_size": 1024}}
    {"mode": "demo", "subdivisions": 5, "ring": false, "out": "synthetic/0.glb", "options": {"render_size": 1024}}

``bake`` and ``transfer`` are exactly ``texgen bake`` / ``texgen transfer`` (same defaults, same
checks); ``options`` are their long flags with ``_`` for ``-`` (``texture_size``, ``render_size``,
``cameras``, ``projection``, ``distance``, ``ortho_half_width``, ``fov``, ``bake_exp``,
``max_angle``, ``inpaint``, ``no_vertex_inpaint``, ``unwrap``, ``backend``, ``device``; ``true``
for a switch). ``demo`` is a synthetic job: :func:`~texgen.demo.demo_mesh` (``subdivisions``, ``ring``;
20 * 4**subdivisions body faces, about as many again for the ring) coloured per vertex with
:func:`~texgen.demo.solid_color` is transferred onto a fresh, unwrapped copy of its geometry
(``texgen demo``'s texturing step, without its previews and held-out views). Manifest errors (bad JSON, unknown mode or option, duplicate or
escaping ``out``) raise ``ValueError`` naming the line before any job runs.

**Running.** ``workers`` jobs run at once (default: one per core), each with
``threads = max(1, cores // workers)`` torch/compiled/OpenCV threads and bake view workers, so
the workers together use the cores once and never oversubscribe them (a pool worker also sets
``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` to ``threads`` for itself and the
child processes its jobs start, as Ray does for its tasks' OpenMP; and when ``workers * threads``
fits the CPUs, worker ``i`` keeps to CPUs ``i*threads .. (i+1)*threads - 1``); each job's raster cache is
the pipeline's own (bounded by :class:`~texgen.pipeline.PipelineConfig` ``cache_bytes``) and is
freed when the job ends. The local pool is a set of long-lived spawned processes, one job at a
time each, supervised so that a worker that dies (a crash, the OOM killer, ``kill -9``) fails
its job only and is replaced. ``ray="local"`` starts an in-process Ray cluster with ``cores``
CPUs; any other string is the address of an existing cluster (``ray.init(address=...)``); inputs
and the output folder must then be on storage every node sees. Each job is one Ray task with
``num_cpus = threads`` and no retries (resume is the retry). Ray is imported only then
(``pip install "render_npu[batch]"``). A Ray connection made by the caller is used as it is.

**Outputs and the report.** A job writes into a private folder under ``OUT/.batch/tmp`` and
moves its files into place with ``os.replace`` (companions first, the ``.glb``/``.obj`` last), so
a killed job never leaves a half-written file under its final name. Every finished, failed or
skipped job appends one line to ``OUT/report.jsonl``: ``job`` (the out name), ``status``
(``ok``, ``failed``, ``skipped``), ``error`` and ``traceback`` (failed jobs), ``seconds``,
``warnings`` (ok jobs), ``cpu_seconds`` (the job process's CPU time, all its threads),
``peak_rss_mb`` (the job's peak resident memory: the process high-water mark is reset when the
job starts), ``worker`` (host:pid), ``files`` (``{path: sha256}``), ``spec`` (a digest of the job's line with its inputs
resolved) and ``run`` (the run's start time). While a job runs, ``OUT/.batch/running/<job>.json``
names its process. One run at a time uses an output folder (a lock on ``OUT/.batch/lock``).

**Resume.** A rerun skips a job when its latest record is ``ok``/``skipped`` for the same spec
and every recorded file is still there with its recorded sha256; everything else (failed, never
finished, edited or damaged outputs, a changed manifest line) runs again.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import sys
import time
import traceback
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = ["Job", "BatchSummary", "load_manifest", "run_batch", "run_job", "read_report", "cpu_cores", "running_marker",
           "configure_threads"]

MODES = ("bake", "transfer", "demo")
REPORT = "report.jsonl"
STATE = ".batch"
# job fields besides mode/out/options, per mode
_FIELDS = {"bake": ("mesh", "views"), "transfer": ("source", "target"), "demo": ("subdivisions", "ring")}
_REQUIRED = {"bake": ("mesh", "views"), "transfer": ("source", "target"), "demo": ()}
# the batch decides these, not the manifest
_RESERVED_OPTIONS = {"workers", "no_progress", "out", "o", "views", "subdivisions", "overwrite"}


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Job:
    """One manifest line, validated. ``argv`` is the ``texgen`` command line it stands for
    (without ``-o``); ``spec`` a sha256 of the line with its input paths resolved."""
    line: int
    mode: str
    out: str
    argv: Tuple[str, ...]
    ring: bool = True
    spec: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"line": self.line, "mode": self.mode, "out": self.out, "argv": list(self.argv), "ring": self.ring,
                "spec": self.spec}


@dataclass
class BatchSummary:
    """What :func:`run_batch` did: counts, wall time (s), and this run's report records."""
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    records: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def jobs_per_minute(self) -> float:
        """Jobs finished successfully per minute of wall time (skipped jobs not counted)."""
        return 60.0 * self.done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"{self.done} done, {self.skipped} skipped, {self.failed} failed in {self.seconds:.1f} s "
                f"({self.jobs_per_minute:.1f} jobs/min)")


# ---------------------------------------------------------------------------------------------
# manifest

def _option_flags(options: Dict[str, Any], where: str) -> List[str]:
    flags: List[str] = []
    for key, value in options.items():
        name = str(key).replace("-", "_")
        if name in _RESERVED_OPTIONS:
            raise ValueError(f"{where}: option {key!r} is set by texgen batch, not by the manifest")
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (int, float, str)):
            flags += [flag, str(value)]
        else:
            raise ValueError(f"{where}: option {key!r} must be a number, a string or a boolean, got {value!r}")
    return flags


@functools.lru_cache(maxsize=None)
def _parser():
    from .cli import build_parser

    return build_parser()  # built once: building it is most of a manifest line's checking time


def _parse_cli(argv: Sequence[str]):
    """argparse Namespace of a ``texgen`` command line; ``ValueError`` with argparse's message
    instead of its ``SystemExit``."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return _parser().parse_args(list(argv))
    except SystemExit:
        lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
        raise ValueError(lines[-1] if lines else "invalid options") from None


def _job_from(obj: Any, line: int, base: str, where: str) -> Job:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: a job must be a JSON object, got {type(obj).__name__}")
    mode = obj.get("mode")
    if mode not in MODES:
        raise ValueError(f"{where}: mode must be one of {', '.join(MODES)}, got {mode!r}")
    known = {"mode", "out", "options", *_FIELDS[mode]}
    extra = sorted(set(obj) - known)
    if extra:
        raise ValueError(f"{where}: unknown field(s) {', '.join(map(repr, extra))} for mode {mode!r} "
                         f"(known: {', '.join(sorted(known))})")
    out = obj.get("out")
    if not isinstance(out, str) or not out:
        raise ValueError(f"{where}: 'out' must be a non-empty relative path ending in .glb or .obj")
    norm = os.path.normpath(out)
    if os.path.isabs(out) or norm == ".." or norm.startswith(".." + os.sep) or norm.split(os.sep)[0] == STATE \
            or norm == REPORT:
        raise ValueError(f"{where}: 'out' must stay inside the output folder, got {out!r}")
    if os.path.splitext(norm)[1].lower() not in (".glb", ".obj"):
        raise ValueError(f"{where}: 'out' must end in .glb or .obj, got {out!r}")
    for name in _REQUIRED[mode]:
        if name not in obj:
            raise ValueError(f"{where}: mode {mode!r} needs {name!r}")
    options = obj.get("options", {})
    if not isinstance(options, dict):
        raise ValueError(f"{where}: 'options' must be an object, got {type(options).__name__}")

    def path(v: Any, name: str) -> str:
        if not isinstance(v, str) or not v:
            raise ValueError(f"{where}: {name!r} must be a path string, got {v!r}")
        return os.path.abspath(os.path.join(base, v))

    ring = True
    if mode == "bake":
        views = obj["views"]
        if not isinstance(views, list) or not views:
            raise ValueError(f"{where}: 'views' must be a non-empty list of image paths")
        inputs = [path(obj["mesh"], "mesh")] + [path(v, "views") for v in views]
        argv = ["bake", inputs[0], "--views", *inputs[1:]]
    elif mode == "transfer":
        inputs = [path(obj["source"], "source"), path(obj["target"], "target")]
        argv = ["transfer", *inputs]
    else:
        sub = obj.get("subdivisions", 4)
        if not isinstance(sub, int) or isinstance(sub, bool) or not 0 <= sub <= 7:
            raise ValueError(f"{where}: 'subdivisions' must be an int in [0, 7], got {sub!r}")
        ring = obj.get("ring", True)
        if not isinstance(ring, bool):
            raise ValueError(f"{where}: 'ring' must be true or false, got {ring!r}")
        argv = ["demo", "--subdivisions", str(sub)]
    argv += _option_flags(options, where)
    try:
        args = _parse_cli(argv + (["-o", "checked.glb"] if mode != "demo" else []))  # the worker sets -o
        from .cli import _check_options

        _check_options(args)  # the device is checked where the job runs: the driver may have none
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    canon = json.dumps({"mode": mode, "out": norm, "argv": argv, "ring": ring}, sort_keys=True)
    return Job(line, mode, norm.replace(os.sep, "/"), tuple(argv), ring, hashlib.sha256(canon.encode()).hexdigest()[:16])


def load_manifest(path: str) -> List[Job]:
    """Read and validate a JSON-lines manifest (see the module docstring)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"manifest not found: {path}")
    base = os.path.dirname(os.path.abspath(path))
    jobs: List[Job] = []
    seen: Dict[str, int] = {}
    with open(path, "r", encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{os.path.basename(path)}:{n}"
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            job = _job_from(obj, n, base, where)
            key = job.out.lower()
            if key in seen:
                raise ValueError(f"{where}: output {job.out!r} is also line {seen[key]}'s")
            seen[key] = n
            jobs.append(job)
    if not jobs:
        raise ValueError(f"manifest {path} holds no jobs")
    return jobs


# ---------------------------------------------------------------------------------------------
# one job (runs in a pool worker, a Ray task, or inline)

def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _peak_rss_mb() -> Optional[float]:
    from render_npu.testing import status_kb

    kb = status_kb("VmHWM")
    if kb is None:
        try:
            import resource

            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # lifetime peak: an upper bound
        except Exception:  # pragma: no cover - platforms without resource
            return None
    return round(kb / 1024.0, 1)


def _safe(name: str) -> str:
    """A file name for job ``name`` (an out path): readable, and unique per out path."""
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{readable}.{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def running_marker(out_dir: str, out: str) -> str:
    """Path of the JSON file ``{"job", "host", "pid", "started"}`` that exists while job ``out``
    runs (a killed job's marker is removed by the batch when it learns of the death)."""
    return os.path.join(os.path.abspath(out_dir), STATE, "running", _safe(out) + ".json")


def _clean_leftovers(out_dir: str, job_out: Optional[str] = None) -> None:
    """Remove the private folders and running markers of dead jobs (one job's, or all: only one
    run uses an output folder at a time)."""
    for sub in ("tmp", "running"):
        folder = os.path.join(out_dir, STATE, sub)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if job_out is None or name.startswith(_safe(job_out) + "-") or name == _safe(job_out) + ".json":
                p = os.path.join(folder, name)
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(p)


def configure_threads(threads: int) -> None:
    """Size this process's thread pools: torch intra-op (also the compiled rasterizer's default),
    OpenCV. Results never depend on it."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    try:
        import cv2

        cv2.setNumThreads(max(1, int(threads)))
    except Exception:  # OpenCV missing or built without threads: nothing to size
        pass


def _execute(job: Job, out_path: str, threads: int) -> List[str]:
    from . import cli

    argv = list(job.argv) + ["--no-progress", "--workers", str(threads)]
    if job.mode != "demo":
        argv += ["-o", out_path]
    args = _parse_cli(argv)
    vars(args).setdefault("unwrap", "auto")  # `texgen demo` has no --unwrap; its pipeline's is auto
    cli._check_device(args)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if job.mode == "bake":
            cli._cmd_bake(args)
        elif job.mode == "transfer":
            cli._cmd_transfer(args)
        else:
            from .demo import demo_mesh, solid_color
            from .mesh import Mesh
            from .sources import TransferSource

            mesh = demo_mesh(args.subdivisions, ring=job.ring)
            # vertex colours, not the demo's unwrapped ground-truth atlas: one xatlas run per job,
            # like a real bake of an untextured mesh
            truth = Mesh(mesh.pos, mesh.pos_idx, vertex_colors=solid_color(mesh.pos), name="demo-truth")
            pipe = cli._pipeline(args, args.render_size)
            result = pipe(Mesh(mesh.pos, mesh.pos_idx, name="demo-target"), TransferSource(truth))
            result.export(out_path)
    # the job's warnings (a re-unwrapped atlas, ...) go into its record, not a worker's stderr
    return list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))


def run_job(job: Any, out_dir: str, threads: int = 1, run_id: str = "") -> Dict[str, Any]:
    """Run one job (a :class:`Job` or its ``to_dict()``) in this process; never raises for the
    job's own failures. Returns its report record (see the module docstring)."""
    from .files import write_file

    if isinstance(job, dict):
        job = Job(job["line"], job["mode"], job["out"], tuple(job["argv"]), job["ring"], job["spec"])
    out_dir = os.path.abspath(out_dir)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    rec: Dict[str, Any] = {"job": job.out, "line": job.line, "mode": job.mode, "status": "failed", "error": None,
                           "seconds": None, "peak_rss_mb": None, "worker": worker, "files": {}, "spec": job.spec,
                           "run": run_id}
    running = running_marker(out_dir, job.out)
    tmp = os.path.join(out_dir, STATE, "tmp", f"{_safe(job.out)}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    from render_npu.testing import reset_peak_rss

    exact_peak = reset_peak_rss()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        os.makedirs(os.path.dirname(running), exist_ok=True)
        write_file(running, json.dumps({"job": job.out, "host": socket.gethostname(), "pid": os.getpid(),
                                        "started": time.time()}))
        configure_threads(threads)
        os.makedirs(tmp)
        main = os.path.join(tmp, os.path.basename(job.out))
        rec["warnings"] = _execute(job, main, threads)
        if not os.path.isfile(main):
            raise RuntimeError(f"the job wrote no {os.path.basename(job.out)}")
        dest = os.path.dirname(os.path.join(out_dir, job.out))
        os.makedirs(dest, exist_ok=True)
        names = sorted(os.listdir(tmp), key=lambda n: (n == os.path.basename(main), n))  # the main file last
        files = {}
        for name in names:
            rel = os.path.relpath(os.path.join(dest, name), out_dir).replace(os.sep, "/")
            files[rel] = _sha256(os.path.join(tmp, name))
            os.replace(os.path.join(tmp, name), os.path.join(dest, name))
        rec.update(status="ok", files=files)
    except Exception as exc:  # one job's failure must not stop the worker
        rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])
    finally:
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        rec["cpu_seconds"] = round(time.process_time() - c0, 3)
        peak = _peak_rss_mb()
        rec["peak_rss_mb"] = peak
        if not exact_peak:
            rec["peak_rss_note"] = "process lifetime peak"
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(running)
    return rec


# ---------------------------------------------------------------------------------------------
# the report and resume

def read_report(out_dir: str) -> Dict[str, Dict[str, Any]]:
    """The latest record of every job in ``OUT/report.jsonl`` (by out name); torn lines (a run
    killed while writing) are ignored."""
    latest: Dict[str, Dict[str, Any]] = {}
    path = os.path.join(out_dir, REPORT)
    if not os.path.isfile(path):
        return latest
    with open(path, "r", encoding="utf-8") as f:
        for ln in f:
            try:
                rec = json.loads(ln)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("job"), str):
                latest[rec["job"]] = rec
    return latest


def _complete(job: Job, rec: Optional[Dict[str, Any]], out_dir: str) -> bool:
    if not rec or rec.get("status") not in ("ok", "skipped") or rec.get("spec") != job.spec or not rec.get("files"):
        return False
    for rel, digest in rec["files"].items():
        p = os.path.join(out_dir, rel)
        if not os.path.isfile(p) or _sha256(p) != digest:
            return False
    return True


def _lock_out_dir(out_dir: str):
    """An exclusive lock on ``OUT/.batch/lock`` for the run (``ValueError`` if another run holds
    it): two runs in one folder would clean up and redo each other's jobs."""
    f = open(os.path.join(out_dir, STATE, "lock"), "a+")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return f
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise ValueError(f"another texgen batch run is using {out_dir}") from None
    return f


class _Report:
    """Appends records to ``OUT/report.jsonl``, one flushed and fsynced line each."""

    def __init__(self, out_dir: str):
        self.f = open(os.path.join(out_dir, REPORT), "a", encoding="utf-8")

    def write(self, rec: Dict[str, Any]) -> None:
        self.f.write(json.dumps(rec, sort_keys=True) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def _died(job: Job, run_id: str, started: float, worker: str, why: str) -> Dict[str, Any]:
    return {"job": job.out, "line": job.line, "mode": job.mode, "status": "failed", "error": why,
            "seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": None, "worker": worker,
            "files": {}, "spec": job.spec, "run": run_id}


def _exit_reason(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            return f"the worker process died (signal {-code}, {signal.Signals(-code).name})"
        except ValueError:
            return f"the worker process died (signal {-code})"
    return f"the worker process died (exit code {code})"


# ---------------------------------------------------------------------------------------------
# executors: each yields one record per job, in completion order

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_main(conn, out_dir: str, threads: int, cpus: Optional[Sequence[int]] = None) -> None:
    """A pool worker: run the jobs the parent sends, one at a time, until it sends None. ``cpus``:
    the CPUs of its slot, which it and its jobs' child processes keep to."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if cpus:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, set(cpus))
    # before numpy/torch load (this module imports neither; the parent's main script may): OpenMP and OpenBLAS pools
    # sized like the job, here and in the job's child processes (xatlas's numpy would start an
    # idle BLAS thread per core in every job's child, on cores the other workers use)
    for var in _THREAD_ENV:
        os.environ[var] = str(threads)
    configure_threads(threads)
    import texgen.cli  # noqa: F401  (import torch & co once, before the first job)

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        job, run_id = msg
        conn.send(run_job(job, out_dir, threads, run_id))


def _pool_records(jobs: List[Job], out_dir: str, workers: int, threads: int, run_id: str) -> Iterator[Dict]:
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")  # fork after torch's threads start is unsafe
    pending = list(reversed(jobs))
    slots: List[Dict[str, Any]] = []

    # one slot of `threads` CPUs per worker when they fit: a worker and the xatlas child each job
    # starts stay on their slot, so two workers' xatlas runs (kept to one CPU each, see
    # texgen._xatlas_worker) never land on one CPU while the other idles
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    fit = bool(allowed) and workers * threads <= len(allowed)

    def start(slot: int) -> Dict[str, Any]:
        cpus = allowed[slot * threads:(slot + 1) * threads] if fit else None
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker_main, args=(child, out_dir, threads, cpus), daemon=True, name="texgen-batch")
        p.start()
        child.close()
        return {"proc": p, "conn": parent, "job": None, "t0": 0.0, "slot": slot}

    try:
        for slot in range(min(workers, len(jobs))):
            slots.append(start(slot))
        while True:
            for i in range(len(slots)):
                s = slots[i]
                while s["job"] is None and pending and not s.get("dead"):
                    if not s["proc"].is_alive():  # died while idle: replace it, nothing is lost
                        s["conn"].close()
                        slots[i] = s = start(i)
                    job = pending.pop()
                    try:
                        s["conn"].send((job.to_dict(), run_id))
                        s["job"], s["t0"] = job, time.perf_counter()
                    except (OSError, ValueError):  # died between the check and the send
                        pending.append(job)
                        s["conn"].close()
                        slots[i] = s = start(i)
            busy = [s for s in slots if s["job"] is not None]
            if not busy:  # every live worker took a job while any was pending
                return
            ready = set(wait([s["conn"] for s in busy] + [s["proc"].sentinel for s in busy]))
            for i, s in enumerate(slots):
                if s["job"] is None or (s["conn"] not in ready and s["proc"].sentinel not in ready):
                    continue
                rec = None
                try:
                    if s["conn"].poll():
                        rec = s["conn"].recv()
                except (EOFError, OSError):
                    rec = None
                if rec is not None:
                    s["job"] = None
                    yield rec
                    continue
                if s["proc"].is_alive() and s["proc"].sentinel not in ready:
                    continue
                s["proc"].join(5)
                worker = f"{socket.gethostname()}:{s['proc'].pid}"
                yield _died(s["job"], run_id, s["t0"], worker, _exit_reason(s["proc"].exitcode))
                s["conn"].close()
                slots[i] = start(i) if pending else {"proc": s["proc"], "conn": s["conn"], "job": None, "t0": 0.0,
                                                     "dead": True}
    finally:
        for s in slots:
            if s.get("dead"):
                continue
            if s["job"] is not None:  # interrupted mid-job (Ctrl-C, an error here): stop it now
                s["proc"].terminate()
            else:
                with contextlib.suppress(Exception):
                    s["conn"].send(None)
        for s in slots:
            s["proc"].join(10)
            if s["proc"].is_alive():
                s["proc"].kill()
                s["proc"].join(5)


@contextlib.contextmanager
def _same_modules_for_ray_workers(neutral_dir: str):
    """While a local Ray cluster starts: Ray's workers start in the driver's working directory and
    put it first on ``sys.path``, so from a source checkout they would import that tree's texgen
    and render_npu, not the ones this process runs (the installed package, say). Start them in
    ``neutral_dir`` and, when this texgen is not an installed one, put its folder on PYTHONPATH
    (the workers inherit the environment)."""
    import texgen

    root = os.path.dirname(os.path.dirname(os.path.abspath(texgen.__file__)))
    installed = os.path.basename(root) in ("site-packages", "dist-packages")
    old_cwd, old_path = os.getcwd(), os.environ.get("PYTHONPATH")
    try:
        if not installed:
            os.environ["PYTHONPATH"] = root + (os.pathsep + old_path if old_path else "")
        os.chdir(neutral_dir)
        yield
    finally:
        os.chdir(old_cwd)
        if old_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_path


def _ray_records(jobs: List[Job], out_dir: str, ray_address: str, cores: int, threads: int,
                 run_id: str) -> Iterator[Dict]:
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray: pip install \"render_npu[batch]\" (or pip install ray)") from None
    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False)
        if ray_address == "local":
            with _same_modules_for_ray_workers(out_dir):
                ray.init(num_cpus=cores, **kw)
        else:
            ray.init(address=ray_address, **kw)
        started = True
    try:
        task = ray.remote(num_cpus=threads, max_retries=0)(run_job)
        refs = {task.remote(job.to_dict(), out_dir, threads, run_id): (job, time.perf_counter()) for job in jobs}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                job, t0 = refs.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died, the node went away, ...
                    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    yield _died(job, run_id, t0, "ray", f"{type(exc).__name__}: {msg}"[:500])
    finally:
        if started:
            ray.shutdown()


def _serial_records(jobs: List[Job], out_dir: str, threads: int, run_id: str) -> Iterator[Dict]:
    import torch

    saved = torch.get_num_threads()
    try:
        for job in jobs:
            yield run_job(job, out_dir, threads, run_id)
    finally:
        configure_threads(saved)  # this is the caller's process


# ---------------------------------------------------------------------------------------------

def run_batch(manifest: str, out_dir: str, workers: Optional[int] = None, ray: Optional[str] = None,
              threads: Optional[int] = None, progress: bool = True, log=print) -> BatchSummary:
    """Run a manifest's unfinished jobs into ``out_dir`` (see the module docstring).

    Args:
        manifest: JSON-lines manifest path.
        out_dir: output folder (created); holds the outputs, ``report.jsonl`` and ``.batch/``.
        workers: jobs at once (default: one per core). ``0`` runs the jobs one after the other in
            this process (the serial baseline; a crash there ends the run).
        ray: None (the local pool), ``"local"`` (a local Ray cluster) or a Ray cluster address.
        threads: threads per job (default ``max(1, cores // workers)``).
        progress: tqdm bar (on stderr).
        log: where the summary line goes (None: nowhere).
    Returns:
        :class:`BatchSummary`.
    """
    from tqdm.auto import tqdm

    jobs = load_manifest(manifest)
    cores = cpu_cores()
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 0):
        raise ValueError(f"workers must be an int >= 0, got {workers!r}")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    if ray is not None and (not isinstance(ray, str) or not ray):
        raise ValueError(f"ray must be 'local' or a cluster address, got {ray!r}")
    n = cores if workers is None else workers
    threads = threads or max(1, cores // max(n, 1))
    out_dir = os.path.abspath(out_dir)
    os.makedirs(os.path.join(out_dir, STATE), exist_ok=True)
    lock = _lock_out_dir(out_dir)
    _clean_leftovers(out_dir)
    os.makedirs(os.path.join(out_dir, STATE, "tmp"), exist_ok=True)
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
    latest = read_report(out_dir)
    report = _Report(out_dir)
    summary = BatchSummary()
    t0 = time.perf_counter()
    todo: List[Job] = []
    try:
        for job in jobs:
            rec = latest.get(job.out)
            if _complete(job, rec, out_dir):
                skip = {"job": job.out, "line": job.line, "mode": job.mode, "status": "skipped", "error": None,
                        "seconds": 0.0, "peak_rss_mb": None, "worker": None, "files": rec["files"],
                        "spec": job.spec, "run": run_id}
                report.write(skip)
                summary.records.append(skip)
                summary.skipped += 1
            else:
                todo.append(job)
        if ray is not None:
            records = _ray_records(todo, out_dir, ray, max(n, 1) * threads, threads, run_id)
        elif n == 0:
            records = _serial_records(todo, out_dir, threads, run_id)
        else:
            records = _pool_records(todo, out_dir, n, threads, run_id)
        with tqdm(total=len(todo), desc="texgen batch", unit="job", disable=not progress or not todo,
                  file=sys.stderr) as bar:
            try:
                for rec in records:
                    report.write(rec)
                    summary.records.append(rec)
                    if rec["status"] == "ok":
                        summary.done += 1
                    else:
                        summary.failed += 1
                        _clean_leftovers(out_dir, rec["job"])  # what a killed job left behind
                        bar.write(f"texgen batch: {rec['job']} failed: {rec['error']}", file=sys.stderr)
                    bar.set_postfix(failed=summary.failed, refresh=False)
                    bar.update(1)
            finally:
                records.close()
    finally:
        report.close()
        lock.close()  # releases the lock
        summary.seconds = time.perf_counter() - t0
    if log is not None:
        log(f"texgen batch: {summary.line()}; report: {os.path.join(out_dir, REPORT)}")
    return summary
