// A reusable thread barrier for the compiled kernels' phases (rasterize_cpu.cpp, resolve.cpp).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace render_npu {
namespace raster {

// Reusable barrier: spins briefly (phases are often short), then sleeps.
class Barrier {
 public:
  void set_count(int n) { n_ = n; }  // before any thread waits
  void wait() {
    if (n_ == 1) return;
    const uint64_t gen = gen_.load(std::memory_order_acquire);
    std::unique_lock<std::mutex> lock(mutex_);
    if (++count_ == n_) {
      count_ = 0;
      gen_.store(gen + 1, std::memory_order_release);
      lock.unlock();
      cv_.notify_all();
      return;
    }
    lock.unlock();
    for (int i = 0; i < 2000; ++i) {
      if (gen_.load(std::memory_order_acquire) != gen) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    lock.lock();
    cv_.wait(lock, [&] { return gen_.load(std::memory_order_acquire) != gen; });
  }

 private:
  int n_ = 1;
  int count_ = 0;
  std::atomic<uint64_t> gen_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace raster
}  // namespace render_npu
