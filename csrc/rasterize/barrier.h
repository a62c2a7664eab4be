// Threads for the compiled kernels' phases (rasterize_cpu.cpp, resolve.cpp): a team runner and
// a reusable barrier.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace render_npu {
namespace raster {

constexpr int kMaxThreads = 256;  // per call, whatever is asked

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

// Runs work(t) for t in [0, threads) (t = 0 on the calling thread), threads <= requested. Thread
// creation can fail: the workers wait at a gate until setup(threads) has been told the number
// that really started, so the caller's work split (and barrier count) adapt to it and results
// need not depend on it. setup must not throw (record a failure instead).
template <class Setup, class Work>
void run_team(int requested, Setup&& setup, Work&& work) {
  std::mutex gate_mutex;
  std::condition_variable gate_cv;
  bool gate_open = false;
  std::vector<std::thread> workers;
  try {
    workers.reserve(size_t(requested > 1 ? requested - 1 : 0));
    for (int t = 1; t < requested; ++t)
      workers.emplace_back([&, t] {
        {
          std::unique_lock<std::mutex> lock(gate_mutex);
          gate_cv.wait(lock, [&] { return gate_open; });
        }
        work(t);
      });
  } catch (const std::system_error&) {
  } catch (const std::bad_alloc&) {
  }
  {
    std::lock_guard<std::mutex> lock(gate_mutex);
    setup(int(workers.size()) + 1);
    gate_open = true;
  }
  gate_cv.notify_all();
  work(0);
  for (auto& w : workers) w.join();
}

}  // namespace raster
}  // namespace render_npu
