// Attribute interpolation over a raster (render_npu.interpolate's compiled CPU path), forward
// and backward. Contract: docs/rasterization.md ("interpolate"); the torch path in
// render_npu/_api.py computes the same bits in the forward pass.
//
// Pixel inputs are (pointer, element stride between consecutive pixels), so that a
// [B, H, W, 4] rast, its [..., :3] / [..., 3] views and Hunyuan3D's separate barycentric /
// findices tensors are all read in place. Ids are triangle id + 1 (0 = empty), stored as float
// (rast) or int32 (findices). Threads never change results.
#pragma once
#include <cstdint>

namespace render_npu {

template <typename T, typename I>
struct InterpolateArgs {
  const T* attr = nullptr;    // [Ba, V, C] contiguous; Ba = 1 (shared by every batch item) or B
  int64_t attr_batch_stride = 0;  // elements between batch items of attr (0: shared)
  int64_t num_vertices = 0, channels = 0;
  const T* bary = nullptr;    // b0, b1, b2 of pixel p at bary[p * bary_stride + k]
  int64_t bary_stride = 0;
  const I* ids = nullptr;     // id + 1 of pixel p at ids[p * id_stride]
  int64_t id_stride = 0;
  int64_t batch = 0, pixels = 0;  // pixels per batch item (H * W)
  const int32_t* faces = nullptr;  // [F, 3], values in [0, V) (checked by the caller)
  int64_t num_faces = 0;
  int num_threads = 1;
  const T* background = nullptr;  // forward only: C values written where id == 0 (null: zeros)
  // forward only, optional: screen derivatives of the barycentrics (du/dX, du/dY, dv/dX, dv/dY) of
  // pixel p at db[p * db_stride + k], and out_db [B * pixels, 2 C] for (dA/dX, dA/dY) per channel,
  // interleaved: the interpolate with weights (du, dv, -(du + dv)) per axis, in the same pass
  const T* db = nullptr;
  int64_t db_stride = 0;
  T* out_db = nullptr;
};

// out [B * pixels, C] (fully written; zero where id == 0). Returns -1, or the flat index of a
// pixel whose id is not an integer in [0, F] (nothing else is promised about out then).
template <typename T, typename I>
int64_t interpolate_forward(const InterpolateArgs<T, I>& a, T* out);

// grad_out [B * pixels, C] contiguous. grad_attr (nullable): [Ba, V, C], overwritten with
// sum over pixels of b_k * grad_out at the corners' vertices, summed in an order that depends on
// the problem size only. grad_bary (nullable): [B * pixels, 3], overwritten with
// sum_c grad_out[c] * attr[corner_k, c] (0 where id == 0). Ids must have passed the forward check.
template <typename T, typename I>
void interpolate_backward(const InterpolateArgs<T, I>& a, const T* grad_out, T* grad_attr, T* grad_bary);

}  // namespace render_npu
