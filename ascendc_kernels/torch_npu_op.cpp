// torch_npu custom op for the AscendC fine-raster kernel (CANN build only; see CMakeLists.txt):
//
//   torch.ops.render_npu_ascendc.fine_raster(coords, tiles, lists, rec_i, rec_f, block_dim=0) -> out
//
// Tensors on one NPU, in the kernel's format (fine_raster_format.h, README.md "Input format");
// out is float32 [num_tiles, 1280]. render_npu/backends/ascendc.py builds the inputs with torch ops
// on the NPU and unpacks the output. The launch goes on torch_npu's current stream, asynchronously.
//
// NOT COMPILED OR RUN on the machines this project is developed on (no CANN toolkit, no NPU).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "aclrtlaunch_render_npu_fine_raster.h"
#include "fine_raster_format.h"
#include "torch_npu/csrc/core/npu/NPUStream.h"

namespace {

using namespace render_npu_ascendc;

void check(const at::Tensor& t, const char* name, at::ScalarType dtype, std::initializer_list<int64_t> shape,
           const at::Device& device) {
  TORCH_CHECK(t.device() == device, name, ": expected a tensor on ", device, ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, ": expected dtype ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), name, ": must be contiguous");
  TORCH_CHECK(t.dim() == static_cast<int64_t>(shape.size()), name, ": expected ", shape.size(), " dimensions");
  int64_t i = 0;
  for (int64_t s : shape) {
    TORCH_CHECK(s < 0 || t.size(i) == s, name, ": dimension ", i, " must be ", s, ", got ", t.size(i));
    ++i;
  }
}

// Default number of AI Vector cores to launch on: RENDER_NPU_ASCENDC_BLOCK_DIM, else 40 (an
// Atlas A2 part has 40 or 48 AIV cores; any positive value gives the same result).
int64_t default_block_dim() {
  const char* env = std::getenv("RENDER_NPU_ASCENDC_BLOCK_DIM");
  if (env != nullptr && std::atoi(env) > 0) return std::atoi(env);
  return 40;
}

at::Tensor fine_raster_npu(const at::Tensor& coords, const at::Tensor& tiles, const at::Tensor& lists,
                           const at::Tensor& rec_i, const at::Tensor& rec_f, int64_t block_dim) {
  const at::Device dev = coords.device();
  check(coords, "coords", at::kFloat, {kCoordsWords}, dev);
  check(tiles, "tiles", at::kInt, {-1, kTileDescWords}, dev);
  check(lists, "lists", at::kInt, {-1}, dev);
  check(rec_i, "rec_i", at::kLong, {-1, kRecIWords}, dev);
  check(rec_f, "rec_f", at::kFloat, {rec_i.size(0), kRecFWords}, dev);
  TORCH_CHECK(lists.size(0) % 8 == 0 && lists.size(0) > 0, "lists: length must be a positive multiple of 8");
  TORCH_CHECK(rec_i.size(0) > 0, "rec_i: at least one record (pad with a record that covers nothing, e.g. C = -1)");
  TORCH_CHECK(tiles.size(0) <= INT32_MAX && lists.size(0) <= INT32_MAX && rec_i.size(0) <= (int64_t(1) << 26),
              "fine_raster: too many tiles, list entries or records");
  const int64_t num_tiles = tiles.size(0);
  at::Tensor out = at::empty({num_tiles, kOutPerTile}, coords.options());
  if (num_tiles == 0) return out;
  if (block_dim <= 0) block_dim = default_block_dim();
  block_dim = std::min<int64_t>(block_dim, std::min<int64_t>(num_tiles, 65535));
  auto stream = c10_npu::getCurrentNPUStream().stream(false);
  ACLRT_LAUNCH_KERNEL(render_npu_fine_raster)
  (static_cast<uint32_t>(block_dim), stream, const_cast<void*>(coords.data_ptr()), const_cast<void*>(tiles.data_ptr()),
   const_cast<void*>(lists.data_ptr()), const_cast<void*>(rec_i.data_ptr()), const_cast<void*>(rec_f.data_ptr()),
   out.data_ptr(), static_cast<uint32_t>(num_tiles), static_cast<uint32_t>(lists.size(0)),
   static_cast<uint32_t>(rec_i.size(0)));
  return out;
}

}  // namespace

TORCH_LIBRARY(render_npu_ascendc, m) {
  m.def("fine_raster(Tensor coords, Tensor tiles, Tensor lists, Tensor rec_i, Tensor rec_f, int block_dim=0) -> Tensor");
}

TORCH_LIBRARY_IMPL(render_npu_ascendc, PrivateUse1, m) { m.impl("fine_raster", &fine_raster_npu); }
