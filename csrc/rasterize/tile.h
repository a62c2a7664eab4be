// Per-tile rasterization for the compiled CPU rasterizer: depth test of a tile's pieces in
// increasing entry order into a tile-local buffer, then barycentric resolve of the winners
// straight into the output. Steps 2-4 of render_npu/reference.py's docstring, bit-identical.
#pragma once
#include <cstdint>

#include "rasterize/setup.h"

namespace render_npu {
namespace raster {

// Tile side in pixels (a multiple of 8: the SIMD loop's group). Measured on sphere meshes
// (20k and 1M faces, 1024^2 and 2048^2): 16 -> 32 -> 64 -> 128 px each faster (fewer duplicate
// entries, longer contiguous output rows), 128 about equal to 64; 64 keeps the tile buffer
// (32 KiB) within L1/L2 on any x86-64.
constexpr int kTile = kTileSize;
constexpr int kCoarseFactor = 8;  // coarse tile side = 8 tiles = 512 pixels
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
