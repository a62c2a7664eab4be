"""Rasterizer benchmark: backend x faces (UV sphere) x resolution -> median ms per frame, Mpix/s,
peak extra memory, with Mesa llvmpipe (OpenGL via moderngl/EGL) timed in the same run.

    python benchmarks/bench_rasterize.py [--faces 20000 200000 1000000] [--res 1024 2048]
                                         [--backends cpu torch] [--repeat 5] [--threads N]

Rows: llvmpipe renders into its persistent framebuffer and reads the ids back; "cpu" returns
fresh output tensors (rast + depth: 20 bytes per pixel, whose first-touch page faults are part of
the cost); "cpu, out= reused" writes into preallocated buffers (``rasterize(..., out=...)``).

Peak memory: CPU rows report the growth of the process' peak resident set during the call
(VmHWM after resetting it through /proc/self/clear_refs); CUDA rows report
torch.cuda.max_memory_allocated. The output is a markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import render_npu  # noqa: E402
from render_npu.meshes import look_at, orthographic, sphere_with_faces, to_clip  # noqa: E402
from render_npu.testing import reset_peak_rss, status_kb  # noqa: E402


def measure(fn, repeat: int, device: torch.device):
    """Returns (median seconds, peak extra bytes or None)."""
    fn()  # warm-up (allocations, torch.compile caches, GL shader compile)
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    elif reset_peak_rss():
        base = status_kb("VmRSS")
        fn()
        peak = max(0, status_kb("VmHWM") - base) * 1024
    return statistics.median(times), peak


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or platform's guess), for the benchmark tables' header."""
    try:
        with open("/proc/cpuinfo") as fh:
            return next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def scene(n_faces: int, device: torch.device):
    verts, faces = sphere_with_faces(n_faces)
    mvp = orthographic(1.2, 0.1, 10.0) @ look_at((0.3, 0.4, 3.0))
    return to_clip(verts, mvp), faces


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, nargs="+", default=[20_000, 200_000, 1_000_000])
    ap.add_argument("--res", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--backends", nargs="*", default=None, help="default: cpu and torch where available")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: all cores)")
    ap.add_argument("--no-gl", action="store_true", help="skip Mesa llvmpipe")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    avail = render_npu.backends()
    names = args.backends if args.backends is not None else [n for n in ("cpu", "torch", "ascendc") if avail[n][0]]
    gl = None
    if not args.no_gl and device.type == "cpu":
        try:
            sys.path.insert(0, os.path.dirname(__file__))
            from _gl import GLRasterizer

            gl = GLRasterizer()
        except Exception as exc:  # no EGL here: say so and go on
            print(f"(llvmpipe unavailable: {exc})", file=sys.stderr)

    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {device}"
          + (f", GL: {gl.renderer}" if gl else ""))
    print()
    print("| backend | faces | resolution | ms/frame | Mpix/s | peak extra MB | vs llvmpipe |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n_faces in args.faces:
        pos_np, faces_np = scene(n_faces, device)
        pos = torch.from_numpy(pos_np).to(device)
        faces = torch.from_numpy(faces_np).to(device)
        for res in args.res:
            rows = []
            gl_ms = None
            if gl is not None:
                vao = gl.prepare(pos_np, faces_np)
                t, peak = measure(lambda: gl.draw(vao, res, res), args.repeat, device)
                gl_ms = t * 1e3
                rows.append(("llvmpipe (OpenGL)", gl_ms, peak))
                vao.release()
            for name in names:
                def run(name=name):
                    return render_npu.rasterize(res, faces, pos, viewport="opengl", backend=name)

                t, peak = measure(run, args.repeat, device)
                rows.append((name, t * 1e3, peak))
                if name == "cpu":  # into reused buffers, as a render loop (and llvmpipe's framebuffer) would
                    out = (torch.empty((1, res, res, 4), device=device), torch.empty((1, res, res), device=device))

                    def run_out():
                        return render_npu.rasterize(res, faces, pos, viewport="opengl", backend="cpu", out=out)

                    t, peak = measure(run_out, args.repeat, device)
                    rows.append(("cpu, out= reused", t * 1e3, peak))
                    del out
            for name, ms, peak in rows:
                mpix = res * res / (ms * 1e-3) / 1e6
                ratio = f"{gl_ms / ms:.2f}x" if gl_ms and not name.startswith("llvmpipe") else ""
                peak_s = f"{peak / 2**20:.0f}" if peak is not None else "-"
                print(f"| {name} | {faces_np.shape[0]:,} | {res}x{res} | {ms:.1f} | {mpix:.0f} | {peak_s} | {ratio} |",
                      flush=True)


if __name__ == "__main__":
    main()
