// Forward texture lookup on CPU (render_npu.ops.texture's compiled path): nearest / bilinear /
// mipmapped lookups with wrap, clamp or zero boundaries, the same arithmetic as the torch ops.
#pragma once

#include <cstdint>
#include <vector>

namespace render_npu {

struct TexLevel {
  const float* data;  // [Bt, h, w, C] contiguous
  int64_t h, w;
};

enum class TexFilter { kNearest = 0, kLinear = 1, kMipNearest = 2, kMipLinear = 3 };
enum class TexBoundary { kWrap = 0, kClamp = 1, kZero = 2 };

// uv [B, H, W, 2]; uv_da [B, H, W, 4] or null; bias [B, H, W] or null; out [B, H, W, C].
// tex_batch is 1 (broadcast) or B. Levels beyond the first are read by the mipmapped filters only.
void texture_forward_cpu(const std::vector<TexLevel>& levels, int64_t tex_batch, int64_t C, const float* uv,
                         const float* uv_da, const float* bias, int64_t B, int64_t H, int64_t W, TexFilter filter,
                         TexBoundary boundary, int num_threads, float* out);

}  // namespace render_npu
