// Texture-baking helpers for Hunyuan3D's MeshRender rules (render_npu.hunyuan3d's accelerated
// back_project and fast_bake_texture): pick the pixels of one view that bake, and merge the
// per-view textures by their weights. float32, no FMA contraction (CMakeLists.txt), so the
// results are the bits of the torch expressions each function names. Threads never change results.
#pragma once
#include <cstdint>

namespace render_npu {

// The pixels of one H x W view that bake, in pixel order: p with visible[p] != 0.
// Writes idx[k] = p, coords[k] = (uv[p, 1], uv[p, 0]) (row, column fractions: MeshRender's
// flipped UV), extra[k] = the cosine at p, extra[n + k] = 1 where sketch[p] (extra must be
// zero-filled: the sketch row is written only where it is 1, so a view without sketch pixels never
// touches it). The cosine: cos[p] as given, or computed at the visible pixels from a normal as
// MeshRender does (F.cosine_similarity with (0, 0, -1), then 0 below cos_thres):
// -(n_z / max(|n|, 1e-8f)) with |n| = sqrtf(fmaf(z, z, fmaf(y, y, x * x))), the bits of
// torch.linalg.vector_norm on CPU. The normal: normal[p] (a map), or interpolated at p from
// vtx_normal through normal_faces and rast, as interpolate does. cos (optional) is then set to
// the cosine where visible and to 0 elsewhere (torch.where(visible, cos, 0)). n: the number of
// visible pixels, counted by the caller (the outputs hold n, n x 2 and 2 x n entries). Returns the
// number found; when it is not n, nothing is written. A visible pixel whose id is not in [1, F]
// (with rast) stops it: returns -1 (the outputs are then partly written).
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
  const float* vtx_normal = nullptr;     // or [V', 3] vertex normals (needs rast)
  const int32_t* normal_faces = nullptr;  // [F, 3] vertex indices into vtx_normal (checked by the caller)
  float cos_thres = 0.0f;
  float* cos = nullptr;              // [H * W]: input without a normal (then required), output with one
  int64_t pixels = 0;
  int num_threads = 1;
};
int64_t select_samples(const SelectArgs& a, int64_t n, int64_t* idx, float* coords, float* extra);

// MeshRender.back_project's depth map and depth image of one view, from its raster. Per pixel p,
// hit[p] = rast[4p + 3] > 0; depth[p] = (b0 * z0 + b1 * z1) + b2 * z2 over the triangle's vertices
// (interpolate's arithmetic) where hit, 0 elsewhere. Then, over the hit pixels, dmin / dmax of
// depth, and image[p] = uint8(((depth - dmin) / (dmax - dmin)) * (hit ? 1 : 0) * 255) in float32,
// truncated: the bits of the torch expression and numpy's astype. Returns the number of hit pixels
// (0: image not written), -1 when a hit depth is NaN (image not written), or -2 when a hit id is
// not an integer in [1, F] (outputs partly written).
struct ViewDepthArgs {
  const float* rast = nullptr;      // [P, 4]
  const int32_t* faces = nullptr;   // [F, 3] vertex indices into z (checked by the caller)
  int64_t num_faces = 0;
  const float* z = nullptr;         // [V] camera-space depth per vertex
  int64_t pixels = 0;
  int num_threads = 1;
};
int64_t view_depth(const ViewDepthArgs& a, float* depth, uint8_t* hit, uint8_t* image);

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

// MeshRender's float map to a PIL image's bytes: out[i] = uint8(((x[i] + offset) * scale) * 255) in
// float32, truncated through int as numpy's astype(np.uint8) does on x86 (the normal render:
// offset 1, scale 0.5, upstream's (n + 1) * 0.5; the position render: 0 and 1, exact no-ops).
void floats_to_u8(const float* x, int64_t n, float offset, float scale, uint8_t* out, int num_threads);

// The accelerated uv_inpaint's bytes, texel t of T with C channels: known[t]: uint8(x * 255)
// truncated (upstream's cast of the known texels); else region[t] (region may be null: all):
// uint8(min(max(x, 0), 1) * 255 + 0.5) (the fill, rounded); else fill_value[c] (the mean colour's
// bytes). float32, casts through int as numpy's astype(np.uint8) on x86.
void inpaint_bytes(const float* x, const uint8_t* known, const uint8_t* region, const uint8_t* fill_value, int64_t texels,
                   int64_t channels, uint8_t* out, int num_threads);

}  // namespace render_npu
