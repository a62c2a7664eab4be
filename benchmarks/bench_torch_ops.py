"""The torch backend as an NPU would see it: dispatched ops, host syncs, bytes moved, the largest
temporary, an estimated Ascend time from a stated cost model, and measured CPU times beside the
compiled C++ backend (quiet, then with busy-loop processes on every core), all in one run.

    python benchmarks/bench_torch_ops.py [--scenes 20000x512 200000x1024 1000000x2048]
                                         [--repeat 5] [--hog N] [--no-time]

Counts come from ``render_npu.testing.count_ops`` (a TorchDispatchMode around
``render_npu.rasterize(..., backend="torch")``, CPU tensors, one torch thread, a device's stamp
sizes: the op sequence is the one an NPU would run, except that an accelerator has no CPU chunk
caps, see docs/torch_backend.md; with more threads a CPU call also splits its setup into one block per
thread). The times use the default thread count (torch: chunk workers, cpu: its threads).
"largest tensor": the largest tensor one op made (tables included); "peak tensor" is ``render_npu.testing.peak_tensor_bytes`` (storages the call creates, outputs
included; on CPU the numpy-backed outputs and key buffer, 28 B per pixel, are not seen by it);
"peak RSS" the growth of a fresh process' resident peak during its first call (everything
included: outputs, key buffer, allocator retention).

Cost model (per call; every constant is a command-line option):

    T = max(T_host, T_device) + syncs * t_sync
    T_host   = kernels * t_launch                        (host-side op dispatch, asynchronous)
    T_device = sum over kernels of max(t_kernel, bytes_moved / (efficiency * HBM bandwidth))

* HBM bandwidth 1.6 TB/s: Atlas A2 (Ascend 910B2), "Memory 带宽 1.6TB/s" in the spec table of
  CANN's cross-platform migration guide (docs/zh/develop/cross_platform_migration_guide.md in
  gitcode.com/cann/ops-nn; quoted with Huawei's 950 white paper in
  https://gitcode.com/cann/ops-nn/issues/6033). 24 AI Cores (48 vector cores) at 1.8 GHz.
* efficiency 0.6 of that peak for streaming element-wise/gather kernels: an assumption.
* t_launch 10 us per op: an assumption. Huawei's torch_npu "Host Bound" guide
  (https://www.hiascend.com/document/detail/en/mindstudio/830/practicalcases/GeneralPerformanceIssue/toolsample6_052.html)
  says host-side operator dispatch limits small-op workloads ("reduce the number of operator
  deliveries") and that item()/cpu() syncs stall the stream, but publishes no per-op figure.
* t_kernel 3 us minimum device time per kernel, t_sync 50 us per host sync (stream drain plus a
  small device -> host copy): assumptions.
* AICPU/CPU fallback: torch_npu runs ``scatter_reduce`` through aclnnScatterReduce, which CANN
  added in 9.2.0; before it, reductions other than sum fall back to the host CPU
  (https://gitcode.com/Ascend/op-plugin/pull/5624). The "scatter_reduce" column counts the ops
  at risk (the visibility merge, one per raster chunk). NonZero runs on the AI Core for bool
  inputs on 910B (cann/ops-nn index/non_zero/op_api/nonzero.cpp): the backend only calls it on
  bool masks. Mul/Equal on int64 are AI Core ops (msprof-analyze's AICPU operator replacement
  notes).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import render_npu  # noqa: E402
from bench_rasterize import cpu_name, scene  # noqa: E402
from render_npu.testing import count_ops, peak_tensor_bytes  # noqa: E402


def estimate_ascend_ms(counts, launch_us: float, kernel_us: float, sync_us: float, bw: float, eff: float) -> float:
    """The cost model above, in milliseconds."""
    host = counts.kernels * launch_us * 1e-6
    dev = sum(max(kernel_us * 1e-6, (r + w) / (eff * bw)) for _, r, w in counts.traffic)
    return (max(host, dev) + counts.syncs * sync_us * 1e-6) * 1e3


def timed_pair(res: int, faces: torch.Tensor, pos: torch.Tensor, repeat: int):
    """Median wall ms of torch and cpu, calls alternating (so both see the same load)."""
    times = {"torch": [], "cpu": []}
    for name in times:  # warm-up
        render_npu.rasterize(res, faces, pos, backend=name)
    for _ in range(repeat):
        for name in times:
            t0 = time.perf_counter()
            render_npu.rasterize(res, faces, pos, backend=name)
            times[name].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def start_hogs(n: int):
    """n busy-loop processes (the "CPU hog" of the issue); stop them with stop_hogs."""
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(n)]


def stop_hogs(procs) -> None:
    for p in procs:
        p.kill()
        p.wait()


def fresh_peak_rss(n_faces: int, res: int) -> int:
    """Peak extra resident bytes of one torch-backend call in a fresh process (scene made first)."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import torch, render_npu; from bench_rasterize import scene; "
            f"p, f = scene({n_faces}, torch.device('cpu')); p, f = torch.from_numpy(p), torch.from_numpy(f); "
            f"from render_npu.testing import status_kb; base = status_kb('VmRSS'); render_npu.rasterize({res}, f, p, backend='torch'); "
            f"print(1024 * (status_kb('VmHWM') - base))")
    # cwd: not the repository, whose source tree `-c` would import instead of the installed package
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                         cwd=tempfile.gettempdir())
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else -1


@contextlib.contextmanager
def device_stamp_sizes():
    """The torch backend's op sequence as on a device while counting: a device's stamp sizes (on
    CPU it adds a 6 x 6 class for single-stamp pieces, one more group of ops) and none of the other
    CPU-only variants (``setup.cpu_shortcuts``: the windowed key scatter, the depth-test depth only
    where needed, which costs a fourth host read on CPU). Results are bitwise the same."""
    from render_npu.backends.torch import driver, setup

    saved = driver.stamp_sizes, driver.cpu_shortcuts
    driver.stamp_sizes = lambda device: setup._STAMP_SIZES
    driver.cpu_shortcuts = lambda device: False
    try:
        yield
    finally:
        driver.stamp_sizes, driver.cpu_shortcuts = saved


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=["20000x512", "200000x1024", "1000000x2048"],
                    help="FACESxRESOLUTION (UV sphere, orthographic, as bench_rasterize.py)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--hog", type=int, default=os.cpu_count() or 2, help="busy-loop processes for the loaded run")
    ap.add_argument("--no-time", action="store_true", help="counts and the model only")
    ap.add_argument("--launch-us", type=float, default=10.0)
    ap.add_argument("--kernel-us", type=float, default=3.0)
    ap.add_argument("--sync-us", type=float, default=50.0)
    ap.add_argument("--hbm-tbps", type=float, default=1.6)
    ap.add_argument("--efficiency", type=float, default=0.6)
    args = ap.parse_args(argv)
    cpu_ok = render_npu.backends()["cpu"][0]
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}; model: launch {args.launch_us:g} us, kernel >= {args.kernel_us:g} us, "
          f"sync {args.sync_us:g} us, HBM {args.hbm_tbps:g} TB/s x {args.efficiency:g}")
    print()
    print("| faces | image | ops | kernels | host syncs | scatter_reduce | MB read | MB written | largest tensor MB "
          "| peak tensor MB | peak RSS MB | est. Ascend 910B ms | torch ms | cpu ms | ratio "
          "| torch ms (hog) | cpu ms (hog) | ratio (hog) |")
    print("|" + "---:|" * 18)
    for spec in args.scenes:
        n_faces, res = (int(v) for v in spec.lower().split("x"))
        pos_np, faces_np = scene(n_faces, torch.device("cpu"))
        pos, faces = torch.from_numpy(pos_np), torch.from_numpy(faces_np)

        def call():
            return render_npu.rasterize(res, faces, pos, backend="torch")

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the device op sequence (one chunk worker) ...
        try:
            with device_stamp_sizes():  # ... and the stamp sizes of a device (no CPU-only class)
                _, c = count_ops(call)
            _, peak = peak_tensor_bytes(call)
        finally:
            torch.set_num_threads(threads)
        rss = fresh_peak_rss(n_faces, res)
        est = estimate_ascend_ms(c, args.launch_us, args.kernel_us, args.sync_us, args.hbm_tbps * 1e12, args.efficiency)
        cells = [f"{faces_np.shape[0]:,}", f"{res}²", str(c.total), str(c.kernels), str(c.syncs),
                 str(c.by_name.get("scatter_reduce_", 0) + c.by_name.get("scatter_reduce", 0)),
                 f"{c.bytes_read / 2**20:.0f}", f"{c.bytes_written / 2**20:.0f}", f"{c.largest / 2**20:.1f}",
                 f"{peak / 2**20:.0f}", "-" if rss < 0 else f"{rss / 2**20:.0f}", f"{est:.2f}"]
        if args.no_time or not cpu_ok:
            cells += ["-"] * 6
        else:
            quiet = timed_pair(res, faces, pos, args.repeat)
            hogs = start_hogs(args.hog)
            try:
                time.sleep(0.5)
                loaded = timed_pair(res, faces, pos, args.repeat)
            finally:
                stop_hogs(hogs)
            for t in (quiet, loaded):
                cells += [f"{t['torch']:.0f}", f"{t['cpu']:.1f}", f"{t['torch'] / t['cpu']:.1f}x"]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
