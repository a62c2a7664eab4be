// Bilinear splat of scattered samples into a grid ("linear" texture baking: each sample adds
// value * weight to the 4 texels around it, and weight to their count). Hunyuan3D's MeshRender
// bakes with this rule; render_npu.hunyuan3d's accelerated back_project calls it.
#pragma once
#include <cstdint>

namespace render_npu {

// coords [N, 2] float32 in grid units' fractions: row = coords[n, 0] * (H - 1),
// col = coords[n, 1] * (W - 1) (computed in float32). The top-left texel (r0, c0) = floor, clamped
// to [0, H - 2] x [0, W - 2]; fractions h = row - r0, w = col - c0 (not clamped: samples outside
// [0, 1] extrapolate, as the rule they reproduce does). Weights (1-h)(1-w), (1-h)w, h(1-w), hw.
// Sample n's value: values[index ? index[n] : n, 0..Cv) (a gather from an image; from a uint8
// image values_u8 instead, each byte b read as float(b) / 255.0f: torch's float().div(255)), then
// extra[e * N + n] for e < E (planar per-sample channels, may be null when E == 0).
//
// out [H * W, Cv], out_extra [E, H * W] and count [H * W] (count may be null) must be all +0.0f on
// entry: a texel whose sums are all zero is never written, so pages of a calloc'd result that no
// sample reaches are never touched (on a 2048^2 bake a view reaches about half the atlas, and first
// touches of fresh pages cost more than the arithmetic). Per texel, the additions happen in sample
// order, the four corners of a sample in the order (0,0), (0,1), (1,0), (1,1) -- fixed whatever the
// thread count (threads own bands of rows). Hunyuan3D's torch code adds corner by corner (every
// sample's (0,0), then every (0,1), ...): the sums are the same up to float32 rounding (a relative
// 1e-6 on a texel's handful of terms). An extra channel that is +0 for every sample is skipped (its
// sums are +0). With normalize, every texel whose count is > 0 is then divided by it (out and
// out_extra; count is kept). Requires H, W >= 2.
struct SplatArgs {
  const float* coords = nullptr;
  int64_t n = 0;
  const float* values = nullptr;
  const uint8_t* values_u8 = nullptr;  // used instead of values when set
  const int64_t* index = nullptr;
  int64_t channels = 0;
  const float* extra = nullptr;
  int64_t extra_channels = 0;
  int64_t height = 0, width = 0;
  bool normalize = false;
  int num_threads = 1;
};
void splat_bilinear(const SplatArgs& a, float* out, float* out_extra, float* count);

}  // namespace render_npu
