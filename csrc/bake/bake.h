// Texture-baking helpers for Hunyuan3D's MeshRender rules (render_npu.hunyuan3d's accelerated
// back_project and fast_bake_texture): pick the pixels of one view that bake, and merge the
// per-view textures by their weights. float32, no FMA contraction (CMakeLists.txt), so the
// results are the bits of the torch expressions each function names. Threads never change results.
#pragma once
#include <cstdint>

namespace render_npu {

// The pixels of one H x W view that bake, in pixel order: p with visible[p] != 0.
// Writes idx[k] = p, coords[k] = (uv[p, 1], uv[p, 0]) (row, column fractions: MeshRender's
// flipped UV), extra[k] = cos[p], extra[n + k] = sketch[p] ? 1 : 0 (n = the count), and sets
// cos[p] = 0 where visible[p] == 0 (torch.where(visible, cos, 0)). With normal, cos[p] is
// first computed at the visible pixels as MeshRender does (F.cosine_similarity with (0, 0, -1),
// then 0 below cos_thres): -(n_z / max(|n|, 1e-8f)) with |n| = sqrtf(fmaf(z, z, fmaf(y, y, x * x))),
// the bits of torch.linalg.vector_norm on CPU. n: the number of visible
// pixels, counted by the caller (the outputs hold n, n x 2 and 2 x n entries). Returns the
// number found; when it is not n, nothing is written. With rast, a visible pixel whose id is not
// in [1, F] stops it: returns -1 (the outputs are then partly written).
struct SelectArgs {
  const uint8_t* visible = nullptr;  // [H * W], 0 / 1
  const uint8_t* sketch = nullptr;   // [H * W], 0 / 1
  const float* uv = nullptr;         // [H * W, 2]; or null, then interpolated from:
  const float* rast = nullptr;       //   [H * W, 4]: b0, b1, b2, triangle id + 1 (render_npu's raster)
  const int32_t* uv_faces = nullptr;  //  [F, 3] vertex indices into vtx_uv (checked by the caller)
  const float* vtx_uv = nullptr;     //   [V, 2]: uv = (b0 * a0 + b1 * a1) + b2 * a2, as interpolate
  int64_t num_faces = 0;
  const float* normal = nullptr;     // [H * W] pixels of normal_stride floats (x, y, z first); or null
  int64_t normal_stride = 3;
  float cos_thres = 0.0f;
  float* cos = nullptr;              // [H * W], edited in place
  int64_t pixels = 0;
  int num_threads = 1;
};
int64_t select_samples(const SelectArgs& a, int64_t n, int64_t* idx, float* coords, float* extra);

// MeshRender.back_project's depth image for its edge detector, in two passes: over the P pixels
// with ids[p * stride] > 0 (hit), dmin / dmax of depth[p * stride]; then
// out[p] = uint8(((depth - dmin) / (dmax - dmin)) * (hit ? 1 : 0) * 255) in float32, truncated:
// the bits of the torch expression and numpy's astype. Returns the number of hit pixels (0:
// nothing written), or -1 when a hit depth is NaN (nothing written).
int64_t depth_image_u8(const float* depth, const float* ids, int64_t stride, int64_t pixels, uint8_t* out,
                       int num_threads);

// MeshRender.fast_bake_texture over V views of T texels with C channels: for each view v in
// order, with s = #(weight_v > 0) and p = #(weight_v > 0 and trust > 0): skip the view when
// float(p) / float(s) > 0.99f (NaN when s == 0: not skipped); else out[t, c] += tex_v[t, c] *
// weight_v[t] and trust[t] += weight_v[t]. Then out[t, c] /= max(trust[t], 1e-8f). out and
// trust are overwritten (start at 0). Returns the number of views used.
struct MergeArgs {
  const float* const* textures = nullptr;  // V pointers to [T, C]
  const float* const* weights = nullptr;   // V pointers to [T]
  int64_t views = 0, texels = 0, channels = 0;
  int num_threads = 1;
};
int64_t merge_views(const MergeArgs& a, float* out, float* trust);

}  // namespace render_npu
