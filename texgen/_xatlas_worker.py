"""xatlas with texgen's options; run as a script (``python _xatlas_worker.py IN.npz OUT.npz [CPUS]``) by
:func:`texgen.uv.unwrap` so that the long C++ call lives in a child process it can kill on
Ctrl-C. Imports only numpy and xatlas (running the file does not import the texgen package)."""
import os
import sys

import numpy as np


def run_xatlas(pos, faces, size: int, padding: int):
    """(vmapping [T], indices [F, 3], uvs [T, 2]) of xatlas's atlas: ``size``^2 texels, ``padding``
    texels between charts, bilinear-safe packing; default chart options."""
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(pos, np.float32), np.ascontiguousarray(faces, np.uint32))
    chart, pack = xatlas.ChartOptions(), xatlas.PackOptions()
    pack.resolution = int(size)
    pack.padding = int(padding)
    pack.bilinear = True
    atlas.generate(chart, pack, False)
    return atlas[0]


def keep_to_cpus(n: int) -> None:
    """Run this process on ``n`` CPUs (from the one it is on now, in its allowed set) when that is
    fewer than it may use. xatlas runs its tasks on a pool of ``cores - 1`` threads plus the
    calling thread, which spins (``yield``) while the pool finishes: on free cores that only
    burns them, but next to other busy processes (a batch's other workers) the spinning thread
    takes their CPU time. On one CPU its yield hands the CPU to the thread doing the work. The
    atlas is the same either way; call before xatlas starts its threads (they inherit the mask)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
        if n >= len(allowed):
            return
        with open("/proc/self/stat") as f:
            here = int(f.read().rsplit(")", 1)[1].split()[36])  # field 39: the CPU last run on
        start = allowed.index(here) if here in allowed else 0
        os.sched_setaffinity(0, {allowed[(start + i) % len(allowed)] for i in range(max(1, n))})
    except (AttributeError, OSError, ValueError, IndexError):  # not Linux: leave it to the OS
        pass


if __name__ == "__main__":
    if len(sys.argv) > 3:
        keep_to_cpus(int(sys.argv[3]))
    with np.load(sys.argv[1]) as d:
        vmap, idx, uv = run_xatlas(d["pos"], d["faces"], int(d["size"]), int(d["padding"]))
    np.savez(sys.argv[2], vmap=np.asarray(vmap), idx=np.asarray(idx), uv=np.asarray(uv))
