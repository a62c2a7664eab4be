// Per-tile rasterization for the compiled CPU rasterizer: depth test of a tile's pieces in
// increasing entry order into a tile-local buffer, then barycentric resolve of the winners
// straight into the output. Steps 2-4 of render_npu/reference.py's docstring, bit-identical.
#pragma once
#include <cstdint>

#include "rasterize/setup.h"

namespace render_npu {
namespace raster {

constexpr int kTile = kTileSize;  // tile side in pixels (multiple of 8: the SIMD loop's group)
constexpr int kCoarseFactor = 8;  // coarse tile side = 8 tiles = 128 pixels
constexpr int kFineLimit = 16;    // a piece overlapping more tiles than this goes to coarse bins

// A bin entry names a piece: (chunk << 16) | index within the chunk. Chunks hold consecutive
// faces in order, so increasing entries mean increasing (face, fan index).
constexpr int kEntryShift = 16;
struct PieceStore {
  const Piece* const* pieces;    // [num_chunks] -> the chunk's pieces
  const double* const* coef;     // [num_chunks] -> their clipped pieces' coefficients c_ik
};

struct TileBuffers {
  alignas(64) float z[kTile * kTile];    // float32 depth of the current winner, +inf if none
  alignas(64) int32_t id[kTile * kTile]; // its entry, -1 if none
};

struct TileJob {
  int x0, y0;                    // tile origin, pixels (multiples of kTile)
  const uint32_t* fine;          // this tile's entries, increasing
  int64_t num_fine;
  const uint32_t* coarse;        // its coarse tile's entries, increasing
  int64_t num_coarse;
  int width, height;             // screen
  float* rast;                   // [H, W, 4] of this batch item
  float* depth;                  // [H, W]
};

enum class TileKernel { kScalar, kAvx2 };
bool cpu_has_avx2();

// Rasterizes and resolves one tile: writes every output pixel of the tile that is on screen.
void raster_tile(TileKernel kernel, const TileJob& job, const PieceStore& store, TileBuffers& buf);

}  // namespace raster
}  // namespace render_npu
