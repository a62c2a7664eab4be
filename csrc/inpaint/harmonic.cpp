// Harmonic fill (harmonic.h). The pyramid is plain sums and flags, shared by both variants; the
// kernels with multiply-adds are in harmonic_impl.inc (why: see there).
#include "inpaint/harmonic.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#include "rasterize/barrier.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RNPU_HARMONIC_FMA 1
#include <immintrin.h>
#else
#define RNPU_HARMONIC_FMA 0
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace render_npu {
namespace {

constexpr int64_t kMinCellsPerThread = 1 << 15;

int threads_for(int64_t work, int num_threads) {
  return int(std::max<int64_t>(1, std::min<int64_t>(num_threads, work / kMinCellsPerThread + 1)));
}

// Calls fn(band, begin, end) on contiguous bands of [0, n), band 0 on the calling thread;
// returns the number of bands (<= want).
template <class Fn>
int run_bands(int64_t n, int want, Fn&& fn) {
  if (want <= 1) {
    fn(0, int64_t(0), n);
    return 1;
  }
  int team = 1;
  raster::run_team(want, [&](int t) { team = t; }, [&](int t) { fn(t, n * t / team, n * (t + 1) / team); });
  return team;
}

// An array that is not zero-filled (every element is written before it is read).
template <class T>
struct Buffer {
  std::unique_ptr<T[]> p;
  void alloc(int64_t n) { p.reset(new T[size_t(n)]); }
  T* data() { return p.get(); }
  const T* data() const { return p.get(); }
  T& operator[](int64_t i) { return p[size_t(i)]; }
  const T& operator[](int64_t i) const { return p[size_t(i)]; }
};

// One pyramid level: colour sums (then the estimate) [h, w, C], known counts [h, w], domain [h, w].
struct Level {
  int64_t h = 0, w = 0;
  Buffer<float> c, n;
  Buffer<uint8_t> d;
  int64_t unknown = 0;  // cells of the domain without a known texel
};

// The next pyramid level (texgen.inpaint._down2 of colour, count and domain) from a finer grid of
// hs x ws cells: colour(i) -> const float* [C], count(i) -> float, dom(i) -> bool. Blocks are
// summed ((a + b) + c) + d with a = (2r, 2c), b = (2r + 1, 2c), c = (2r, 2c + 1),
// d = (2r + 1, 2c + 1), a cell beyond an odd edge taken as +0.0f (torch pads with zeros).
// Also counts the finer grid's cells: `finer_unknown` (in the domain, count 0) and `finer_count`
// (the sum of their counts).
template <int KC, class Colour, class Count, class Dom>
Level down2(int64_t hs, int64_t ws, int64_t C, int num_threads, Colour&& colour, Count&& count, Dom&& dom,
            int64_t& finer_unknown, int64_t& finer_count) {
  Level lv;
  lv.h = (hs + 1) / 2;
  lv.w = (ws + 1) / 2;
  lv.c.alloc(lv.h * lv.w * C + 1);  // + 1: SIMD kernels may load one float past a texel
  lv.c[lv.h * lv.w * C] = 0.0f;
  lv.n.alloc(lv.h * lv.w);
  lv.d.alloc(lv.h * lv.w);
  const int64_t nc = KC > 0 ? KC : C, w = lv.w;
  float* const oc = lv.c.data();
  float* const on = lv.n.data();
  uint8_t* const od = lv.d.data();
  // block (r, c); has_b / has_c: whether row 2r + 1 / column 2c + 1 exists (compile-time flags).
  // Flags combine with | rather than || (no data-dependent branches), pointers are locals (the
  // byte stores could alias anything reached through a reference).
  struct Tally {
    int64_t unknown = 0, finer_unknown = 0, finer_count = 0;
  };
  auto block = [=](int64_t r, int64_t c, auto hb, auto hc, Tally& t) {
    constexpr bool has_b = decltype(hb)::value, has_c = decltype(hc)::value, has_d = has_b && has_c;
    const int64_t ia = 2 * r * ws + 2 * c, ib = ia + ws, ic = ia + 1, id = ia + ws + 1;
    const int64_t o = r * w + c;
    const float* pa = colour(ia);
    const float* pb = colour(has_b ? ib : ia);
    const float* pc = colour(has_c ? ic : ia);
    const float* pd = colour(has_d ? id : ia);
    float* out = oc + o * C;
    for (int64_t ch = 0; ch < nc; ++ch)
      out[ch] = ((pa[ch] + (has_b ? pb[ch] : 0.0f)) + (has_c ? pc[ch] : 0.0f)) + (has_d ? pd[ch] : 0.0f);
    const float na = count(ia), nb = has_b ? count(ib) : 0.0f, ncc = has_c ? count(ic) : 0.0f,
                nd = has_d ? count(id) : 0.0f;
    const int da = dom(ia), db = has_b && dom(ib), dc = has_c && dom(ic), dd = has_d && dom(id);
    const float n = ((na + nb) + ncc) + nd;
    const int in = da | db | dc | dd;
    on[o] = n;
    od[o] = uint8_t(in);
    t.unknown += in & int(!(n > 0.0f));
    t.finer_unknown += (da & int(!(na > 0.0f))) + (db & int(!(nb > 0.0f))) + (dc & int(!(ncc > 0.0f))) +
                       (dd & int(!(nd > 0.0f)));
    t.finer_count += int64_t(na) + int64_t(nb) + int64_t(ncc) + int64_t(nd);
  };
  const int want = threads_for(hs * ws, num_threads);
  std::vector<Tally> tally(static_cast<size_t>(want));
  const std::true_type yes;
  const std::false_type no;
  const int bands = run_bands(lv.h, want, [&](int band, int64_t r0, int64_t r1) {
    Tally t;
    const int64_t pairs = ws / 2;
    for (int64_t r = r0; r < r1; ++r) {
      if (2 * r + 1 < hs) {
        for (int64_t c = 0; c < pairs; ++c) block(r, c, yes, yes, t);
        if (ws & 1) block(r, pairs, yes, no, t);
      } else {
        for (int64_t c = 0; c < pairs; ++c) block(r, c, no, yes, t);
        if (ws & 1) block(r, pairs, no, no, t);
      }
    }
    tally[size_t(band)] = t;
  });
  finer_unknown = finer_count = 0;
  for (int b = 0; b < bands; ++b) {
    lv.unknown += tally[size_t(b)].unknown;
    finer_unknown += tally[size_t(b)].finer_unknown;
    finer_count += tally[size_t(b)].finer_count;
  }
  return lv;
}

// Neighbour flags of a cell: bits 0..3 = neighbour (up, down, left, right) in the grid and the
// domain; bits 4..7 = neighbour in the grid.
constexpr uint8_t kUp = 16, kDown = 32, kLeft = 64, kRight = 128;

// kWeights[valid bits] = valid_k / count, in float32 as the torch code divides (0 for no neighbour).
struct WeightTable {
  float w[16][4];
  WeightTable() {
    for (int m = 0; m < 16; ++m) {
      const int cnt = (m & 1) + ((m >> 1) & 1) + ((m >> 2) & 1) + ((m >> 3) & 1);
      for (int k = 0; k < 4; ++k)
        w[m][k] = cnt ? static_cast<float>((m >> k) & 1) / static_cast<float>(cnt) : 0.0f;
    }
  }
};
const WeightTable kWeightTable;
const float (&kWeights)[16][4] = kWeightTable.w;

// Source position along one axis: rows (or columns) i0, i1 and weights l0, l1.
struct Axis {
  int64_t i0, i1;
  float l0, l1;
};

// torch's upsample_bilinear2d (align_corners=False, no scale given) from `in` to `out` cells.
std::vector<Axis> upsample_axis(int64_t in, int64_t out) {
  std::vector<Axis> ax(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    Axis& a = ax[size_t(o)];
    if (in == out) {
      a = {o, o, 1.0f, 0.0f};
      continue;
    }
    float src = std::fma(scale, static_cast<float>(o) + 0.5f, -0.5f);
    if (src < 0.0f) src = 0.0f;
    a.i0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
    a.l1 = std::min(std::max(src - static_cast<float>(a.i0), 0.0f), 1.0f);
    a.i1 = a.i0 + (a.i0 < in - 1 ? 1 : 0);
    a.l0 = 1.0f - a.l1;
  }
  return ax;
}

// texgen.render.bilinear_sample's coordinate ((t + 0.5) * (in / out) - 0.5, clamped to the grid)
// for each of `out` full-resolution rows (or columns) on an `in`-cell level; l1 = the fraction.
std::vector<Axis> sample_axis(int64_t in, int64_t out) {
  std::vector<Axis> ax(static_cast<size_t>(out));
  const float s = static_cast<float>(static_cast<double>(in) / static_cast<double>(out));
  const float hi = static_cast<float>(in - 1);
  for (int64_t o = 0; o < out; ++o) {
    float x = (static_cast<float>(o) + 0.5f) * s - 0.5f;
    x = std::min(std::max(x, 0.0f), hi);
    const float x0 = std::floor(x);
    Axis& a = ax[size_t(o)];
    a.i0 = static_cast<int64_t>(x0);
    a.i1 = std::min(a.i0 + 1, in - 1);
    a.l1 = x - x0;
    a.l0 = 0.0f;  // unused: torch.lerp takes the fraction only
  }
  return ax;
}

// Bit j set where known[j] == 0 and (domain == nullptr or domain[j] != 0), j < n <= 64.
inline uint64_t unknown_bits(const uint8_t* known, const uint8_t* domain, int64_t n) {
  uint64_t m = 0;
#if defined(__SSE2__)
  if (n == 64) {
    const __m128i zero = _mm_setzero_si128();
    for (int q = 0; q < 4; ++q) {
      __m128i z = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(known + 16 * q)), zero);
      if (domain)
        z = _mm_andnot_si128(
            _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(domain + 16 * q)), zero), z);
      m |= uint64_t(uint32_t(_mm_movemask_epi8(z))) << (16 * q);
    }
    return m;
  }
#endif
  for (int64_t j = 0; j < n; ++j) m |= uint64_t(!known[j] && (!domain || domain[j])) << j;
  return m;
}

// Every one of n <= 64 cells.
inline uint64_t every_cell(int64_t, int64_t n) { return n == 64 ? ~uint64_t(0) : (uint64_t(1) << n) - 1; }

// Progress of one relaxation pipeline stage (steps done), on its own cache line.
struct alignas(64) Progress {
  std::atomic<int64_t> steps{0};
};

inline void wait_until(const std::atomic<int64_t>& v, int64_t target) {
  for (int spin = 0; v.load(std::memory_order_acquire) < target; ++spin) {
    if (spin < 1000) {
#if RNPU_HARMONIC_FMA
      _mm_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }
}

#define RNPU_HARMONIC_SSE 0
namespace portable {
#include "inpaint/harmonic_impl.inc"
}  // namespace portable
#undef RNPU_HARMONIC_SSE

#if RNPU_HARMONIC_FMA
// Everything in this block is compiled for FMA and only called after a run-time CPU check.
#pragma GCC push_options
#pragma GCC target("fma")
#define RNPU_HARMONIC_SSE 1
namespace fma {
#include "inpaint/harmonic_impl.inc"
}  // namespace fma
#undef RNPU_HARMONIC_SSE
#pragma GCC pop_options
#endif

template <int KC>
void solve_dispatch(const HarmonicFillArgs& a, std::vector<Level>& levels) {
#if RNPU_HARMONIC_FMA
  if (!a.portable && __builtin_cpu_supports("fma")) return fma::solve<KC>(a, levels);
#endif
  portable::solve<KC>(a, levels);
}

// The pyramid, then the solve (KC: the channel count, or 0 for any); returns the texels filled.
template <int KC>
int64_t fill(const HarmonicFillArgs& a) {
  const int64_t H = a.height, W = a.width, C = a.channels;
  const uint8_t* known = a.known;
  const uint8_t* domain = a.domain;
  // the pyramid: level 0 (half resolution) from the texture, counting the texels to fill and the
  // known ones on the way; then down to 1 x 1
  std::vector<Level> levels;
  int64_t todo = 0, n_known = 0, unused_u = 0, unused_n = 0;
  const float* tex = a.texture;
  auto colour0 = [tex, C](int64_t i) { return tex + i * C; };
  auto count0 = [known](int64_t i) { return known[i] ? 1.0f : 0.0f; };
  if (domain)
    levels.push_back(down2<KC>(H, W, C, a.num_threads, colour0, count0,
                               [known, domain](int64_t i) { return (known[i] | domain[i]) != 0; }, todo, n_known));
  else
    levels.push_back(down2<KC>(H, W, C, a.num_threads, colour0, count0, [](int64_t) { return true; }, todo, n_known));
  if (todo == 0) return 0;
  if (n_known == 0) {  // nothing to propagate: grey, as the torch code
    for (int64_t i = 0; i < H * W; ++i)
      if (!domain || domain[i])
        for (int64_t ch = 0; ch < C; ++ch) a.texture[i * C + ch] = 0.5f;
    return todo;
  }
  while (std::max(levels.back().h, levels.back().w) > 1) {
    const Level& f = levels.back();
    const float* fc = f.c.data();
    const float* fn = f.n.data();
    const uint8_t* fd = f.d.data();
    Level next = down2<KC>(
        f.h, f.w, C, a.num_threads, [fc, C](int64_t i) { return fc + i * C; }, [fn](int64_t i) { return fn[i]; },
        [fd](int64_t i) { return fd[i] != 0; }, unused_u, unused_n);
    levels.push_back(std::move(next));
  }
  solve_dispatch<KC>(a, levels);
  return todo;
}

}  // namespace

int64_t harmonic_fill(const HarmonicFillArgs& a) {
  const int64_t H = a.height, W = a.width, C = a.channels;
  if (H < 2 || W < 2) throw std::invalid_argument("harmonic_fill: the texture must be at least 2 x 2");
  if (C < 1) throw std::invalid_argument("harmonic_fill: channels must be >= 1");
  if (H * W >= (int64_t(1) << 31)) throw std::invalid_argument("harmonic_fill: more than 2^31 - 1 texels");
  if (a.iters < 0) throw std::invalid_argument("harmonic_fill: iters must be >= 0");
  if (!a.texture || !a.known) throw std::invalid_argument("harmonic_fill: null buffer");
  HarmonicFillArgs args = a;
  args.num_threads = std::max(1, std::min(a.num_threads, raster::kMaxThreads));
  switch (C) {
    case 1: return fill<1>(args);
    case 3: return fill<3>(args);
    case 4: return fill<4>(args);
    default: return fill<0>(args);
  }
}

}  // namespace render_npu
