// Input/output format of the AscendC fine-raster kernel (ascendc_kernels/README.md, "Input
// format", explains every field). Shared by the kernel (device and host builds), the torch_npu
// op wrapper and, mirrored as Python constants, render_npu/backends/ascendc.py.
#pragma once
#include <cstdint>

namespace render_npu_ascendc {

// A tile is kTileW x kTileH pixels, stored row-major (pixel p = ly * kTileW + lx). 256 float32
// values = 1 KiB = 4 vector repeats of 256 bytes: every vector instruction of the kernel covers
// a whole tile.
constexpr int32_t kTileW = 16;
constexpr int32_t kTileH = 16;
constexpr int32_t kTilePixels = kTileW * kTileH;  // 256

// Output planes per tile, in this order; the output tensor is float32 [num_tiles, 5, 256].
constexpr int32_t kPlaneB0 = 0, kPlaneB1 = 1, kPlaneB2 = 2, kPlaneId = 3, kPlaneDepth = 4;
constexpr int32_t kPlanes = 5;
constexpr int32_t kOutPerTile = kPlanes * kTilePixels;  // 1280 floats = 5 KiB

// Tile descriptor: int32 [num_tiles, 8] (one 32-byte block per tile).
constexpr int32_t kTileDescWords = 8;
constexpr int32_t kTileX0 = 0;      // first pixel column of the tile (multiple of kTileW)
constexpr int32_t kTileY0 = 1;      // first pixel row
constexpr int32_t kTileStart = 2;   // offset of the tile's piece list in `lists` (multiple of 8)
constexpr int32_t kTileCount = 3;   // number of pieces in that list
// words 4..7: zero (reserved)

// Piece records, built from the torch backend's setup tables by render_npu/backends/ascendc.py
// (pieces_from_torch, canonical_tables). Edge i is the edge opposite vertex i; orientation is
// normalised (positive area), so pixel (px, py) is covered iff E_i = A_i px + B_i py + C_i >= bias_i
// for i = 0, 1, 2 (exact integers; |A_i|, |B_i| <= 2**38, |C_i| < 2**61).
// Integer part: int64 [num_pieces, 12] (96 bytes = 3 blocks).
constexpr int32_t kRecIWords = 12;
constexpr int32_t kRecA = 0;     // 3 words: A_i = dE_i/dpx = -256 dy
constexpr int32_t kRecB = 3;     // 3 words: B_i = dE_i/dpy = 256 dx
constexpr int32_t kRecC = 6;     // 3 words: C_i = E_i(0, 0)
constexpr int32_t kRecBias = 9;  // 3 words: 0 on top-left edges, else 1
// Float part: float32 [num_pieces, 16] (64 bytes = 2 blocks).
constexpr int32_t kRecFWords = 16;
constexpr int32_t kRecQ = 0;        // 3 words: z / w of the piece's vertices (NDC depth)
constexpr int32_t kRecCoef = 3;     // 9 words: c_ik = beta_ik / w_i, row-major (i: piece vertex,
                                    // k: parent vertex), any positive per-piece scale
constexpr int32_t kRecId = 12;      // parent triangle id as float32 (exact: ids < 2**24)
constexpr int32_t kRecInvArea = 15; // 1 / (twice the area in fixed-point units), > 0
// words 13, 14: the torch backend's depth gradient, unused here

// Local pixel coordinates input: float32 [2, 256] = (lx, ly) of the tile's pixels.
constexpr int32_t kCoordsWords = 2 * kTilePixels;

// Bounds of valid records (vertices within |x|, |y| <= 2**29 in 1/256 pixel; README "Exactness");
// a record outside them covers nothing.
constexpr int64_t kMaxAB = int64_t(1) << 38;
constexpr int64_t kMaxC = int64_t(1) << 61;

// Exact float32 evaluation of the edge functions (README, "Exactness"): E = M * Eh + El with
// M = 2**19, El in [0, 31 M) < 2**24 exact, Eh exact whenever |E| could be small.
constexpr int32_t kSplitShift = 19;

// Pieces whose records are gathered into the UB per DMA batch.
constexpr int32_t kChunk = 64;

}  // namespace render_npu_ascendc
