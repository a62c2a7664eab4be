// One scheme for the AVX2 variants of the rasterizer (setup.cpp, tile.cpp) and its backward
// (resolve.cpp): where the compiler can target AVX2 (RNPU_HAVE_AVX2), the AVX2 code is compiled inside
//   #pragma GCC push_options / #pragma GCC target("avx2") / namespace avx2 { ... } / pop_options
// next to a portable version of the same function, and the caller picks one at run time with
// cpu_has_avx2() (RasterKernel "auto"). Both variants give identical bits (tests/test_cpu_backend.py).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RNPU_HAVE_AVX2 1
#include <immintrin.h>
#else
#define RNPU_HAVE_AVX2 0
#endif

namespace render_npu {
namespace raster {

// Whether this CPU runs the AVX2 variants (false where they were not built).
bool cpu_has_avx2();

}  // namespace raster
}  // namespace render_npu
