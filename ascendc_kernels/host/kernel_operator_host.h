// Host emulation of the small subset of the AscendC kernel API that ascendc_kernels/fine_raster_kernel.h
// uses, so that the very same kernel source compiles and runs on a CPU (the CANN toolkit is not
// available where this project is developed and tested).
//
// Semantics follow the public AscendC documentation (CANN asc-devkit, docs/api/SIMD-API/...; the
// file ascendc_kernels/README.md lists each call with its page). Where the documentation states a
// precondition, this emulation CHECKS it and throws std::logic_error instead of silently doing
// something a device would not do:
//   * every Unified Buffer (UB) operand starts 32-byte aligned relative to the UB base;
//   * DataCopy moves a multiple of 32 bytes; GM addresses are aligned to the element size;
//   * Compare counts cover whole 256-byte repeats;
//   * operands of one vector instruction either coincide exactly or do not overlap at all;
//   * no access reaches past a LocalTensor, a TQue/TBuf buffer, or the UB capacity;
//   * And/Or are only used on 16-bit integer data (the types the docs list for A2/310P);
//   * Select only in mode 2 (VSEL_TENSOR_TENSOR_MODE), float data, a mask of >= count bits.
// What is NOT emulated: timing, pipelining and the parallel pipes (every instruction completes
// in program order, so SetFlag/WaitFlag/PipeBarrier are no-ops that only check their pairing),
// the exact rounding of the device's Div (documented as at most 1 ulp off on A2) and whether its
// Axpy rounds once or twice (undocumented), subnormal flushing (host keeps subnormals), hardware
// saturation modes. For the two rounding questions the emulation has a switch,
// HostRounding::kDeviceBounds: Axpy fused (one rounding) and every Div result moved one ulp
// (alternating directions); by default (kIeee) Axpy rounds twice and Div is exact. The kernel
// must agree with the reference under both (tests/test_ascendc_host.py runs both). Uninitialised UB is filled with 0xFF bytes (NaN floats, -1 ints) so that a kernel that
// reads what it never wrote produces visibly wrong output.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#define __aicore__
#define __global__
#define __gm__

using GM_ADDR = uint8_t*;

enum pipe_t { PIPE_S = 0, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_ALL };

namespace AscendC {

// Unified Buffer of one AI Vector core. Atlas A2 (910B) AIV: 192 KiB. Select modes 1 and 2 need
// 8 KiB of UB kept free as scratch on A2/A3/310P (Select docs), so the emulation lets a kernel
// allocate only 184 KiB.
constexpr size_t kHostUbBytes = 192 * 1024;
constexpr size_t kHostUbReservedForSelect = 8 * 1024;
constexpr size_t kBlockBytes = 32;     // DataBlock: UB alignment and DataCopy granule
constexpr size_t kRepeatBytes = 256;   // one vector repeat reads 256 bytes per operand

enum class TPosition : uint8_t { GM, VECIN, VECOUT, VECCALC };
enum class CMPMODE : uint8_t { LT = 0, GT, EQ, LE, GE, NE };
enum class SELMODE : uint8_t { VSEL_CMPMASK_SPR = 0, VSEL_TENSOR_SCALAR_MODE, VSEL_TENSOR_TENSOR_MODE };
enum class HardEvent : uint8_t { MTE2_S, S_MTE2, MTE2_V, V_MTE2, V_MTE3, MTE3_V, S_V, V_S, MTE3_S, S_MTE3 };
using event_t = int32_t;

[[noreturn]] inline void HostFail(const std::string& what) {
  throw std::logic_error("AscendC host emulation: " + what);
}

// Statistics of one emulated launch (what the kernel issued), for tests and the README.
struct HostStats {
  uint64_t vector_instructions = 0;  // calls of a vector API (each one hardware instruction
                                     // with repeatTimes = ceil(bytes / 256))
  uint64_t vector_repeats = 0;       // sum of ceil(count * sizeof(T) / 256)
  uint64_t vector_elements = 0;      // sum of counts
  uint64_t dma_copies = 0;           // DataCopy calls
  uint64_t dma_bytes = 0;
  uint64_t scalar_gm_reads = 0;      // GlobalTensor::GetValue
  uint64_t ub_bytes_allocated = 0;   // peak over cores
  void add(const HostStats& o) {
    vector_instructions += o.vector_instructions;
    vector_repeats += o.vector_repeats;
    vector_elements += o.vector_elements;
    dma_copies += o.dma_copies;
    dma_bytes += o.dma_bytes;
    scalar_gm_reads += o.scalar_gm_reads;
    if (o.ub_bytes_allocated > ub_bytes_allocated) ub_bytes_allocated = o.ub_bytes_allocated;
  }
};

class TPipe;

// State of the emulated core that is running (one at a time, per host thread).
enum class HostRounding { kIeee = 0, kDeviceBounds = 1 };

struct HostCore {
  HostRounding rounding = HostRounding::kIeee;
  int64_t block_idx = 0;
  int64_t block_num = 1;
  std::vector<uint8_t> storage;
  uint8_t* ub = nullptr;  // 32-byte aligned base
  size_t ub_used = 0;
  HostStats stats;
  TPipe* pipe = nullptr;
  int open_flags = 0;  // SetFlag without WaitFlag yet
  HostCore(int64_t idx, int64_t num) : block_idx(idx), block_num(num), storage(kHostUbBytes + 64, 0xFF) {
    uintptr_t p = reinterpret_cast<uintptr_t>(storage.data());
    ub = storage.data() + ((64 - p % 64) % 64);
  }
};

inline HostCore*& CurrentCore() {
  static thread_local HostCore* core = nullptr;
  return core;
}
inline HostCore& Core() {
  HostCore* c = CurrentCore();
  if (c == nullptr) HostFail("kernel code ran outside an emulated launch");
  return *c;
}

// RAII: runs kernel code as core `idx` of `num`.
class HostCoreScope {
 public:
  HostCoreScope(int64_t idx, int64_t num, HostRounding rounding = HostRounding::kIeee)
      : core_(idx, num), prev_(CurrentCore()) {
    core_.rounding = rounding;
    CurrentCore() = &core_;
  }
  ~HostCoreScope() { CurrentCore() = prev_; }
  const HostStats& stats() const { return core_.stats; }
  int open_flags() const { return core_.open_flags; }
  HostCoreScope(const HostCoreScope&) = delete;
  HostCoreScope& operator=(const HostCoreScope&) = delete;

 private:
  HostCore core_;
  HostCore* prev_;
};

inline int64_t GetBlockIdx() { return Core().block_idx; }
inline int64_t GetBlockNum() { return Core().block_num; }

// ------------------------------------------------------------------------------ tensors

template <typename T>
class GlobalTensor {
 public:
  using PrimType = T;
  GlobalTensor() = default;
  void SetGlobalBuffer(__gm__ T* buffer, uint64_t bufferSize) {
    addr_ = buffer;
    size_ = bufferSize;
  }
  void SetGlobalBuffer(__gm__ T* buffer) {
    addr_ = buffer;
    size_ = 0;  // unknown: not bounds-checked (GetSize() returns 0, as documented)
  }
  T GetValue(uint64_t offset) const {
    Check(offset, 1);
    ++Core().stats.scalar_gm_reads;
    return addr_[offset];
  }
  void SetValue(uint64_t offset, T value) {
    Check(offset, 1);
    addr_[offset] = value;
  }
  GlobalTensor operator[](uint64_t offset) const {
    GlobalTensor t;
    t.addr_ = addr_ + offset;
    t.size_ = size_ == 0 ? 0 : (offset <= size_ ? size_ - offset : 0);
    if (size_ != 0 && offset > size_) HostFail("GlobalTensor offset past the end of its buffer");
    return t;
  }
  T* GetPhyAddr() const { return addr_; }
  uint64_t GetSize() const { return size_; }
  void Check(uint64_t offset, uint64_t count) const {
    if (addr_ == nullptr) HostFail("GlobalTensor used before SetGlobalBuffer");
    if (size_ != 0 && offset + count > size_) HostFail("GM access past the end of a GlobalTensor");
  }

 private:
  T* addr_ = nullptr;
  uint64_t size_ = 0;
};

template <typename T>
class LocalTensor {
 public:
  using PrimType = T;
  LocalTensor() = default;
  LocalTensor(T* addr, uint32_t size) : addr_(addr), size_(size) {}
  LocalTensor operator[](uint32_t offset) const {
    if (offset > size_) HostFail("LocalTensor offset past its end");
    return LocalTensor(addr_ + offset, size_ - offset);
  }
  T GetValue(uint32_t i) const {
    if (i >= size_) HostFail("LocalTensor::GetValue out of range");
    return addr_[i];
  }
  void SetValue(uint32_t i, T v) const {
    if (i >= size_) HostFail("LocalTensor::SetValue out of range");
    addr_[i] = v;
  }
  template <typename U>
  LocalTensor<U> ReinterpretCast() const {
    return LocalTensor<U>(reinterpret_cast<U*>(addr_), static_cast<uint32_t>(size_ * sizeof(T) / sizeof(U)));
  }
  uint32_t GetSize() const { return size_; }
  T* GetPhyAddr() const { return addr_; }
  // Byte offset from the UB base (host emulation only).
  size_t UbOffset() const {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(addr_);
    const HostCore& c = Core();
    if (addr_ == nullptr || p < c.ub || p >= c.ub + kHostUbBytes) HostFail("LocalTensor outside the UB");
    return static_cast<size_t>(p - c.ub);
  }

 private:
  T* addr_ = nullptr;
  uint32_t size_ = 0;
};

// ------------------------------------------------------------------------------ pipe, queues, buffers

class TPipe {
 public:
  TPipe() { Core().pipe = this; }
  ~TPipe() {
    HostCore* c = CurrentCore();
    if (c != nullptr && c->pipe == this) c->pipe = nullptr;
  }
  template <class Q>
  bool InitBuffer(Q& que, uint8_t num, uint32_t len) {
    if (num < 1 || num > Q::kMaxDepth) HostFail("TQue InitBuffer: bad buffer count");
    que.Init(Allocate(size_t(num) * Round32(len)), num, Round32(len));
    return true;
  }
  template <class B>
  bool InitBuffer(B& buf, uint32_t len) {
    buf.Init(Allocate(Round32(len)), Round32(len));
    return true;
  }
  event_t FetchEventID(HardEvent) { return 0; }
  event_t AllocEventID() { return 0; }

 private:
  static uint32_t Round32(uint32_t len) { return (len + 31u) / 32u * 32u; }
  static uint8_t* Allocate(size_t bytes) {
    HostCore& c = Core();
    if (c.ub_used + bytes > kHostUbBytes - kHostUbReservedForSelect)
      HostFail("Unified Buffer exhausted (" + std::to_string(c.ub_used + bytes) + " bytes requested, " +
               std::to_string(kHostUbBytes - kHostUbReservedForSelect) + " usable)");
    uint8_t* p = c.ub + c.ub_used;
    c.ub_used += bytes;
    if (c.ub_used > c.stats.ub_bytes_allocated) c.stats.ub_bytes_allocated = c.ub_used;
    return p;
  }
};

inline TPipe* GetTPipePtr() {
  TPipe* p = Core().pipe;
  if (p == nullptr) HostFail("GetTPipePtr without a TPipe");
  return p;
}

template <TPosition pos, int32_t depth>
class TQue {
 public:
  static constexpr int kMaxDepth = 8;
  void Init(uint8_t* base, int num, uint32_t len) {
    base_ = base;
    num_ = num;
    len_ = len;
    for (int i = 0; i < kMaxDepth; ++i) state_[i] = kFree;
  }
  template <typename T>
  LocalTensor<T> AllocTensor() {
    for (int i = 0; i < num_; ++i) {
      if (state_[i] == kFree) {
        state_[i] = kAllocated;
        return LocalTensor<T>(reinterpret_cast<T*>(base_ + size_t(i) * len_), len_ / sizeof(T));
      }
    }
    HostFail("TQue::AllocTensor with no free buffer (would block forever on the device)");
  }
  template <typename T>
  void EnQue(const LocalTensor<T>& t) {
    const int i = Slot(t);
    if (state_[i] != kAllocated) HostFail("TQue::EnQue of a buffer that is not allocated");
    if (count_ >= depth) HostFail("TQue::EnQue past the queue depth");
    state_[i] = kQueued;
    fifo_[(head_ + count_) % kMaxDepth] = i;
    ++count_;
  }
  template <typename T>
  LocalTensor<T> DeQue() {
    if (count_ == 0) HostFail("TQue::DeQue on an empty queue (would block forever on the device)");
    const int i = fifo_[head_];
    head_ = (head_ + 1) % kMaxDepth;
    --count_;
    state_[i] = kAllocated;
    return LocalTensor<T>(reinterpret_cast<T*>(base_ + size_t(i) * len_), len_ / sizeof(T));
  }
  template <typename T>
  void FreeTensor(const LocalTensor<T>& t) {
    const int i = Slot(t);
    if (state_[i] != kAllocated) HostFail("TQue::FreeTensor of a buffer that is not allocated");
    state_[i] = kFree;
  }

 private:
  enum State { kFree, kAllocated, kQueued };
  template <typename T>
  int Slot(const LocalTensor<T>& t) const {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(t.GetPhyAddr());
    if (p < base_ || p >= base_ + size_t(num_) * len_ || (p - base_) % len_ != 0)
      HostFail("tensor does not belong to this TQue");
    return static_cast<int>((p - base_) / len_);
  }
  uint8_t* base_ = nullptr;
  int num_ = 0;
  uint32_t len_ = 0;
  State state_[kMaxDepth] = {};
  int fifo_[kMaxDepth] = {};
  int head_ = 0, count_ = 0;
};

template <TPosition pos>
class TBuf {
 public:
  void Init(uint8_t* base, uint32_t len) {
    base_ = base;
    len_ = len;
  }
  template <typename T>
  LocalTensor<T> Get() const {
    if (base_ == nullptr) HostFail("TBuf::Get before InitBuffer");
    return LocalTensor<T>(reinterpret_cast<T*>(base_), len_ / sizeof(T));
  }
  template <typename T>
  LocalTensor<T> Get(uint32_t len) const {
    if (base_ == nullptr) HostFail("TBuf::Get before InitBuffer");
    if (len * sizeof(T) > len_) HostFail("TBuf::Get(len) larger than the buffer");
    return LocalTensor<T>(reinterpret_cast<T*>(base_), len);
  }

 private:
  uint8_t* base_ = nullptr;
  uint32_t len_ = 0;
};

// ------------------------------------------------------------------------------ synchronisation
// Every emulated instruction completes before the next one starts, so these only check pairing.

template <HardEvent event>
inline void SetFlag(int32_t eventID) {
  if (eventID < 0 || eventID > 7) HostFail("SetFlag: event id out of range 0..7");
  ++Core().open_flags;
}
template <HardEvent event>
inline void WaitFlag(int32_t eventID) {
  if (eventID < 0 || eventID > 7) HostFail("WaitFlag: event id out of range 0..7");
  if (--Core().open_flags < 0) HostFail("WaitFlag without a matching SetFlag");
}
template <pipe_t pipe>
inline void PipeBarrier() {}

// ------------------------------------------------------------------------------ operand checks

namespace host_detail {

template <typename T>
inline void CheckUb(const LocalTensor<T>& t, uint64_t elems, const char* api) {
  const size_t off = t.UbOffset();
  if (off % kBlockBytes != 0) HostFail(std::string(api) + ": UB operand not 32-byte aligned");
  if (elems > t.GetSize()) HostFail(std::string(api) + ": count exceeds the LocalTensor");
  if (off + elems * sizeof(T) > kHostUbBytes) HostFail(std::string(api) + ": operand past the UB end");
}

// Operands of one instruction: identical start (in-place) or disjoint (docs: address overlap).
template <typename A, typename B>
inline void CheckOverlap(const LocalTensor<A>& a, uint64_t na, const LocalTensor<B>& b, uint64_t nb,
                         const char* api) {
  const uint8_t* pa = reinterpret_cast<const uint8_t*>(a.GetPhyAddr());
  const uint8_t* pb = reinterpret_cast<const uint8_t*>(b.GetPhyAddr());
  if (pa == pb && na * sizeof(A) == nb * sizeof(B)) return;
  if (pa + na * sizeof(A) <= pb || pb + nb * sizeof(B) <= pa) return;
  HostFail(std::string(api) + ": operands partially overlap");
}

inline void Count(uint64_t count, size_t elem_bytes) {
  HostStats& s = Core().stats;
  ++s.vector_instructions;
  s.vector_repeats += (count * elem_bytes + kRepeatBytes - 1) / kRepeatBytes;
  s.vector_elements += count;
}

template <typename T>
inline void CheckCount(int64_t count, const char* api) {
  if (count < 0) HostFail(std::string(api) + ": negative count");
}

template <typename T, typename F>
inline void Binary(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, int64_t count,
                   const char* api, F f) {
  CheckCount<T>(count, api);
  CheckUb(dst, count, api);
  CheckUb(a, count, api);
  CheckUb(b, count, api);
  CheckOverlap(dst, count, a, count, api);
  CheckOverlap(dst, count, b, count, api);
  T* d = dst.GetPhyAddr();
  const T* x = a.GetPhyAddr();
  const T* y = b.GetPhyAddr();
  for (int64_t i = 0; i < count; ++i) d[i] = f(x[i], y[i]);
  Count(count, sizeof(T));
}

template <typename T, typename F>
inline void Unary(const LocalTensor<T>& dst, const LocalTensor<T>& a, int64_t count, const char* api, F f) {
  CheckCount<T>(count, api);
  CheckUb(dst, count, api);
  CheckUb(a, count, api);
  CheckOverlap(dst, count, a, count, api);
  T* d = dst.GetPhyAddr();
  const T* x = a.GetPhyAddr();
  for (int64_t i = 0; i < count; ++i) d[i] = f(x[i]);
  Count(count, sizeof(T));
}

inline bool Cmp(float x, float y, CMPMODE m) {
  switch (m) {
    case CMPMODE::LT: return x < y;
    case CMPMODE::GT: return x > y;
    case CMPMODE::EQ: return x == y;
    case CMPMODE::LE: return x <= y;
    case CMPMODE::GE: return x >= y;
    case CMPMODE::NE: return x != y;
  }
  return false;
}

template <typename T>
inline void CheckFloat(const char* api) {
  static_assert(std::is_same<T, float>::value, "this emulation implements the float variant only");
  (void)api;
}

}  // namespace host_detail

// ------------------------------------------------------------------------------ data movement

// GM -> UB (Memory data movement: "GM与UB连续数据搬运(DataCopy)"): count * sizeof(T) must be a
// multiple of 32 bytes (the device rounds down; here it is an error), UB address 32-byte aligned,
// GM address aligned to sizeof(T).
template <typename T>
inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const uint32_t count) {
  if ((uint64_t(count) * sizeof(T)) % kBlockBytes != 0) HostFail("DataCopy: count * sizeof(T) not a multiple of 32");
  host_detail::CheckUb(dst, count, "DataCopy(GM->UB)");
  src.Check(0, count);
  if (reinterpret_cast<uintptr_t>(src.GetPhyAddr()) % sizeof(T) != 0) HostFail("DataCopy: GM address misaligned");
  std::memcpy(dst.GetPhyAddr(), src.GetPhyAddr(), size_t(count) * sizeof(T));
  HostStats& s = Core().stats;
  ++s.dma_copies;
  s.dma_bytes += uint64_t(count) * sizeof(T);
}

// UB -> GM
template <typename T>
inline void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const uint32_t count) {
  if ((uint64_t(count) * sizeof(T)) % kBlockBytes != 0) HostFail("DataCopy: count * sizeof(T) not a multiple of 32");
  host_detail::CheckUb(src, count, "DataCopy(UB->GM)");
  dst.Check(0, count);
  if (reinterpret_cast<uintptr_t>(dst.GetPhyAddr()) % sizeof(T) != 0) HostFail("DataCopy: GM address misaligned");
  std::memcpy(dst.GetPhyAddr(), src.GetPhyAddr(), size_t(count) * sizeof(T));
  HostStats& s = Core().stats;
  ++s.dma_copies;
  s.dma_bytes += uint64_t(count) * sizeof(T);
}

// ------------------------------------------------------------------------------ vector arithmetic

template <typename T>
inline void Duplicate(const LocalTensor<T>& dst, const T& scalarValue, const int32_t& count) {
  host_detail::CheckCount<T>(count, "Duplicate");
  host_detail::CheckUb(dst, count, "Duplicate");
  T* d = dst.GetPhyAddr();
  for (int32_t i = 0; i < count; ++i) d[i] = scalarValue;
  host_detail::Count(count, sizeof(T));
}

template <typename T>
inline void Add(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
                const int32_t& count) {
  host_detail::Binary(dst, src0, src1, count, "Add", [](T x, T y) { return T(x + y); });
}
template <typename T>
inline void Sub(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
                const int32_t& count) {
  host_detail::Binary(dst, src0, src1, count, "Sub", [](T x, T y) { return T(x - y); });
}
template <typename T>
inline void Mul(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
                const int32_t& count) {
  host_detail::Binary(dst, src0, src1, count, "Mul", [](T x, T y) { return T(x * y); });
}
template <typename T>
inline void Div(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
                const int32_t& count) {
  host_detail::CheckFloat<T>("Div");
  if (Core().rounding == HostRounding::kDeviceBounds) {
    uint32_t k = 0;  // nonzero finite results one ulp off, alternating up and down: the documented bound
    host_detail::Binary(dst, src0, src1, count, "Div", [&k](T x, T y) {
      const T q = x / y;
      if (q == T(0) || !std::isfinite(q)) return q;
      return (k++ & 1u) ? std::nextafter(q, T(INFINITY)) : std::nextafter(q, T(-INFINITY));
    });
    return;
  }
  host_detail::Binary(dst, src0, src1, count, "Div", [](T x, T y) { return T(x / y); });
}
template <typename T>
inline void Max(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
                const int32_t& count) {
  host_detail::Binary(dst, src0, src1, count, "Max", [](T x, T y) { return x > y ? x : y; });
}
template <typename T>
inline void Min(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
                const int32_t& count) {
  host_detail::Binary(dst, src0, src1, count, "Min", [](T x, T y) { return x < y ? x : y; });
}
template <typename T>
inline void Adds(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalarValue, const int32_t& count) {
  const T s = scalarValue;
  host_detail::Unary(dst, src, count, "Adds", [s](T x) { return T(x + s); });
}
template <typename T>
inline void Muls(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalarValue, const int32_t& count) {
  const T s = scalarValue;
  host_detail::Unary(dst, src, count, "Muls", [s](T x) { return T(x * s); });
}

// dst_i = scalar * src_i + dst_i (float -> float variant).
template <typename T, typename U>
inline void Axpy(const LocalTensor<T>& dst, const LocalTensor<U>& src, const U& scalarValue, const int32_t& count) {
  static_assert(std::is_same<T, float>::value && std::is_same<U, float>::value, "float Axpy only");
  host_detail::CheckCount<T>(count, "Axpy");
  host_detail::CheckUb(dst, count, "Axpy");
  host_detail::CheckUb(src, count, "Axpy");
  host_detail::CheckOverlap(dst, count, src, count, "Axpy");
  T* d = dst.GetPhyAddr();
  const U* x = src.GetPhyAddr();
  const U s = scalarValue;
  if (Core().rounding == HostRounding::kDeviceBounds) {
    for (int32_t i = 0; i < count; ++i) d[i] = std::fma(s, x[i], d[i]);
  } else {
    for (int32_t i = 0; i < count; ++i) {
      const float p = s * x[i];  // -ffp-contract=off keeps this a separate rounding
      d[i] = p + d[i];
    }
  }
  host_detail::Count(count, sizeof(T));
}

// ------------------------------------------------------------------------------ compare, select, logic

// dst: bit i (byte i / 8, bit i % 8, little-endian) = (src0_i <op> src1_i). count * sizeof(T)
// must be a multiple of 256 bytes.
template <typename T, typename U>
inline void Compare(const LocalTensor<U>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
                    CMPMODE cmpMode, uint32_t count) {
  host_detail::CheckFloat<T>("Compare");
  static_assert(std::is_same<U, uint8_t>::value || std::is_same<U, int8_t>::value, "Compare writes uint8_t/int8_t");
  if ((uint64_t(count) * sizeof(T)) % kRepeatBytes != 0) HostFail("Compare: count not a whole number of 256-byte repeats");
  host_detail::CheckUb(src0, count, "Compare");
  host_detail::CheckUb(src1, count, "Compare");
  host_detail::CheckUb(dst, count / 8, "Compare");
  host_detail::CheckOverlap(dst, count / 8, src0, count, "Compare");
  host_detail::CheckOverlap(dst, count / 8, src1, count, "Compare");
  uint8_t* d = reinterpret_cast<uint8_t*>(dst.GetPhyAddr());
  const T* x = src0.GetPhyAddr();
  const T* y = src1.GetPhyAddr();
  for (uint32_t byte = 0; byte < count / 8; ++byte) {
    uint8_t bits = 0;
    for (uint32_t k = 0; k < 8; ++k) {
      const uint32_t i = byte * 8 + k;
      if (host_detail::Cmp(x[i], y[i], cmpMode)) bits |= uint8_t(1u << k);
    }
    d[byte] = bits;
  }
  host_detail::Count(count, sizeof(T));
}

// Mode 2 (VSEL_TENSOR_TENSOR_MODE): dst_i = bit i of selMask ? src0_i : src1_i, the mask consumed
// continuously across repeats.
template <typename T, typename U>
inline void Select(const LocalTensor<T>& dst, const LocalTensor<U>& selMask, const LocalTensor<T>& src0,
                   const LocalTensor<T>& src1, SELMODE selMode, uint32_t count) {
  host_detail::CheckFloat<T>("Select");
  static_assert(std::is_unsigned<U>::value, "selMask must be uint8_t/uint16_t/uint32_t/uint64_t");
  if (selMode != SELMODE::VSEL_TENSOR_TENSOR_MODE) HostFail("Select: only mode 2 (VSEL_TENSOR_TENSOR_MODE) is emulated");
  const uint64_t mask_elems = (uint64_t(count) + 8 * sizeof(U) - 1) / (8 * sizeof(U));
  host_detail::CheckUb(dst, count, "Select");
  host_detail::CheckUb(src0, count, "Select");
  host_detail::CheckUb(src1, count, "Select");
  host_detail::CheckUb(selMask, mask_elems, "Select");
  host_detail::CheckOverlap(dst, count, src0, count, "Select");
  host_detail::CheckOverlap(dst, count, src1, count, "Select");
  host_detail::CheckOverlap(dst, count, selMask, mask_elems, "Select");
  const uint8_t* m = reinterpret_cast<const uint8_t*>(selMask.GetPhyAddr());
  T* d = dst.GetPhyAddr();
  const T* x = src0.GetPhyAddr();
  const T* y = src1.GetPhyAddr();
  for (uint32_t i = 0; i < count; ++i) d[i] = ((m[i / 8] >> (i % 8)) & 1u) ? x[i] : y[i];
  host_detail::Count(count, sizeof(T));
}

template <typename T>
inline void And(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
                const int32_t& count) {
  static_assert(std::is_same<T, uint16_t>::value || std::is_same<T, int16_t>::value, "And: int16_t/uint16_t only");
  host_detail::Binary(dst, src0, src1, count, "And", [](T x, T y) { return T(x & y); });
}
template <typename T>
inline void Or(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
               const int32_t& count) {
  static_assert(std::is_same<T, uint16_t>::value || std::is_same<T, int16_t>::value, "Or: int16_t/uint16_t only");
  host_detail::Binary(dst, src0, src1, count, "Or", [](T x, T y) { return T(x | y); });
}

}  // namespace AscendC
