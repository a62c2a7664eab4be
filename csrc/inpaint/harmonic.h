// Harmonic (membrane) fill of a texture's empty texels: the compiled form of
// texgen.inpaint.harmonic_fill (its torch code is the specification and the fallback).
//
// Algorithm: a mask-weighted 2x2 pyramid (colour sums, known counts, domain "or") from half
// resolution down to 1 x 1; coarse to fine, each level's estimate is colour / count where the cell
// has a known texel and the bilinear upsample (align_corners=False) of the coarser estimate
// elsewhere, then red-black Gauss-Seidel sweeps of the discrete Laplace equation relax the
// unknown domain cells (`iters` sweeps, at least 16 on levels with <= 65536 unknown cells); at
// full resolution the unknown domain texels start from a bilinear sample of the half-resolution
// estimate and get `iters` sweeps. A sweep sets a cell to the mean of its in-domain 4-neighbours,
// all cells of one colour ((row + col) even first) from the other colour's values.
//
// Arithmetic: float32, in the operation order (and with the fused multiply-adds) of torch's
// x86-64 CPU kernels for the torch code's ops (harmonic_impl.inc and harmonic.cpp's down2,
// upsample_axis and sample_axis say which), so that the result is
// bit-identical to the torch path wherever torch runs its channels-last bilinear upsample kernel
// (C == 3 with one intra-op thread, C > 3, or levels with h + w <= 128) and within a few float32
// ulps of it elsewhere (tests/test_inpaint_fill.py). Each grid is one pass over memory: rows are
// prepared and relaxed as a wavefront (harmonic_impl.inc, fill_grid).
#pragma once
#include <cstdint>

namespace render_npu {

struct HarmonicFillArgs {
  float* texture = nullptr;          // [H, W, C], C-contiguous; in: known texels hold colour and the
                                     // others 0; out: the unknown texels of the domain filled
  const uint8_t* known = nullptr;    // [H, W], nonzero = known texel
  const uint8_t* domain = nullptr;   // [H, W], nonzero = fill this texel; nullptr = every texel
                                     // (known texels count as inside)
  int64_t height = 0, width = 0, channels = 0;  // H, W >= 2; H * W < 2^31; C >= 1
  int iters = 4;                     // sweeps per level (>= 0)
  int num_threads = 1;               // >= 1; the result does not depend on it
  bool portable = false;             // force the portable kernels (tests: the same bits as FMA's)
};

// Fills in place; returns the number of texels filled (unknown texels of the domain). With no
// known texel they are set to 0.5. Throws std::invalid_argument for bad sizes. Holds no Python
// state: call without the GIL.
int64_t harmonic_fill(const HarmonicFillArgs& args);

}  // namespace render_npu
