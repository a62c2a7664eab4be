// Device entry point of the fine-raster kernel, compiled by CANN's ascendc_library() (see
// CMakeLists.txt in this folder). The kernel body is fine_raster_kernel.h, which the host build
// (host/fine_raster_host.cpp) compiles too.
#include "fine_raster_kernel.h"

extern "C" __global__ __aicore__ void render_npu_fine_raster(GM_ADDR coords, GM_ADDR tiles, GM_ADDR lists,
                                                             GM_ADDR recI, GM_ADDR recF, GM_ADDR out,
                                                             uint32_t numTiles, uint32_t listLen,
                                                             uint32_t numPieces) {
#if defined(RENDER_NPU_ASCENDC_AIV_ONLY)
  // Vector instructions only: on Atlas A2/A3 start AI Vector cores only, blockDim of them
  // ("Setting the Kernel Type"; not available on Atlas inference products (310P)).
  KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIV_ONLY);
#endif
  render_npu_ascendc::FineRasterEntry(coords, tiles, lists, recI, recF, out, numTiles, listLen, numPieces);
}
