// Host build of the AscendC fine-raster kernel (see fine_raster_host.h).
#define RENDER_NPU_ASCENDC_HOST 1
#include "fine_raster_host.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../fine_raster_kernel.h"

namespace render_npu_ascendc {
namespace {

void check_inputs(const int32_t* tiles, int64_t num_tiles, const int32_t* lists, int64_t list_len,
                  int64_t num_pieces) {
  if (num_tiles < 0 || list_len < 0 || num_pieces < 0) throw std::invalid_argument("negative size");
  if (num_tiles > INT32_MAX || list_len > INT32_MAX || num_pieces > (int64_t(1) << 26))
    throw std::invalid_argument("tiles/lists/records: too many entries for the kernel's 32-bit indices");
  if (list_len % 8 != 0) throw std::invalid_argument("lists: length must be a multiple of 8 (32-byte blocks)");
  for (int64_t t = 0; t < num_tiles; ++t) {
    const int32_t* d = tiles + t * kTileDescWords;
    const int32_t x0 = d[kTileX0], y0 = d[kTileY0], start = d[kTileStart], count = d[kTileCount];
    if (x0 < 0 || y0 < 0 || x0 > 16384 || y0 > 16384 || x0 % kTileW != 0 || y0 % kTileH != 0)
      throw std::invalid_argument("tiles: tile origin " + std::to_string(t) + " outside 0..16384 or unaligned");
    if (start < 0 || start % 8 != 0 || count < 0 || int64_t(start) + count > list_len)
      throw std::invalid_argument("tiles: list range of tile " + std::to_string(t) + " invalid");
    for (int32_t j = 0; j < count; ++j) {
      const int32_t p = lists[start + j];
      if (p < 0 || p >= num_pieces)
        throw std::invalid_argument("lists: piece index " + std::to_string(p) + " outside [0, num_pieces)");
    }
  }
}

}  // namespace

HostRunStats fine_raster_host(const float* coords, const int32_t* tiles, int64_t num_tiles, const int32_t* lists,
                              int64_t list_len, const int64_t* rec_i, const float* rec_f, int64_t num_pieces,
                              float* out, int block_dim, int num_threads, bool device_rounding) {
  check_inputs(tiles, num_tiles, lists, list_len, num_pieces);
  if (block_dim < 1 || block_dim > 65535) throw std::invalid_argument("block_dim must be in 1..65535");
  num_threads = std::max(1, std::min(num_threads, block_dim));
  // The kernel signature takes GM_ADDR (uint8_t*); inputs are only read.
  auto gm = [](const void* p) { return reinterpret_cast<GM_ADDR>(const_cast<void*>(p)); };
  AscendC::HostStats total;
  std::mutex mu;
  std::atomic<int> next{0};
  std::exception_ptr error;
  auto worker = [&]() {
    for (;;) {
      const int b = next.fetch_add(1);
      if (b >= block_dim) return;
      try {
        AscendC::HostCoreScope core(b, block_dim, device_rounding ? AscendC::HostRounding::kDeviceBounds
                                                                  : AscendC::HostRounding::kIeee);
        FineRasterEntry(gm(coords), gm(tiles), gm(lists), gm(rec_i), gm(rec_f), gm(out), uint32_t(num_tiles),
                        uint32_t(list_len), uint32_t(num_pieces));
        if (core.open_flags() != 0) AscendC::HostFail("SetFlag without WaitFlag at kernel exit");
        std::lock_guard<std::mutex> lock(mu);
        total.add(core.stats());
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        next.store(block_dim);
        return;
      }
    }
  };
  if (num_threads == 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (int i = 0; i < num_threads; ++i) pool.emplace_back(worker);
    for (auto& th : pool) th.join();
  }
  if (error) std::rethrow_exception(error);
  HostRunStats s;
  s.vector_instructions = total.vector_instructions;
  s.vector_repeats = total.vector_repeats;
  s.vector_elements = total.vector_elements;
  s.dma_copies = total.dma_copies;
  s.dma_bytes = total.dma_bytes;
  s.scalar_gm_reads = total.scalar_gm_reads;
  s.ub_bytes_peak = total.ub_bytes_allocated;
  return s;
}

}  // namespace render_npu_ascendc
