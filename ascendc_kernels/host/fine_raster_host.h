// Host (CPU) build of the AscendC fine-raster kernel: runs fine_raster_kernel.h against the
// emulated AscendC API of kernel_operator_host.h. Used by render_npu._C.ascendc_host_fine_raster
// (csrc/ext.cpp) and so by render_npu/backends/ascendc.py and tests/test_ascendc_host.py.
// This header is free of AscendC names so that the binding file can include it.
#pragma once
#include <cstdint>

namespace render_npu_ascendc {

struct HostRunStats {
  uint64_t vector_instructions = 0;
  uint64_t vector_repeats = 0;
  uint64_t vector_elements = 0;
  uint64_t dma_copies = 0;
  uint64_t dma_bytes = 0;
  uint64_t scalar_gm_reads = 0;
  uint64_t ub_bytes_peak = 0;
};

// Checks the inputs against the format of fine_raster_format.h (std::invalid_argument naming the
// offending field otherwise), then emulates a launch on `block_dim` cores (run by up to
// `num_threads` host threads; the result does not depend on either). Shapes:
//   coords [512] f32, tiles [num_tiles, 8] i32, lists [list_len] i32, rec_i [num_pieces, 12] i64,
//   rec_f [num_pieces, 16] f32, out [num_tiles, 1280] f32 (fully written).
// std::logic_error if the kernel breaks an AscendC rule the emulation checks.
// device_rounding: emulate the device's documented rounding bounds (fused Axpy, Div one ulp off)
// instead of IEEE host arithmetic; see kernel_operator_host.h.
HostRunStats fine_raster_host(const float* coords, const int32_t* tiles, int64_t num_tiles, const int32_t* lists,
                              int64_t list_len, const int64_t* rec_i, const float* rec_f, int64_t num_pieces,
                              float* out, int block_dim, int num_threads, bool device_rounding = false);

}  // namespace render_npu_ascendc
