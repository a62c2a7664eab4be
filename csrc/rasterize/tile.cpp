#include "rasterize/tile.h"

#include <cstdint>
#include <cstring>
#include <limits>

#include "rasterize/simd.h"

#if defined(__GNUC__) || defined(__clang__)
#define RNPU_PREFETCH(p) __builtin_prefetch(p)
#else
#define RNPU_PREFETCH(p) ((void)(p))
#endif

namespace render_npu {
namespace raster {

namespace {
namespace portable {
#define RNPU_TILE_AVX2 0
#include "rasterize/tile_impl.inc"
#undef RNPU_TILE_AVX2
}  // namespace portable
}  // namespace

#if RNPU_HAVE_AVX2
// Everything in this block is compiled for AVX2 and only called after a run-time CPU check.
#pragma GCC push_options
#pragma GCC target("avx2")
namespace {
namespace avx2 {
#define RNPU_TILE_AVX2 1
#include "rasterize/tile_impl.inc"
#undef RNPU_TILE_AVX2
}  // namespace avx2
}  // namespace
#pragma GCC pop_options
#endif

bool cpu_has_avx2() {
#if RNPU_HAVE_AVX2
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

void raster_tile(TileKernel kernel, const TileJob& job, const PieceStore& store, TileBuffers& buf) {
#if RNPU_HAVE_AVX2
  if (kernel == TileKernel::kAvx2) return avx2::raster_tile_impl(job, store, buf);
#endif
  (void)kernel;
  portable::raster_tile_impl(job, store, buf);
}

}  // namespace raster
}  // namespace render_npu
