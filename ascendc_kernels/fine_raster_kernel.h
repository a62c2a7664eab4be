// AscendC fine-raster kernel: the per-tile rasterization step of render_npu's tile pipeline.
//
// One AI Vector core takes tiles blockIdx, blockIdx + blockNum, ... For each 16 x 16 tile it reads
// the tile's list of triangle pieces (clipped, snapped triangles set up on the host/torch side),
// and for each piece evaluates the three edge functions, the depth plane and the perspective-
// correct barycentrics on the whole tile with vector instructions (256 float32 lanes = 4 repeats
// of 256 bytes per instruction), depth-tests against the tile's depth buffer (nearest wins, equal
// depth: lowest triangle id wins) and selects the winners into the tile's outputs. No per-pixel
// scalar code: per (tile, piece) the scalar unit does ~60 int64 setup operations.
//
// The same source compiles with CANN for the device (fine_raster_kernel.cpp) and on any host
// against host/kernel_operator_host.h (RENDER_NPU_ASCENDC_HOST, host/fine_raster_host.cpp).
// Input/output format: fine_raster_format.h and README.md. Exactness argument: README.md,
// "Exactness"; in short, edge functions are evaluated as E = M * Eh + El (M = 2**19) where every
// float32 operation is exact whenever |E| is small enough for its sign to be in doubt, so the
// coverage test equals the reference's exact int64 test (including the top-left rule).
#pragma once

#if defined(RENDER_NPU_ASCENDC_HOST)
#include "host/kernel_operator_host.h"
#else
#include "kernel_operator.h"
#endif

#include "fine_raster_format.h"

namespace render_npu_ascendc {

// Float32 constants of one edge for one (tile, piece) pair; see SetupEdge.
struct EdgeConsts {
  float qh;    // M * Qh  (Qh = floor(E0 / M), E0 = edge function at the tile's first pixel)
  float ah;    // M * ah  (ah = floor(a / M), a = dE/dpx)
  float bh;    // M * bh  (bh = floor(b / M), b = dE/dpy)
  float rl;    // E0 mod M, in [0, M)
  float al;    // a mod M
  float bl;    // b mod M
  bool bias1;  // covered iff E >= 1 (not a top-left edge) rather than E >= 0
};

class FineRasterKernel {
 public:
  __aicore__ inline FineRasterKernel() {}

  __aicore__ inline void Init(GM_ADDR coords, GM_ADDR tiles, GM_ADDR lists, GM_ADDR recI, GM_ADDR recF, GM_ADDR out,
                              uint32_t numTiles, uint32_t listLen, uint32_t numPieces) {
    numTiles_ = numTiles;
    listLen_ = listLen;
    numPieces_ = numPieces;
    coordsGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(coords), kCoordsWords);
    tilesGm_.SetGlobalBuffer(reinterpret_cast<__gm__ int32_t*>(tiles), uint64_t(numTiles) * kTileDescWords);
    listsGm_.SetGlobalBuffer(reinterpret_cast<__gm__ int32_t*>(lists), listLen);
    recIGm_.SetGlobalBuffer(reinterpret_cast<__gm__ int64_t*>(recI), uint64_t(numPieces) * kRecIWords);
    recFGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(recF), uint64_t(numPieces) * kRecFWords);
    outGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(out), uint64_t(numTiles) * kOutPerTile);
    // Unified Buffer budget (bytes): out 2 x 5120 (double-buffered, so the copy-out of one tile
    // overlaps the next tile's work) + const 4096 + work 10240 + masks 6 x 32 + records
    // 64 x (96 + 64) = 10240; total 35008 of 192 KiB (A2 AIV; 8 KiB kept free for Select).
    pipe_.InitBuffer(outQue_, 2, kOutPerTile * sizeof(float));
    pipe_.InitBuffer(constBuf_, kConstPlanes * kTilePixels * sizeof(float));
    pipe_.InitBuffer(workBuf_, kWorkPlanes * kTilePixels * sizeof(float));
    pipe_.InitBuffer(maskBuf_, kMaskCount * kMaskBytes);
    pipe_.InitBuffer(recIBuf_, kChunk * kRecIWords * sizeof(int64_t));
    pipe_.InitBuffer(recFBuf_, kChunk * kRecFWords * sizeof(float));
  }

  __aicore__ inline void Process() {
    AscendC::LocalTensor<float> cst = constBuf_.Get<float>();
    lx_ = cst[0];
    ly_ = cst[kTilePixels];
    zero_ = cst[2 * kTilePixels];
    one_ = cst[3 * kTilePixels];
    AscendC::DataCopy(cst, coordsGm_, kCoordsWords);  // lx, ly
    AscendC::Duplicate(zero_, 0.0f, kTilePixels);
    AscendC::Duplicate(one_, 1.0f, kTilePixels);
    AscendC::event_t ev = AscendC::GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE2_V);
    AscendC::SetFlag<AscendC::HardEvent::MTE2_V>(ev);
    AscendC::WaitFlag<AscendC::HardEvent::MTE2_V>(ev);

    AscendC::LocalTensor<float> work = workBuf_.Get<float>();
    for (int32_t k = 0; k < 3; ++k) e_[k] = work[k * kTilePixels];
    t_ = work[3 * kTilePixels];
    d_ = work[4 * kTilePixels];
    for (int32_t k = 0; k < 3; ++k) u_[k] = work[(5 + k) * kTilePixels];
    tot_ = work[8 * kTilePixels];
    idv_ = work[9 * kTilePixels];
    AscendC::LocalTensor<uint8_t> masks = maskBuf_.Get<uint8_t>();
    for (int32_t k = 0; k < kMaskCount; ++k) m_[k] = masks[k * kMaskBytes];

    const uint32_t first = static_cast<uint32_t>(AscendC::GetBlockIdx());
    const uint32_t step = static_cast<uint32_t>(AscendC::GetBlockNum());
    for (uint32_t t = first; t < numTiles_; t += step) ProcessTile(t);
  }

 private:
  static constexpr int32_t kConstPlanes = 4;  // lx, ly, 0, 1
  static constexpr int32_t kWorkPlanes = 10;  // e0..e2, t, d, u0..u2, tot, idv
  static constexpr int32_t kMaskCount = 6;
  static constexpr int32_t kMaskBytes = 32;   // 256 bits, one per pixel (32-byte aligned)
  static constexpr int32_t kMaskHalfs = kMaskBytes / 2;  // the same mask as uint16 (And/Or)
  static constexpr float kFar = 3.0e38f;      // depth of an empty pixel while rasterizing
  enum Mask { kIn = 0, kM1, kM2, kLt, kEq, kId };

  __aicore__ inline void ProcessTile(uint32_t t) {
    const uint64_t base = uint64_t(t) * kTileDescWords;
    const int32_t px0 = tilesGm_.GetValue(base + kTileX0);
    const int32_t py0 = tilesGm_.GetValue(base + kTileY0);
    const int32_t start = tilesGm_.GetValue(base + kTileStart);
    int32_t count = tilesGm_.GetValue(base + kTileCount);
    // Malformed descriptors (the packer never writes them) draw nothing rather than read out of bounds.
    if (start < 0 || count < 0 || uint64_t(start) + uint64_t(count) > listLen_) count = 0;

    AscendC::LocalTensor<float> acc = outQue_.AllocTensor<float>();
    AscendC::LocalTensor<float> zid = acc[kPlaneId * kTilePixels];
    AscendC::LocalTensor<float> z = acc[kPlaneDepth * kTilePixels];
    AscendC::Duplicate(acc, 0.0f, kOutPerTile);  // b0, b1, b2, id + 1 = 0
    AscendC::Duplicate(z, kFar, kTilePixels);

    AscendC::LocalTensor<int64_t> recI = recIBuf_.Get<int64_t>();
    AscendC::LocalTensor<float> recF = recFBuf_.Get<float>();
    for (int32_t c0 = 0; c0 < count; c0 += kChunk) {
      const int32_t n = (count - c0 < kChunk) ? (count - c0) : kChunk;
      // The scalar reads of the previous chunk's records are done before the DMA overwrites them.
      AscendC::event_t evS = AscendC::GetTPipePtr()->FetchEventID(AscendC::HardEvent::S_MTE2);
      AscendC::SetFlag<AscendC::HardEvent::S_MTE2>(evS);
      AscendC::WaitFlag<AscendC::HardEvent::S_MTE2>(evS);
      int32_t m = 0;  // records gathered (out-of-range indices are skipped)
      for (int32_t j = 0; j < n; ++j) {
        const int32_t piece = listsGm_.GetValue(uint64_t(start) + c0 + j);
        if (piece < 0 || uint32_t(piece) >= numPieces_) continue;
        AscendC::DataCopy(recI[m * kRecIWords], recIGm_[uint64_t(piece) * kRecIWords], kRecIWords);
        AscendC::DataCopy(recF[m * kRecFWords], recFGm_[uint64_t(piece) * kRecFWords], kRecFWords);
        ++m;
      }
      AscendC::event_t evM = AscendC::GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE2_S);
      AscendC::SetFlag<AscendC::HardEvent::MTE2_S>(evM);
      AscendC::WaitFlag<AscendC::HardEvent::MTE2_S>(evM);
      for (int32_t j = 0; j < m; ++j) RasterPiece(recI, recF, j, px0, py0, acc);
    }

    // Barycentrics into [0, 1]: Div may be 1 ulp off on the device (u/u = 1 + ulp). Empty pixels
    // stay 0. Then empty pixels get depth 0 (the contract's background), covered ones keep theirs.
    for (int32_t k = 0; k < 3; ++k) {
      AscendC::LocalTensor<float> bk = acc[(kPlaneB0 + k) * kTilePixels];
      AscendC::Max(bk, bk, zero_, kTilePixels);
      AscendC::Min(bk, bk, one_, kTilePixels);
    }
    AscendC::Compare(m_[kIn], zid, zero_, AscendC::CMPMODE::GT, kTilePixels);
    AscendC::Select(z, m_[kIn], z, zero_, AscendC::SELMODE::VSEL_TENSOR_TENSOR_MODE, kTilePixels);

    outQue_.EnQue(acc);
    acc = outQue_.DeQue<float>();
    AscendC::DataCopy(outGm_[uint64_t(t) * kOutPerTile], acc, kOutPerTile);
    outQue_.FreeTensor(acc);
  }

  // Scalar setup of edge E = A px + B py + C (covered iff E >= bias) at the tile whose first
  // pixel is (px0, py0). Returns false when the whole tile lies outside the edge (the piece misses
  // the tile) or the record is outside the valid bounds.
  __aicore__ inline bool SetupEdge(int64_t a, int64_t b, int64_t c, int64_t bias, int32_t px0, int32_t py0,
                                   EdgeConsts& ec) {
    if (a > kMaxAB || a < -kMaxAB || b > kMaxAB || b < -kMaxAB || c > kMaxC || c < -kMaxC) return false;
    if (bias != 0 && bias != 1) return false;
    const int64_t e0 = a * px0 + b * py0 + c;  // |e0| < 2**61 + 2**53: no overflow
    const int64_t emax = e0 + (a > 0 ? a : 0) * (kTileW - 1) + (b > 0 ? b : 0) * (kTileH - 1);
    if (emax < bias) return false;
    // Split into multiples of M and remainders in [0, M): v = M * hi + lo (exact).
    const int64_t M = int64_t(1) << kSplitShift;
    const int64_t rl = e0 & (M - 1), al = a & (M - 1), bl = b & (M - 1);
    const int64_t qh = (e0 - rl) / M, ah = (a - al) / M, bh = (b - bl) / M;
    const float fm = static_cast<float>(M);
    ec.qh = static_cast<float>(qh) * fm;  // rounds only when |qh| > 2**24 (far from the edge)
    ec.ah = static_cast<float>(ah) * fm;  // |ah|, |bh| <= 2**19: exact
    ec.bh = static_cast<float>(bh) * fm;
    ec.rl = static_cast<float>(rl);       // < 2**19: exact
    ec.al = static_cast<float>(al);
    ec.bl = static_cast<float>(bl);
    ec.bias1 = bias != 0;
    return true;
  }

  // e = E over the tile: (M qh + M ah lx + M bh ly) + (rl + al lx + bl ly). The second sum is an
  // integer < 31 M < 2**24 (exact); the first is exact whenever |E| is small (README).
  __aicore__ inline void EdgeFunction(const AscendC::LocalTensor<float>& e, const EdgeConsts& ec) {
    AscendC::Duplicate(t_, ec.qh, kTilePixels);
    AscendC::Axpy(t_, lx_, ec.ah, kTilePixels);
    AscendC::Axpy(t_, ly_, ec.bh, kTilePixels);
    AscendC::Duplicate(e, ec.rl, kTilePixels);
    AscendC::Axpy(e, lx_, ec.al, kTilePixels);
    AscendC::Axpy(e, ly_, ec.bl, kTilePixels);
    AscendC::Add(e, e, t_, kTilePixels);
  }

  __aicore__ inline void RasterPiece(const AscendC::LocalTensor<int64_t>& recI, const AscendC::LocalTensor<float>& recF,
                                     int32_t j, int32_t px0, int32_t py0, const AscendC::LocalTensor<float>& acc) {
    const int32_t ri = j * kRecIWords;
    const int32_t rf = j * kRecFWords;
    EdgeConsts ec[3];
    for (int32_t i = 0; i < 3; ++i) {
      if (!SetupEdge(recI.GetValue(ri + kRecA + i), recI.GetValue(ri + kRecB + i), recI.GetValue(ri + kRecC + i),
                     recI.GetValue(ri + kRecBias + i), px0, py0, ec[i]))
        return;
    }
    const float id = recF.GetValue(rf + kRecId);
    const float invArea = recF.GetValue(rf + kRecInvArea);
    // One-term barycentrics when every parent vertex k has a single nonzero c_ik (unclipped pieces):
    // u_k = l_{i_k} c_{i_k k} instead of three multiply-adds.
    bool oneTerm = true;
    int32_t termOf[3] = {0, 0, 0};
    for (int32_t k = 0; k < 3; ++k) {
      int32_t nonzero = 0;
      for (int32_t i = 0; i < 3; ++i) {
        if (recF.GetValue(rf + kRecCoef + 3 * i + k) != 0.0f) {
          termOf[k] = i;
          ++nonzero;
        }
      }
      oneTerm = oneTerm && nonzero == 1;
    }

    // Coverage: E_i >= bias_i for all three edges, as a 256-bit mask.
    for (int32_t i = 0; i < 3; ++i) {
      EdgeFunction(e_[i], ec[i]);
      AscendC::Compare(m_[kIn + i], e_[i], ec[i].bias1 ? one_ : zero_, AscendC::CMPMODE::GE, kTilePixels);
    }
    AscendC::LocalTensor<uint16_t> in16 = m_[kIn].ReinterpretCast<uint16_t>();
    AscendC::And(in16, in16, m_[kM1].ReinterpretCast<uint16_t>(), kMaskHalfs);
    AscendC::And(in16, in16, m_[kM2].ReinterpretCast<uint16_t>(), kMaskHalfs);

    // Normalised edge functions l_i = E_i / area (the linear barycentrics), depth sum q_i l_i.
    for (int32_t i = 0; i < 3; ++i) AscendC::Muls(e_[i], e_[i], invArea, kTilePixels);
    AscendC::Muls(d_, e_[0], recF.GetValue(rf + kRecQ + 0), kTilePixels);
    AscendC::Axpy(d_, e_[1], recF.GetValue(rf + kRecQ + 1), kTilePixels);
    AscendC::Axpy(d_, e_[2], recF.GetValue(rf + kRecQ + 2), kTilePixels);

    // Visibility: d < z, or d == z and this id is lower than the stored one.
    AscendC::LocalTensor<float> zid = acc[kPlaneId * kTilePixels];
    AscendC::LocalTensor<float> z = acc[kPlaneDepth * kTilePixels];
    AscendC::Duplicate(idv_, id + 1.0f, kTilePixels);
    AscendC::Compare(m_[kLt], d_, z, AscendC::CMPMODE::LT, kTilePixels);
    AscendC::Compare(m_[kEq], d_, z, AscendC::CMPMODE::EQ, kTilePixels);
    AscendC::Compare(m_[kId], zid, idv_, AscendC::CMPMODE::GT, kTilePixels);
    AscendC::LocalTensor<uint16_t> lt16 = m_[kLt].ReinterpretCast<uint16_t>();
    AscendC::LocalTensor<uint16_t> eq16 = m_[kEq].ReinterpretCast<uint16_t>();
    AscendC::And(eq16, eq16, m_[kId].ReinterpretCast<uint16_t>(), kMaskHalfs);
    AscendC::Or(lt16, lt16, eq16, kMaskHalfs);
    AscendC::And(in16, in16, lt16, kMaskHalfs);  // m_[kIn] = winners

    // Perspective-correct barycentrics: u_k = sum_i l_i c_ik, b_k = u_k / sum_k u_k.
    if (oneTerm) {
      for (int32_t k = 0; k < 3; ++k) {
        const int32_t i = termOf[k];
        AscendC::Muls(u_[k], e_[i], recF.GetValue(rf + kRecCoef + 3 * i + k), kTilePixels);
      }
    } else {
      for (int32_t k = 0; k < 3; ++k) {
        AscendC::Muls(u_[k], e_[0], recF.GetValue(rf + kRecCoef + 0 * 3 + k), kTilePixels);
        AscendC::Axpy(u_[k], e_[1], recF.GetValue(rf + kRecCoef + 1 * 3 + k), kTilePixels);
        AscendC::Axpy(u_[k], e_[2], recF.GetValue(rf + kRecCoef + 2 * 3 + k), kTilePixels);
      }
    }
    AscendC::Add(tot_, u_[0], u_[1], kTilePixels);
    AscendC::Add(tot_, tot_, u_[2], kTilePixels);
    for (int32_t k = 0; k < 3; ++k) AscendC::Div(u_[k], u_[k], tot_, kTilePixels);

    // Write the winners.
    const AscendC::SELMODE mode = AscendC::SELMODE::VSEL_TENSOR_TENSOR_MODE;
    AscendC::Select(z, m_[kIn], d_, z, mode, kTilePixels);
    AscendC::Select(zid, m_[kIn], idv_, zid, mode, kTilePixels);
    for (int32_t k = 0; k < 3; ++k) {
      AscendC::LocalTensor<float> bk = acc[(kPlaneB0 + k) * kTilePixels];
      AscendC::Select(bk, m_[kIn], u_[k], bk, mode, kTilePixels);
    }
  }

  AscendC::TPipe pipe_;
  AscendC::TQue<AscendC::TPosition::VECOUT, 2> outQue_;
  AscendC::TBuf<AscendC::TPosition::VECCALC> constBuf_, workBuf_, maskBuf_, recIBuf_, recFBuf_;
  AscendC::GlobalTensor<float> coordsGm_, recFGm_, outGm_;
  AscendC::GlobalTensor<int32_t> tilesGm_, listsGm_;
  AscendC::GlobalTensor<int64_t> recIGm_;
  AscendC::LocalTensor<float> lx_, ly_, zero_, one_, e_[3], t_, d_, u_[3], tot_, idv_;
  AscendC::LocalTensor<uint8_t> m_[kMaskCount];
  uint32_t numTiles_ = 0;
  uint32_t listLen_ = 0;
  uint32_t numPieces_ = 0;
};

// The kernel body; fine_raster_kernel.cpp wraps it as the __global__ entry point
// render_npu_fine_raster, host/fine_raster_host.cpp calls it once per emulated core.
__aicore__ inline void FineRasterEntry(GM_ADDR coords, GM_ADDR tiles, GM_ADDR lists, GM_ADDR recI, GM_ADDR recF,
                                       GM_ADDR out, uint32_t numTiles, uint32_t listLen, uint32_t numPieces) {
  FineRasterKernel op;
  op.Init(coords, tiles, lists, recI, recF, out, numTiles, listLen, numPieces);
  op.Process();
}

}  // namespace render_npu_ascendc
