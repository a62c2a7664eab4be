// Compiled CPU rasterizer: triangle setup (clipping, fixed-point snapping), screen binning,
// per-tile rasterization. Framework-free: plain pointers in, plain pointers out.
// The function it computes is defined by render_npu/reference.py and docs/rasterization.md;
// the output is bit-identical to that reference on every pixel.
#pragma once
#include <cstdint>

namespace render_npu {

// Which per-tile inner loop to use. kAuto picks the widest one the CPU supports (checked at run
// time, so one binary runs on any x86-64). Every kernel gives bit-identical results; the switch
// exists so tests can compare them.
enum class RasterKernel : int { kAuto = 0, kScalar = 1, kAvx2 = 2 };

struct RasterConfig {
  int height = 0;              // H, rows (grow with NDC y)
  int width = 0;               // W, columns
  bool opengl_viewport = false;  // false: "align_corners", true: "opengl"
  bool cull_backfaces = false;
  int num_threads = 1;         // >= 1; the result does not depend on it
  RasterKernel kernel = RasterKernel::kAuto;
  bool zero_filled = false;    // rast and depth are all +0 on entry: empty pixels are not written
};

// pos:   [batch, num_vertices, 4] float32, clip space, C-contiguous. Any value (NaN, Inf, huge):
//        a triangle with a non-finite coordinate covers nothing.
// faces: [num_faces, 3] int32, C-contiguous, every index in [0, num_vertices) (checked again
//        here: std::invalid_argument otherwise), num_faces <= 2**24.
// rast:  [batch, H, W, 4] float32 output = (b0, b1, b2, id + 1), zeros where empty.
// depth: [batch, H, W] float32 output = z/w of the winner, 0 where empty.
// Every output element is written (with cfg.zero_filled: every element that is not 0).
// Thread-safe (no shared mutable state); does not touch Python (the binding releases the GIL
// around it). Throws std::invalid_argument on bad arguments and
// std::bad_alloc when memory runs out; nothing is left running after a throw.
//
// Memory on top of the outputs (batch items are processed one after another and reuse it):
//   * 64 bytes per triangle piece (setup.h Piece; one piece per visible face unless the face is
//     clipped, up to 26 then, plus 72 bytes of coefficients per clipped piece) + 8 bytes of tile
//     span, for every face of one batch item;
//   * 4 bytes per (piece, tile) overlap for the bins, tiles of 64 x 64 pixels; a piece
//     overlapping more than 16 tiles is binned in 512 x 512 coarse tiles instead, so a
//     screen-filling triangle costs ceil(W/512) * ceil(H/512) entries;
//   * 8 bytes * (num_threads + 1) per tile for bin counts and starts; per thread, 256 KiB of
//     tile buffers and barycentric cache, plus 4 bytes per entry of the fullest tile.
// Peak for 1M faces at 2048x2048: about 80 MB. This scratch memory is kept for the next call
// (fresh pages cost a page fault each; at most one scratch area of up to 256 MB is kept) until
// rasterize_cpu_release_cache().
void rasterize_cpu(const float* pos, int64_t batch, int64_t num_vertices, const int32_t* faces,
                   int64_t num_faces, const RasterConfig& cfg, float* rast, float* depth);

// Gradient of rasterize's barycentrics and depth with respect to the clip coordinates
// (csrc/rasterize/resolve.h): for every covered pixel of `rast` ([batch, H, W, 4] float32; id + 1
// in channel 3, 0 = empty) the derivative of its parent-triangle resolve, weighted by grad_bary
// ([batch, H, W, bary_stride], channels 0..2) and grad_depth ([batch, H, W]) (either may be
// null), summed into grad_pos [batch, num_vertices, 4] (overwritten). pos [batch, num_vertices,
// 4], float64. Rows are split into fixed blocks whose per-face sums are added in block order:
// the result does not depend on num_threads, nor on `kernel` (kAuto: AVX2, four pixels per step,
// where the CPU has it). Throws std::invalid_argument on an id or face index out of range.
template <typename G>
void rasterize_backward_cpu(const double* pos, int64_t batch, int64_t num_vertices, const int32_t* faces,
                            int64_t num_faces, int height, int width, bool opengl_viewport, const float* rast,
                            const G* grad_bary, int bary_stride, const G* grad_depth, int num_threads,
                            double* grad_pos, RasterKernel kernel = RasterKernel::kAuto);

// Name of the kernel kAuto resolves to on this CPU ("avx2" or "scalar").
const char* rasterize_cpu_auto_kernel();

// Frees the scratch memory cached between calls (see rasterize_cpu); the next call allocates
// it again. Thread-safe.
void rasterize_cpu_release_cache();

}  // namespace render_npu
