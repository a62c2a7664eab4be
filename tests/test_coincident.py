"""SPEC: equal float32 depth -> the lower triangle index wins, so exactly coincident triangles always
resolve to the lowest id -- also when the copies list their vertices in another order (rotations and
reflections, as in double-sided meshes), for every backend."""
import numpy as np
import pytest
import torch

import render_npu
from agreement import backend_params

ORDERS = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]]


def coincident_scene(seed: int, n: int = 30):
    """n random perspective triangles, then 5 more copies of each in the other vertex orders:
    copy j of triangle i has id j * n + i."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-0.9, 0.9, size=(3 * n, 4)).astype(np.float32)
    pos[:, 3] = rng.uniform(0.5, 2.0, 3 * n)
    pos[:, :3] *= pos[:, 3:]
    base = np.arange(3 * n).reshape(n, 3)
    faces = np.concatenate([base[:, o] for o in ORDERS]).astype(np.int32)
    return torch.from_numpy(pos), torch.from_numpy(faces)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("viewport", ["align_corners", "opengl"])
def test_coincident_copies_resolve_to_lowest_id(backend, seed, viewport):
    n = 30
    pos, faces = coincident_scene(seed, n)
    rast, _ = render_npu.rasterize((61, 67), faces, pos, viewport=viewport, backend=backend)
    ids = rast[..., 3].long() - 1
    won = ids[ids >= 0]
    assert won.numel() > 500
    # the winner at every pixel is the first copy (id < n) of some triangle
    assert (won < n).all(), f"{int((won >= n).sum())} pixels resolved to a later copy"
    # and it is the same pixel-for-pixel as rasterizing the first copies alone
    alone, _ = render_npu.rasterize((61, 67), faces[:n], pos, viewport=viewport, backend=backend)
    assert torch.equal(ids, alone[..., 3].long() - 1)
