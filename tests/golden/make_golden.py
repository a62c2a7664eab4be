"""Regenerate the golden files tests/golden/<scene>.npz from the reference rasterizer.

    PYTHONPATH=. python tests/golden/make_golden.py [scene ...]

Each file holds the scene's inputs and the reference's output:
``pos`` float32 [B, V, 4] (clip space), ``faces`` int32 [F, 3], ``H``, ``W`` (int), ``viewport``
(str), ``cull_backfaces`` (bool), ``rast`` float32 [B, H, W, 4], ``depth`` float32 [B, H, W].

A golden file records what the contract's executable definition produced when it was made; it
is never regenerated to make a failing test pass. Regenerate only when a scene is added or its
definition in tests/scenes.py changes on purpose (tests/test_golden.py fails if a stored scene
no longer equals what scenes.py builds), and review the diff of the outputs when you do.
"""
from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # repository root

import scenes  # noqa: E402
from render_npu.backends import reference  # noqa: E402


def make(name: str) -> str:
    s = scenes.build(name)
    pos = s.pos if s.pos.ndim == 3 else s.pos[None]
    rast, depth = reference.rasterize_numpy(pos, s.faces, s.H, s.W, s.viewport, s.cull_backfaces)
    path = os.path.join(HERE, f"{name}.npz")
    np.savez_compressed(path, pos=pos.astype(np.float32), faces=s.faces.astype(np.int32), H=np.int64(s.H),
                        W=np.int64(s.W), viewport=np.str_(s.viewport), cull_backfaces=np.bool_(s.cull_backfaces),
                        rast=rast, depth=depth)
    return path


def main(argv):
    names = argv or scenes.NAMES
    total = 0
    for name in names:
        path = make(name)
        size = os.path.getsize(path)
        total += size
        print(f"{name:28s} {size / 1024:8.1f} KiB")
    print(f"{'total':28s} {total / 1024:8.1f} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
