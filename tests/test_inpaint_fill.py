"""texgen.inpaint.harmonic_fill: the compiled kernel (csrc/inpaint/harmonic.cpp) against the torch
fallback it replaces.

Tolerance: both compute the same float32 operations in the same order, so they agree bit for bit
wherever torch runs its channels-last bilinear upsample (C == 3 with one intra-op thread, C > 3,
levels with h + w <= 128). With more torch threads and C < 4, torch's generic upsample kernel
rounds the upsample differently (by an ulp); the relaxation averages such differences rather
than growing them, so the results stay within 1e-5 of each other on [0, 1] data (measured:
a few 1e-7). The compiled path's bits never depend on its own thread count. (Bit-exact where torch
fuses a * b + c as GCC builds do: checked at import, `EXACT`.)
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from render_npu import _ext
from texgen.inpaint import harmonic_fill

TOL = 1e-5


def _torch_fuses() -> bool:
    """Whether this torch build computes a + b * c with one rounding, as the compiled fill does (GCC
    builds for x86-64 and aarch64 contract it). Where it does not, the two paths differ by
    rounding and the bit-exact checks below compare within TOL instead."""
    t = torch.full((4, 3), 1 + 2 ** -12)
    s = torch.full((4, 3), -(1 + 2 ** -11))
    return float(s.addcmul(t, t[:, :1])[0, 0]) == 2 ** -24


EXACT = _torch_fuses()


@pytest.fixture
def torch_threads():
    """Set torch's intra-op thread count for one test, restored afterwards."""
    saved = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(saved)


def _case(H, W, C, p_known, seed, with_domain=True):
    rng = np.random.default_rng(seed)
    tex = rng.random((H, W, C), dtype=np.float32)
    # blobs of holes (as after a bake) plus a speckle, so that every pyramid level has unknown cells
    yy, xx = np.mgrid[0:H, 0:W]
    known = rng.random((H, W)) < p_known
    for _ in range(3):
        cy, cx, r = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(1, max(2, min(H, W) / 4))
        known &= (yy - cy) ** 2 + (xx - cx) ** 2 > r * r
    domain = (rng.random((H, W)) < 0.8) if with_domain else None
    return tex, known, domain


def _same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


SHAPES = [(2, 2, 3), (3, 2, 3), (5, 7, 3), (64, 64, 3), (33, 17, 4), (129, 200, 3), (300, 301, 3), (257, 64, 1),
          (40, 50, 5), (2, 700, 3)]


@pytest.mark.parametrize("H,W,C", SHAPES)
@pytest.mark.parametrize("with_domain", [True, False])
def test_bit_identical_to_torch_with_one_torch_thread(torch_threads, H, W, C, with_domain):
    torch_threads(1)
    for seed, p in enumerate((0.1, 0.6, 0.95)):
        tex, known, domain = _case(H, W, C, p, seed, with_domain)
        ref = harmonic_fill(tex, known, domain, backend="torch")
        out = harmonic_fill(tex, known, domain, backend="cpp", num_threads=3)
        if C in (1, 2) and H + W > 128 or not EXACT:  # torch's generic upsample even on one thread (see above)
            assert np.abs(out - ref).max() <= TOL
        else:
            assert _same_bits(out, ref), (seed, np.abs(out - ref).max())


@pytest.mark.parametrize("H,W,C", [(512, 512, 3), (300, 301, 1), (257, 64, 2), (1000, 300, 3)])
def test_close_to_torch_with_its_generic_upsample(torch_threads, H, W, C):
    torch_threads(2)
    tex, known, domain = _case(H, W, C, 0.3, 7)
    ref = harmonic_fill(tex, known, domain, backend="torch")
    out = harmonic_fill(tex, known, domain, backend="cpp")
    assert np.abs(out - ref).max() <= TOL
    assert _same_bits(out[known], tex[known])


@pytest.mark.parametrize("iters", [0, 1, 4, 9])
def test_threads_never_change_results(iters):
    tex, known, domain = _case(512, 384, 3, 0.4, 3)
    outs = [harmonic_fill(tex, known, domain, iters=iters, backend="cpp", num_threads=n) for n in (1, 2, 3, 8)]
    assert all(_same_bits(o, outs[0]) for o in outs[1:])


@pytest.mark.parametrize("C", [1, 3, 4, 5])
def test_portable_kernels_give_the_fma_bits(C):
    """The compiled fill has a portable variant (libm fma) next to the FMA / SSE one the CPU picks."""
    ext = _ext.get()
    tex, known, domain = _case(150, 133, C, 0.4, C)
    outs = []
    for kernel in ("auto", "portable"):
        buf = np.where(known[..., None], tex, 0).astype(np.float32)
        ext.harmonic_fill(buf, known.view(np.uint8), domain.view(np.uint8), 4, 2, kernel=kernel)
        outs.append(buf)
    assert _same_bits(outs[0], outs[1])
    with pytest.raises(ValueError, match="kernel"):
        ext.harmonic_fill(buf, known.view(np.uint8), None, 4, 1, kernel="avx512")


def test_iters_match_torch(torch_threads):
    torch_threads(1)
    tex, known, domain = _case(260, 250, 3, 0.3, 11)
    for iters in (0, 1, 7, 20):
        out = harmonic_fill(tex, known, domain, iters=iters, backend="cpp")
        ref = harmonic_fill(tex, known, domain, iters=iters, backend="torch")
        assert _same_bits(out, ref) if EXACT else np.abs(out - ref).max() <= TOL


def test_fill_is_a_membrane():
    """Known texels kept, texels outside the domain 0, filled ones within the known range."""
    tex, known, domain = _case(200, 180, 3, 0.5, 5)
    out = harmonic_fill(tex, known, domain, backend="cpp")
    assert _same_bits(out[known], tex[known])
    outside = ~(domain | known)
    assert outside.any() and (out[outside] == 0).all()
    filled = out[domain & ~known]
    assert filled.size and filled.min() >= tex[known].min() and filled.max() <= tex[known].max()
    # a smooth field is filled back closely (measured: mean error 0.003; the largest, ~0.13, where
    # a hole reaches the image border and the membrane flattens out)
    yy, xx = np.mgrid[0:200, 0:180].astype(np.float32)
    ramp = np.stack([yy / 199, xx / 179, (yy + xx) / 378], -1).astype(np.float32)
    err = np.abs(harmonic_fill(ramp, known, None, backend="cpp") - ramp)[~known]
    assert err.mean() < 0.01 and err.max() < 0.2


def test_degenerate_masks(torch_threads):
    torch_threads(1)
    tex, _, domain = _case(31, 40, 3, 0.5, 2)
    none = np.zeros((31, 40), bool)
    for backend in ("cpp", "torch"):
        grey = harmonic_fill(tex, none, domain, backend=backend)  # no known texel: grey domain, 0 elsewhere
        assert (grey[domain] == 0.5).all() and (grey[~domain] == 0).all()
        full = harmonic_fill(tex, ~none, domain, backend=backend)  # all known: unchanged
        assert _same_bits(full, tex)
        empty = harmonic_fill(tex, none, none, backend=backend)  # nothing to fill: zeros
        assert (empty == 0).all()
    # below 2 x 2 "auto" takes the torch path; "cpp" says why it cannot
    for shape in ((1, 1, 3), (1, 9, 3), (9, 1, 2)):
        t = np.random.default_rng(0).random(shape, dtype=np.float32)
        k = np.zeros(shape[:2], bool)
        k.flat[0] = True
        out = harmonic_fill(t, k)
        assert np.allclose(out, t.reshape(-1, shape[2])[0])
        with pytest.raises(RuntimeError, match="2 x 2"):
            harmonic_fill(t, k, backend="cpp")


def test_inplace_fills_the_given_array():
    tex, known, domain = _case(64, 80, 3, 0.5, 9)
    buf = np.where(known[..., None], tex, 0).astype(np.float32)
    ref = harmonic_fill(tex, known, domain, backend="cpp")
    out = harmonic_fill(buf, known, domain, inplace=True, backend="cpp")
    assert out is buf and _same_bits(out, ref)


def test_bad_input_names_the_argument():
    tex, known, domain = _case(16, 16, 3, 0.5, 1)
    with pytest.raises(ValueError, match="texture"):
        harmonic_fill(tex[..., 0], known)
    with pytest.raises(ValueError, match="known"):
        harmonic_fill(tex, known[:8])
    with pytest.raises(ValueError, match="domain"):
        harmonic_fill(tex, known, domain[:, :8])
    with pytest.raises(ValueError, match="iters"):
        harmonic_fill(tex, known, iters=-1)
    with pytest.raises(ValueError, match="num_threads"):
        harmonic_fill(tex, known, num_threads=0)
    with pytest.raises(ValueError, match="backend"):
        harmonic_fill(tex, known, backend="gpu")
    with pytest.raises(ValueError, match="texture"):
        harmonic_fill(tex.astype(np.float64), known, inplace=True)
    # the binding's own checks (for callers that skip harmonic_fill's)
    ext = _ext.get()
    t = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="known"):
        ext.harmonic_fill(t, np.zeros((16, 15), np.uint8), None, 4, 1)
    with pytest.raises(ValueError, match="domain"):
        ext.harmonic_fill(t, np.zeros((16, 16), np.uint8), np.zeros((15, 16), np.uint8), 4, 1)
    with pytest.raises(ValueError, match="2 x 2"):
        ext.harmonic_fill(np.zeros((1, 16, 3), np.float32), np.zeros((1, 16), np.uint8), None, 4, 1)
    with pytest.raises(ValueError, match="iters"):
        ext.harmonic_fill(t, np.zeros((16, 16), np.uint8), None, -1, 1)


def test_concurrent_calls_release_the_gil():
    """Calls from several Python threads at once (the GIL is released) give each its serial result."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [_case(300 + 17 * k, 280 - 9 * k, 3, 0.3 + 0.2 * k, k) for k in range(3)]
    serial = [harmonic_fill(t, k, d, backend="cpp", num_threads=2) for t, k, d in cases]
    with ThreadPoolExecutor(3) as pool:
        for _ in range(3):
            outs = list(pool.map(lambda c: harmonic_fill(*c, backend="cpp", num_threads=2), cases))
            assert all(_same_bits(o, s) for o, s in zip(outs, serial))
