// Per-tile rasterization for the compiled CPU rasterizer: depth test of a tile's pieces in
// increasing entry order into a tile-local buffer, then barycentric resolve of the winners
// straight into the output. Steps 2-4 of render_npu/reference.py's docstring, bit-identical.
#pragma once
#include <cstdint>
#include <vector>

#include "rasterize/resolve.h"
#include "rasterize/setup.h"
#include "rasterize/simd.h"

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
};

// What the barycentric resolve needs of one piece: its parent triangle (resolve.h), computed on
// first use and cached.
struct alignas(32) ResolveInfo {
  ParentPlane plane;
  float face_plus_one;
  uint32_t local;               // index in the tile's merged entry list
  uint64_t tile;                // TileBuffers::serial when filled
};
// Cache slots, direct-mapped by the entry's index in its tile's list (so the first 1024 entries
// of a tile never collide); 128 KiB.
constexpr int kResolveSlots = 1024;

// Per-thread scratch of the tile loop.
struct TileBuffers {
  alignas(64) float z[kTile * kTile];    // float32 depth of the current winner, +inf if none
  alignas(64) int32_t id[kTile * kTile]; // its index in `entries`, -1 if none
  std::vector<uint32_t> entries;         // the tile's bin entries, merged, increasing
  ResolveInfo info[kResolveSlots];
  uint64_t serial = 0;                   // tiles started; slots of earlier tiles are stale
  TileBuffers() {
    for (ResolveInfo& r : info) r.tile = 0;
  }
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
  const float* pos;              // [V, 4] clip coordinates of this batch item (the resolve's parents)
  const int32_t* faces;          // [F, 3]
  bool zero_filled;              // rast and depth hold +0 already: empty pixels are skipped
  double ax, bx, ay, by;         // screen map (ScreenMap), as float64
};

enum class TileKernel { kScalar, kAvx2 };  // the variants of rasterize/simd.h

// Rasterizes and resolves one tile: writes every output pixel of the tile that is on screen (the
// covered ones only, when job.zero_filled).
void raster_tile(TileKernel kernel, const TileJob& job, const PieceStore& store, TileBuffers& buf);

}  // namespace raster
}  // namespace render_npu
