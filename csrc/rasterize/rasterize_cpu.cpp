#include "rasterize/rasterize_cpu.h"

#include <stdexcept>

namespace render_npu {

void rasterize_cpu(const float*, int64_t, int64_t, const int32_t*, int64_t, const RasterConfig&, float*,
                   float*) {
  throw std::runtime_error("rasterize_cpu: not implemented yet");
}

}  // namespace render_npu
