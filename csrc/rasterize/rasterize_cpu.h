// Compiled CPU rasterizer: triangle setup (clipping, fixed-point snapping), screen binning,
// per-tile rasterization. Framework-free: plain pointers in, plain pointers out.
// The function it computes is defined by render_npu/reference.py and docs/rasterization.md.
#pragma once
#include <cstdint>

namespace render_npu {

struct RasterConfig {
  int height = 0;              // H, rows (grow with NDC y)
  int width = 0;               // W, columns
  bool opengl_viewport = false;  // false: "align_corners", true: "opengl"
  bool cull_backfaces = false;
  int num_threads = 1;         // >= 1
};

// pos:   [batch, num_vertices, 4] float32, clip space, C-contiguous.
// faces: [num_faces, 3] int32, C-contiguous, every index already checked to be in [0, num_vertices).
// rast:  [batch, H, W, 4] float32 output = (b0, b1, b2, id + 1), zeros where empty.
// depth: [batch, H, W] float32 output = z/w of the winner, 0 where empty.
// Thread-safe; does not touch Python (the binding releases the GIL around it).
void rasterize_cpu(const float* pos, int64_t batch, int64_t num_vertices, const int32_t* faces,
                   int64_t num_faces, const RasterConfig& cfg, float* rast, float* depth);

}  // namespace render_npu
