// Triangle setup for the compiled CPU rasterizer: clipping, projection, 1/256-pixel snapping,
// integer edge equations, depth plane and barycentric coefficients -- the float32/int64/float64
// operations of render_npu/reference.py (steps 1-3 of its docstring), in the same order, so the
// results are bit-identical.
#pragma once
#include <cstdint>
#include <vector>

namespace render_npu {
namespace raster {

constexpr int kSubpixel = 256;  // fixed-point steps per pixel
constexpr int kHalf = 128;      // pixel centre offset in fixed point
constexpr float kGuardBand = 128.0f;
// |snapped coordinate| bound (1/256 px). Inside the guard band |X| <= 128, so a legitimate value
// is below 128 * 8192 * 256 + 8192 * 256 < 2**28.1; only numerically broken clip output
// (catastrophic cancellation in w) exceeds it, and such a piece covers nothing. The bound keeps
// every edge value below 2**61, so int64 arithmetic never overflows.
constexpr float kMaxFixed = 536870912.0f;  // 2**29

// One screen-space triangle piece (a clipped face gives a fan of them): everything the tile loop
// and the resolve read, in one 64-byte cache line (1M faces -> 64 MB). Edge equations and the
// pixel rectangle are recomputed from the vertices (a few integer ops) rather than stored.
struct alignas(64) Piece {
  Piece() {}  // no zero-fill: setup writes every field
  int32_t X[3], Y[3];  // snapped vertices, 1/256 pixel, |value| <= 2**29
  double plane[3];     // depth plane (Ad, Bd, Cd): depth = f32(Ad * px + (Bd * py + Cd))
  uint32_t face;       // face id (< 2**24) | flags below
  static constexpr uint32_t kNegative = 1u << 31;  // negative signed area: edges are flipped
  static constexpr uint32_t kSmall = 1u << 29;     // vertex bounding box <= kSmallExtent per axis
  static constexpr uint32_t kFaceMask = (1u << 24) - 1;
};
static_assert(sizeof(Piece) == 64, "Piece is one cache line");

// Pieces no wider or taller than this (1/256 px; 128 px) have 32-bit edge values (divided by
// 256) over any tile their rectangle touches: see tile_impl.inc.
constexpr int32_t kSmallExtent = 1 << 15;

// Pixels whose centre lies in the piece's vertex bounding box, clamped to the screen; inclusive.
struct PixelRect {
  int x0, x1, y0, y1;
};

// reference.pixel_range on both axes: ceil((lo - 128) / 256) .. floor((hi - 128) / 256), clamped
// (>> is floor division). Empty (x0 > x1 or y0 > y1) when the piece is off screen.
inline PixelRect piece_rect(const int32_t* X, const int32_t* Y, int width, int height) {
  const int32_t xlo = X[0] < X[1] ? (X[0] < X[2] ? X[0] : X[2]) : (X[1] < X[2] ? X[1] : X[2]);
  const int32_t xhi = X[0] > X[1] ? (X[0] > X[2] ? X[0] : X[2]) : (X[1] > X[2] ? X[1] : X[2]);
  const int32_t ylo = Y[0] < Y[1] ? (Y[0] < Y[2] ? Y[0] : Y[2]) : (Y[1] < Y[2] ? Y[1] : Y[2]);
  const int32_t yhi = Y[0] > Y[1] ? (Y[0] > Y[2] ? Y[0] : Y[2]) : (Y[1] > Y[2] ? Y[1] : Y[2]);
  PixelRect r;
  r.x0 = -((kHalf - xlo) >> 8);
  r.x1 = (xhi - kHalf) >> 8;
  r.y0 = -((kHalf - ylo) >> 8);
  r.y1 = (yhi - kHalf) >> 8;
  if (r.x0 < 0) r.x0 = 0;
  if (r.y0 < 0) r.y0 = 0;
  if (r.x1 > width - 1) r.x1 = width - 1;
  if (r.y1 > height - 1) r.y1 = height - 1;
  return r;
}

// Tiles a piece's pixel rectangle overlaps (tile = kTileSize pixels), inclusive; for binning.
constexpr int kTileShift = 6;
constexpr int kTileSize = 1 << kTileShift;
struct TileSpan {
  uint16_t tx0, tx1, ty0, ty1;
};

// The pieces of a contiguous range of faces, in (face, fan index) order.
struct ChunkOut {
  std::vector<Piece> pieces;
  std::vector<TileSpan> spans;  // parallel to pieces
  void clear() {
    pieces.clear();
    spans.clear();
  }
};

struct ScreenMap {
  float ax, bx, ay, by;  // s = X * a + b per axis (float32, exact)
  int width, height;
  bool cull_backfaces;
};
ScreenMap make_screen_map(int height, int width, bool opengl, bool cull_backfaces);

// Sets up faces [f0, f1) of one batch item (pos: [V, 4]) and appends their pieces to `out`.
// Returns false (and stops) if a face index is outside [0, V). `use_avx2`: the AVX2 variant
// (rasterize/simd.h; the caller has checked the CPU); both give identical pieces.
bool setup_faces(const float* pos, int64_t num_vertices, const int32_t* faces, int64_t f0, int64_t f1,
                 const ScreenMap& map, bool use_avx2, ChunkOut& out);

// Integer edge equations of a piece, orientation normalised to positive area:
// E_i(px, py) = a_i px + b_i py + c_i at pixel centres (px, py pixel indices); covered iff
// E_i >= bias_i for all i. |E_i| < 2**61 for px, py < 2**14.
struct Edges {
  int64_t a[3], b[3], c[3], bias[3];
};

inline void piece_edges(const Piece& p, Edges& e) {
  static constexpr int kA[3] = {1, 2, 0}, kB[3] = {2, 0, 1};  // edge i runs kA[i] -> kB[i]
  const int64_t s = (p.face & Piece::kNegative) ? -1 : 1;
  for (int i = 0; i < 3; ++i) {
    const int ia = kA[i], ib = kB[i];
    const int64_t dx = s * (int64_t(p.X[ib]) - p.X[ia]);
    const int64_t dy = s * (int64_t(p.Y[ib]) - p.Y[ia]);
    e.a[i] = -dy * kSubpixel;
    e.b[i] = dx * kSubpixel;
    e.c[i] = dx * (kHalf - int64_t(p.Y[ia])) - dy * (kHalf - int64_t(p.X[ia]));
    e.bias[i] = (dy < 0 || (dy == 0 && dx < 0)) ? 0 : 1;  // top-left edges include the centre
  }
}

}  // namespace raster
}  // namespace render_npu
