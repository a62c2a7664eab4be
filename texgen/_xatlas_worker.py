"""xatlas with texgen's options; run as a script (``python _xatlas_worker.py IN.npz OUT.npz``) by
:func:`texgen.uv.unwrap` so that the long C++ call lives in a child process it can kill on
Ctrl-C. Imports only numpy and xatlas (running the file does not import the texgen package)."""
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


if __name__ == "__main__":
    with np.load(sys.argv[1]) as d:
        vmap, idx, uv = run_xatlas(d["pos"], d["faces"], int(d["size"]), int(d["padding"]))
    np.savez(sys.argv[2], vmap=np.asarray(vmap), idx=np.asarray(idx), uv=np.asarray(uv))
