// Driver of the compiled CPU rasterizer. Per batch item, four parallel phases separated by
// barriers (every thread takes part in every phase; how the work is split never affects the
// result):
//   1. setup: faces in chunks of kChunkFaces (dynamic, atomic counter) -> per-chunk piece arrays,
//      in (face, fan index) order (setup.h);
//   2. count: each thread takes a contiguous range of chunks and counts its (piece, bin) pairs;
//      a serial prefix sum turns the counts into exact per-thread write cursors, so bins are
//      exact-size arrays whatever the load, with entries in increasing piece order;
//   3. fill: the same walk writes the entries;
//   4. raster: tiles (dynamic, atomic counter), each depth-tested in a tile-local buffer and
//      resolved straight into the output (tile.h).
// A piece overlapping more than kFineLimit tiles goes to coarse bins (kCoarseFactor^2 tiles
// each) instead, which bounds the bin memory of large triangles at high resolutions.
//
// Scratch memory lives in a Workspace that is cached between calls (one, at most
// kMaxCachedWorkspaceBytes): fresh pages cost a page fault each, which for 1M faces was a large
// part of the run time.
#include "rasterize/rasterize_cpu.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "rasterize/barrier.h"
#include "rasterize/setup.h"
#include "rasterize/tile.h"

namespace render_npu {

namespace {

using namespace raster;

// Faces per setup chunk. With at most 26 pieces per face (clipped polygons have at most 28
// vertices) a chunk holds fewer than 2**16 pieces, as the bin entry encoding needs; 2**24 faces
// make 8192 chunks, so entries stay below 2**29.
constexpr int64_t kChunkFaces = 2048;
constexpr size_t kMaxCachedWorkspaceBytes = size_t(256) << 20;

// Grow-only uninitialised array (std::vector would zero-fill on every growth).
template <class T>
class Buffer {
 public:
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  void reserve(size_t n) {
    if (n > cap_) {
      data_.reset();
      cap_ = 0;
      data_.reset(new T[n]);
      cap_ = n;
    }
  }
  size_t bytes() const { return cap_ * sizeof(T); }

 private:
  std::unique_ptr<T[]> data_;
  size_t cap_ = 0;
};

// Everything a call needs besides its inputs and outputs. Only grows.
struct Workspace {
  std::vector<ChunkOut> chunks;
  std::vector<const Piece*> chunk_pieces;
  std::vector<int64_t> part_begin;
  std::vector<int64_t> counts, ccounts;  // [threads][bins]: counts, then write cursors
  std::vector<int64_t> bin_start, cbin_start;
  Buffer<uint32_t> bins, cbins;

  size_t bytes() const {
    size_t n = bins.bytes() + cbins.bytes() + (counts.capacity() + ccounts.capacity()) * sizeof(int64_t);
    for (const ChunkOut& c : chunks)
      n += c.pieces.capacity() * sizeof(Piece) + c.spans.capacity() * sizeof(TileSpan);
    return n;
  }
};

std::mutex g_cache_mutex;
std::unique_ptr<Workspace> g_cache;

std::unique_ptr<Workspace> acquire_workspace() {
  {
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    if (g_cache) return std::move(g_cache);
  }
  return std::unique_ptr<Workspace>(new Workspace);
}

void release_workspace(std::unique_ptr<Workspace> ws) {
  if (ws->bytes() > kMaxCachedWorkspaceBytes) return;  // freed here
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  if (!g_cache) g_cache = std::move(ws);
}

class Rasterizer {
 public:
  Rasterizer(const float* pos, int64_t batch, int64_t num_vertices, const int32_t* faces, int64_t num_faces,
             const RasterConfig& cfg, float* rast, float* depth, Workspace& ws)
      : pos_(pos), batch_(batch), V_(num_vertices), faces_(faces), F_(num_faces), cfg_(cfg), rast_(rast),
        depth_(depth), requested_(std::min(std::max(cfg.num_threads, 1), kMaxThreads)), ws_(ws) {
    map_ = make_screen_map(cfg.height, cfg.width, cfg.opengl_viewport, cfg.cull_backfaces);
    switch (cfg.kernel) {
      case RasterKernel::kScalar: kernel_ = TileKernel::kScalar; break;
      case RasterKernel::kAvx2:
        if (!cpu_has_avx2()) throw std::invalid_argument("rasterize: the avx2 kernel needs a CPU with AVX2");
        kernel_ = TileKernel::kAvx2;
        break;
      default: kernel_ = cpu_has_avx2() ? TileKernel::kAvx2 : TileKernel::kScalar;
    }
    tiles_x_ = (cfg.width + kTile - 1) / kTile;
    tiles_y_ = (cfg.height + kTile - 1) / kTile;
    ctiles_x_ = (tiles_x_ + kCoarseFactor - 1) / kCoarseFactor;
    const int ctiles_y = (tiles_y_ + kCoarseFactor - 1) / kCoarseFactor;
    num_tiles_ = int64_t(tiles_x_) * tiles_y_;
    num_ctiles_ = int64_t(ctiles_x_) * ctiles_y;
    num_chunks_ = (F_ + kChunkFaces - 1) / kChunkFaces;
    // No more threads than work items (tiles or chunks): a thread costs tens of microseconds to
    // start, and the result does not depend on the count.
    requested_ = int(std::min<int64_t>(requested_, std::max<int64_t>(1, std::max(num_tiles_, num_chunks_))));
  }

  void run() {
    run_team(
        requested_,
        [&](int threads) {
          threads_ = threads;
          guarded([&] { allocate(); });
          barrier_.set_count(threads_);
        },
        [&](int tid) { work(tid); });
    if (error_) std::rethrow_exception(error_);
    if (bad_face_) throw std::invalid_argument("faces: index out of range [0, num_vertices)");
  }

 private:
  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = e;
    failed_.store(true);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }

  template <class Fn>
  void guarded(Fn&& fn) {
    if (failed()) return;
    try {
      fn();
    } catch (...) {
      fail(std::current_exception());
    }
  }

  // Every thread passes every barrier, even after a failure (phases then do nothing), so no
  // thread can be left waiting.
  void work(int tid) {
    const bool lead = tid == 0;
    for (int64_t b = 0; b < batch_; ++b) {
      guarded([&] { setup_phase(b); });
      barrier_.wait();
      if (lead) guarded([&] { plan_parts(); });
      barrier_.wait();
      guarded([&] { count_phase(tid); });
      barrier_.wait();
      if (lead) guarded([&] { prefix_sums(); });
      barrier_.wait();
      guarded([&] { fill_phase(tid); });
      barrier_.wait();
      guarded([&] { raster_phase(b); });
      barrier_.wait();
    }
  }

  void allocate() {
    if (ws_.chunks.size() < size_t(num_chunks_)) ws_.chunks.resize(num_chunks_);
    ws_.chunk_pieces.resize(num_chunks_);
    ws_.part_begin.resize(threads_ + 1);
    ws_.counts.resize(threads_ * num_tiles_);
    ws_.ccounts.resize(threads_ * num_ctiles_);
    ws_.bin_start.resize(num_tiles_ + 1);
    ws_.cbin_start.resize(num_ctiles_ + 1);
  }

  // ---- phase 1: setup -----------------------------------------------------------------------
  void setup_phase(int64_t b) {
    const float* pos = pos_ + b * V_ * 4;
    for (;;) {
      const int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed);
      if (c >= num_chunks_ || failed()) break;
      ChunkOut& out = ws_.chunks[c];
      out.clear();
      const int64_t f0 = c * kChunkFaces, f1 = std::min(F_, f0 + kChunkFaces);
      out.pieces.reserve(f1 - f0);
      out.spans.reserve(f1 - f0);
      if (!setup_faces(pos, V_, faces_, f0, f1, map_, kernel_ == TileKernel::kAvx2, out)) {
        bad_face_.store(true);
        failed_.store(true);
      }
    }
  }

  // Serial: chunk pointers, and contiguous chunk ranges per thread with similar piece counts.
  void plan_parts() {
    next_chunk_.store(0);
    next_tile_.store(0);
    int64_t total = 0;
    for (int64_t c = 0; c < num_chunks_; ++c) {
      ws_.chunk_pieces[c] = ws_.chunks[c].pieces.data();
      total += int64_t(ws_.chunks[c].pieces.size());
    }
    int64_t c = 0, seen = 0;
    for (int p = 0; p < threads_; ++p) {
      ws_.part_begin[p] = c;
      const int64_t goal = total * (p + 1) / threads_;
      while (c < num_chunks_ && seen < goal) seen += int64_t(ws_.chunks[c++].pieces.size());
    }
    ws_.part_begin[threads_] = num_chunks_;
  }

  // Calls visit(is_coarse, bin index, entry) for every (piece, bin) pair of part `p`, in order.
  template <class Visit>
  void walk_part(int p, Visit&& visit) const {
    for (int64_t c = ws_.part_begin[p]; c < ws_.part_begin[p + 1]; ++c) {
      const std::vector<TileSpan>& spans = ws_.chunks[c].spans;
      const uint32_t base = uint32_t(c) << kEntryShift;
      for (size_t i = 0; i < spans.size(); ++i) {
        const int tx0 = spans[i].tx0, tx1 = spans[i].tx1, ty0 = spans[i].ty0, ty1 = spans[i].ty1;
        const uint32_t entry = base | uint32_t(i);
        if ((tx1 - tx0 + 1) * (ty1 - ty0 + 1) <= kFineLimit) {
          for (int ty = ty0; ty <= ty1; ++ty)
            for (int tx = tx0; tx <= tx1; ++tx) visit(false, int64_t(ty) * tiles_x_ + tx, entry);
        } else {
          const int cx0 = tx0 / kCoarseFactor, cx1 = tx1 / kCoarseFactor;
          const int cy0 = ty0 / kCoarseFactor, cy1 = ty1 / kCoarseFactor;
          for (int cy = cy0; cy <= cy1; ++cy)
            for (int cx = cx0; cx <= cx1; ++cx) visit(true, int64_t(cy) * ctiles_x_ + cx, entry);
        }
      }
    }
  }

  // ---- phase 2: count -----------------------------------------------------------------------
  void count_phase(int p) {
    int64_t* cnt = ws_.counts.data() + p * num_tiles_;
    int64_t* ccnt = ws_.ccounts.data() + p * num_ctiles_;
    std::fill(cnt, cnt + num_tiles_, 0);
    std::fill(ccnt, ccnt + num_ctiles_, 0);
    walk_part(p, [&](bool coarse, int64_t bin, uint32_t) { ++(coarse ? ccnt : cnt)[bin]; });
  }

  // Serial: counts -> exact bin extents and per-thread write cursors (in place).
  static void prefix(std::vector<int64_t>& counts, std::vector<int64_t>& start, int64_t bins, int parts) {
    int64_t run = 0;
    for (int64_t t = 0; t < bins; ++t) {
      start[t] = run;
      for (int p = 0; p < parts; ++p) {
        const int64_t n = counts[p * bins + t];
        counts[p * bins + t] = run;
        run += n;
      }
    }
    start[bins] = run;
  }

  void prefix_sums() {
    next_chunk_.store(0);  // setup of this item is over; ready for the next one
    prefix(ws_.counts, ws_.bin_start, num_tiles_, threads_);
    prefix(ws_.ccounts, ws_.cbin_start, num_ctiles_, threads_);
    ws_.bins.reserve(size_t(ws_.bin_start[num_tiles_]));
    ws_.cbins.reserve(size_t(ws_.cbin_start[num_ctiles_]));
  }

  // ---- phase 3: fill ------------------------------------------------------------------------
  void fill_phase(int p) {
    int64_t* cur = ws_.counts.data() + p * num_tiles_;
    int64_t* ccur = ws_.ccounts.data() + p * num_ctiles_;
    uint32_t* bins = ws_.bins.data();
    uint32_t* cbins = ws_.cbins.data();
    walk_part(p, [&](bool coarse, int64_t bin, uint32_t entry) {
      if (coarse)
        cbins[ccur[bin]++] = entry;
      else
        bins[cur[bin]++] = entry;
    });
  }

  // ---- phase 4: raster ----------------------------------------------------------------------
  void raster_phase(int64_t b) {
    // On the heap: kTile**2 * 8 bytes is too much for a small thread stack (the caller's thread
    // takes part too).
    std::unique_ptr<TileBuffers> buf_owner(new TileBuffers);
    TileBuffers& buf = *buf_owner;
    const PieceStore store{ws_.chunk_pieces.data()};
    TileJob job;
    job.width = cfg_.width;
    job.height = cfg_.height;
    job.rast = rast_ + b * int64_t(cfg_.height) * cfg_.width * 4;
    job.depth = depth_ + b * int64_t(cfg_.height) * cfg_.width;
    job.pos = pos_ + b * V_ * 4;
    job.faces = faces_;
    job.zero_filled = cfg_.zero_filled;
    job.ax = map_.ax;
    job.bx = map_.bx;
    job.ay = map_.ay;
    job.by = map_.by;
    const uint32_t* bins = ws_.bins.data();
    const uint32_t* cbins = ws_.cbins.data();
    const int64_t* bin_start = ws_.bin_start.data();
    const int64_t* cbin_start = ws_.cbin_start.data();
    for (;;) {
      const int64_t t = next_tile_.fetch_add(1, std::memory_order_relaxed);
      if (t >= num_tiles_ || failed()) break;
      const int tx = int(t % tiles_x_), ty = int(t / tiles_x_);
      const int64_t ct = int64_t(ty / kCoarseFactor) * ctiles_x_ + tx / kCoarseFactor;
      job.x0 = tx * kTile;
      job.y0 = ty * kTile;
      job.fine = bins + bin_start[t];
      job.num_fine = bin_start[t + 1] - bin_start[t];
      job.coarse = cbins + cbin_start[ct];
      job.num_coarse = cbin_start[ct + 1] - cbin_start[ct];
      raster_tile(kernel_, job, store, buf);
    }
  }

  const float* pos_;
  const int64_t batch_, V_;
  const int32_t* faces_;
  const int64_t F_;
  const RasterConfig cfg_;
  float* rast_;
  float* depth_;
  int requested_;
  int threads_ = 1;  // threads that really run; set before the gate opens
  Workspace& ws_;
  Barrier barrier_;

  ScreenMap map_;
  TileKernel kernel_;
  int tiles_x_, tiles_y_, ctiles_x_;
  int64_t num_tiles_, num_ctiles_, num_chunks_;

  std::atomic<int64_t> next_chunk_{0}, next_tile_{0};
  std::atomic<bool> failed_{false}, bad_face_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace

const char* rasterize_cpu_auto_kernel() { return raster::cpu_has_avx2() ? "avx2" : "scalar"; }

void rasterize_cpu_release_cache() {
  std::unique_ptr<Workspace> ws;
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  ws = std::move(g_cache);
}

void rasterize_cpu(const float* pos, int64_t batch, int64_t num_vertices, const int32_t* faces,
                   int64_t num_faces, const RasterConfig& cfg, float* rast, float* depth) {
  if (cfg.height < 1 || cfg.width < 1 || cfg.height > 16384 || cfg.width > 16384)
    throw std::invalid_argument("resolution: each side must be within 1..16384");
  if (batch < 0 || num_vertices < 0 || num_faces < 0) throw std::invalid_argument("rasterize: negative size");
  if (num_faces > (int64_t(1) << 24))
    throw std::invalid_argument("faces: more than 2**24 faces (ids are stored in float32)");
  if (batch == 0) return;
  std::unique_ptr<Workspace> ws = acquire_workspace();
  Rasterizer r(pos, batch, num_vertices, faces, num_faces, cfg, rast, depth, *ws);
  r.run();  // on a throw the workspace is simply freed
  release_workspace(std::move(ws));
}

}  // namespace render_npu
