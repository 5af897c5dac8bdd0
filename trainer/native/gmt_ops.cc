// GMT's fused CPU kernels for TensorFlow, loaded into the trainer next to tfjs-node's binding.
//
// Why: on the native CPU backend the matmuls of a training step run near the machine's peak, and what
// is left is elementwise work that TensorFlow only offers as one kernel per operation: GELU is six
// full-size passes forward and six backward, LayerNorm about as many, and the causal softmax a bias
// add, a multi-pass Softmax and two passes in its gradient. Each kernel below reads its inputs once
// and writes its outputs once (docs/native-backend.md, "Fused CPU kernels").
//
// The library is both a TensorFlow op library (the REGISTER_OP/REGISTER_KERNEL_BUILDER static
// initialisers add the ops to the process's registry, which tfjs-node's eager context shares) and an
// N-API module, so the trainer loads it with require() after the binding and calls the ops by name
// through the binding (trainer/src/model/native-ops.ts). scripts/setup-native.ts compiles it against
// the headers of the same pinned TensorFlow wheel.
//
// Determinism: every result depends only on the inputs, never on the thread count or on how the
// work is split. Rows are independent and each row is computed whole by one thread, with its own
// fixed-order reductions (16 independent lanes, then the lanes in order); the column sums of the
// LayerNorm gradient add fixed blocks of 64 rows, then the blocks in order.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <immintrin.h>
#include <node_api.h>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace gmt {
namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
namespace si = tensorflow::shape_inference;

using Arr = Eigen::Map<Eigen::ArrayXf>;
using CArr = Eigen::Map<const Eigen::ArrayXf>;

// GELU, tanh approximation, as x·σ(x·(a + b·x²)) (½(1 + tanh u) = σ(2u)); the same doubles as
// trainer/src/model/gpt2.ts (GELU_A, GELU_B), rounded to float once.
const double kGeluC = std::sqrt(2.0 / M_PI);
const float kGeluA = static_cast<float>(2.0 * kGeluC);
const float kGeluB = static_cast<float>(2.0 * kGeluC * 0.044715);

constexpr int kLanes = 16;
constexpr int64_t kColumnBlock = 64;  // rows per partial column sum (LayerNorm gradient)

// Σ x[0..n) in a fixed order: 16 lanes (vectorised without reassociation), then the lanes in order.
inline float Sum(const float* x, int64_t n) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j];
  for (int j = 0; i < n; ++i, ++j) acc[j] += x[i];
  float s = 0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// Σ x[i]·y[i], same order as Sum.
inline float Dot(const float* x, const float* y, int64_t n) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j] * y[i + j];
  for (int j = 0; i < n; ++i, ++j) acc[j] += x[i] * y[i];
  float s = 0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// Σ (x[i] − m)², same order as Sum.
inline float SumSquaredDeviation(const float* x, float m, int64_t n) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float d = x[i + j] - m;
      acc[j] += d * d;
    }
  for (int j = 0; i < n; ++i, ++j) {
    const float d = x[i] - m;
    acc[j] += d * d;
  }
  float s = 0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// Runs fn(unit) for unit in [0, units) on TensorFlow's intra-op pool; cost: cycles per unit (a hint).
template <typename F>
void ForEach(OpKernelContext* ctx, int64_t units, int64_t cost, F fn) {
  const auto* w = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(w->num_threads, w->workers, units, cost, [&fn](int64_t a, int64_t b) {
    for (int64_t u = a; u < b; ++u) fn(u);
  });
}

// An InvalidArgument status from its parts (absl::StrCat).
template <typename... Args>
absl::Status Invalid(const Args&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

// Each returns false after recording an InvalidArgument status that names the input and its shape.
bool Require(OpKernelContext* ctx, bool ok, const absl::Status& why) {
  if (!ok) ctx->SetStatus(why);
  return ok;
}

bool RequireMatrix(OpKernelContext* ctx, const Tensor& t, const char* what) {
  return Require(ctx, t.dims() == 2, Invalid(what, " must be a matrix [rows, columns], got shape ", t.shape().DebugString()));
}

bool RequireVector(OpKernelContext* ctx, const Tensor& t, int64_t n, const char* what) {
  return Require(ctx, t.dims() == 1 && t.dim_size(0) == n,
                 Invalid(what, " must be a vector [", n, "], got shape ", t.shape().DebugString()));
}

bool RequireSameShape(OpKernelContext* ctx, const Tensor& a, const Tensor& b, const char* what) {
  return Require(ctx, a.shape() == b.shape(),
                 Invalid(what, ": shapes ", a.shape().DebugString(), " and ", b.shape().DebugString(), " differ"));
}

// ---- GmtBiasGelu: y = gelu(u + b), u [N, F], b [F]

class BiasGeluOp : public OpKernel {
 public:
  explicit BiasGeluOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& u = ctx->input(0);
    const Tensor& b = ctx->input(1);
    if (!RequireMatrix(ctx, u, "GmtBiasGelu: u")) return;
    const int64_t n = u.dim_size(0), f = u.dim_size(1);
    if (!RequireVector(ctx, b, f, "GmtBiasGelu: b")) return;
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, u.shape(), &y));
    const float* us = u.flat<float>().data();
    const float* bs = b.flat<float>().data();
    float* ys = y->flat<float>().data();
    const CArr bias(bs, f);
    ForEach(ctx, n, 40 * f, [&](int64_t r) {
      Arr p(ys + r * f, f);
      p = CArr(us + r * f, f) + bias;
      p = p / (1.0f + (-(p * (kGeluA + kGeluB * p.square()))).exp());
    });
  }
};

// ---- GmtBiasGeluGrad: dp = dy · gelu'(u + b) = dy·(σ + p·σ(1−σ)·(a + 3b·p²)), σ = σ(p·(a + b·p²))

class BiasGeluGradOp : public OpKernel {
 public:
  explicit BiasGeluGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& u = ctx->input(1);
    const Tensor& b = ctx->input(2);
    if (!RequireMatrix(ctx, u, "GmtBiasGeluGrad: u") || !RequireSameShape(ctx, dy, u, "GmtBiasGeluGrad: dy and u")) return;
    const int64_t n = u.dim_size(0), f = u.dim_size(1);
    if (!RequireVector(ctx, b, f, "GmtBiasGeluGrad: b")) return;
    Tensor* dp = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, u.shape(), &dp));
    const float* dys = dy.flat<float>().data();
    const float* us = u.flat<float>().data();
    const float* bs = b.flat<float>().data();
    float* out = dp->flat<float>().data();
    const CArr bias(bs, f);
    const auto* w = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(w->num_threads, w->workers, n, 60 * f, [&](int64_t a, int64_t e) {
      Eigen::ArrayXf p(f), s(f);  // per shard: the pre-activation and σ of one row
      for (int64_t r = a; r < e; ++r) {
        p = CArr(us + r * f, f) + bias;
        s = 1.0f / (1.0f + (-(p * (kGeluA + kGeluB * p.square()))).exp());
        Arr(out + r * f, f) = CArr(dys + r * f, f) * (s + p * s * (1.0f - s) * (kGeluA + (3.0f * kGeluB) * p.square()));
      }
    });
  }
};

// ---- GmtLayerNorm: y = (x − mean)·rstd·g + b per row; also mean [N] and rstd [N] for the gradient.
// mean = Σx·(1/C), var = Σ(x − mean)²·(1/C) (biased, as PyTorch), rstd = 1/√(var + ε).

class LayerNormOp : public OpKernel {
 public:
  explicit LayerNormOp(OpKernelConstruction* c) : OpKernel(c) { OP_REQUIRES_OK(c, c->GetAttr("epsilon", &eps_)); }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& g = ctx->input(1);
    const Tensor& b = ctx->input(2);
    if (!RequireMatrix(ctx, x, "GmtLayerNorm: x")) return;
    const int64_t n = x.dim_size(0), c = x.dim_size(1);
    if (!RequireVector(ctx, g, c, "GmtLayerNorm: gamma") || !RequireVector(ctx, b, c, "GmtLayerNorm: beta")) return;
    Tensor *y = nullptr, *mean = nullptr, *rstd = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({n}), &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({n}), &rstd));
    const float* xs = x.flat<float>().data();
    const CArr gamma(g.flat<float>().data(), c), beta(b.flat<float>().data(), c);
    float* ys = y->flat<float>().data();
    float* ms = mean->flat<float>().data();
    float* rs = rstd->flat<float>().data();
    const float invC = 1.0f / static_cast<float>(c), eps = eps_;
    ForEach(ctx, n, 12 * c, [&](int64_t r) {
      const float* xr = xs + r * c;
      const float m = Sum(xr, c) * invC;
      const float rsd = 1.0f / std::sqrt(SumSquaredDeviation(xr, m, c) * invC + eps);
      ms[r] = m;
      rs[r] = rsd;
      Arr(ys + r * c, c) = (CArr(xr, c) - m) * rsd * gamma + beta;
    });
  }

 private:
  float eps_ = 1e-5f;
};

// ---- GmtLayerNormGrad: dx, dgamma, dbeta from dy, x, mean, rstd, gamma.
// xhat = (x − mean)·rstd, dxhat = dy·g; dx = rstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat));
// dgamma = Σ_rows dy·xhat, dbeta = Σ_rows dy (fixed 64-row blocks, then the blocks in order).

class LayerNormGradOp : public OpKernel {
 public:
  explicit LayerNormGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& mean = ctx->input(2);
    const Tensor& rstd = ctx->input(3);
    const Tensor& g = ctx->input(4);
    if (!RequireMatrix(ctx, x, "GmtLayerNormGrad: x") || !RequireSameShape(ctx, dy, x, "GmtLayerNormGrad: dy and x")) return;
    const int64_t n = x.dim_size(0), c = x.dim_size(1);
    if (!RequireVector(ctx, mean, n, "GmtLayerNormGrad: mean") || !RequireVector(ctx, rstd, n, "GmtLayerNormGrad: rstd") ||
        !RequireVector(ctx, g, c, "GmtLayerNormGrad: gamma"))
      return;
    Tensor *dx = nullptr, *dg = nullptr, *db = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({c}), &dg));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({c}), &db));
    const int64_t blocks = (n + kColumnBlock - 1) / kColumnBlock;
    Tensor partial;  // [blocks, 2, C]: Σ dy·xhat and Σ dy over each block's rows
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT, TensorShape({blocks, 2, c}), &partial));
    const float* dys = dy.flat<float>().data();
    const float* xs = x.flat<float>().data();
    const float* ms = mean.flat<float>().data();
    const float* rs = rstd.flat<float>().data();
    const CArr gamma(g.flat<float>().data(), c);
    float* dxs = dx->flat<float>().data();
    float* ps = partial.flat<float>().data();
    const float invC = 1.0f / static_cast<float>(c);
    ForEach(ctx, blocks, 20 * c * kColumnBlock, [&](int64_t blk) {
      Arr pg(ps + blk * 2 * c, c), pb(ps + blk * 2 * c + c, c);
      pg.setZero();
      pb.setZero();
      Eigen::ArrayXf xhat(c), dxhat(c);
      const int64_t end = std::min(n, (blk + 1) * kColumnBlock);
      for (int64_t r = blk * kColumnBlock; r < end; ++r) {
        const CArr dyr(dys + r * c, c);
        xhat = (CArr(xs + r * c, c) - ms[r]) * rs[r];
        dxhat = dyr * gamma;
        const float m1 = Sum(dxhat.data(), c) * invC;
        const float m2 = Dot(dxhat.data(), xhat.data(), c) * invC;
        Arr(dxs + r * c, c) = rs[r] * (dxhat - m1 - xhat * m2);
        pg += dyr * xhat;
        pb += dyr;
      }
    });
    float* dgs = dg->flat<float>().data();
    float* dbs = db->flat<float>().data();
    ForEach(ctx, c, 2 * blocks, [&](int64_t col) {
      float sg = 0, sb = 0;
      for (int64_t blk = 0; blk < blocks; ++blk) {
        sg += ps[blk * 2 * c + col];
        sb += ps[blk * 2 * c + c + col];
      }
      dgs[col] = sg;
      dbs[col] = sb;
    });
  }
};

// ---- GmtCausalSoftmax: p = softmax over the last axis of scores [..., T, T], row i over j ≤ i only
// (p = 0 above the diagonal): the causal bias add and the softmax in one pass per row.

bool RequireSquareLast(OpKernelContext* ctx, const Tensor& t, const char* what) {
  return Require(ctx, t.dims() >= 2 && t.dim_size(t.dims() - 1) == t.dim_size(t.dims() - 2),
                 Invalid(what, " must be [..., T, T], got shape ", t.shape().DebugString()));
}

class CausalSoftmaxOp : public OpKernel {
 public:
  explicit CausalSoftmaxOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& s = ctx->input(0);
    if (!RequireSquareLast(ctx, s, "GmtCausalSoftmax: scores")) return;
    const int64_t t = s.dim_size(s.dims() - 1), rows = s.NumElements() / (t == 0 ? 1 : t);
    Tensor* p = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, s.shape(), &p));
    const float* ss = s.flat<float>().data();
    float* out = p->flat<float>().data();
    ForEach(ctx, rows, 20 * t, [&](int64_t r) {
      const int64_t k = r % t + 1;  // keys 0..i
      const float* sr = ss + r * t;
      float* pr = out + r * t;
      const float m = CArr(sr, k).maxCoeff();
      Arr e(pr, k);
      e = (CArr(sr, k) - m).exp();
      e *= 1.0f / Sum(pr, k);
      std::fill(pr + k, pr + t, 0.0f);
    });
  }
};

// ---- GmtSoftmaxGrad: ds = p·(dp − Σ_j p_j·dp_j) per row of the last axis (any rank ≥ 1).

class SoftmaxGradOp : public OpKernel {
 public:
  explicit SoftmaxGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& p = ctx->input(0);
    const Tensor& dp = ctx->input(1);
    OP_REQUIRES(ctx, p.dims() >= 1, Invalid("GmtSoftmaxGrad: p must have a last axis"));
    if (!RequireSameShape(ctx, p, dp, "GmtSoftmaxGrad: p and dp")) return;
    const int64_t t = p.dim_size(p.dims() - 1), rows = t == 0 ? 0 : p.NumElements() / t;
    Tensor* ds = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, p.shape(), &ds));
    const float* ps = p.flat<float>().data();
    const float* dps = dp.flat<float>().data();
    float* out = ds->flat<float>().data();
    ForEach(ctx, rows, 6 * t, [&](int64_t r) {
      const float* pr = ps + r * t;
      const float* dr = dps + r * t;
      const float d = Dot(pr, dr, t);
      Arr(out + r * t, t) = CArr(pr, t) * (CArr(dr, t) - d);
    });
  }
};

absl::Status SameAsInput0(si::InferenceContext* c) {
  c->set_output(0, c->input(0));
  return absl::OkStatus();
}

REGISTER_OP("GmtBiasGelu").Input("u: float").Input("b: float").Output("y: float").SetShapeFn(SameAsInput0);
REGISTER_OP("GmtBiasGeluGrad").Input("dy: float").Input("u: float").Input("b: float").Output("dp: float").SetShapeFn([](si::InferenceContext* c) {
  c->set_output(0, c->input(1));
  return absl::OkStatus();
});
REGISTER_OP("GmtLayerNorm")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Attr("epsilon: float")
    .Output("y: float")
    .Output("mean: float")
    .Output("rstd: float")
    .SetShapeFn([](si::InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->Vector(c->Dim(c->input(0), 0)));
      c->set_output(2, c->Vector(c->Dim(c->input(0), 0)));
      return absl::OkStatus();
    });
REGISTER_OP("GmtLayerNormGrad")
    .Input("dy: float")
    .Input("x: float")
    .Input("mean: float")
    .Input("rstd: float")
    .Input("gamma: float")
    .Output("dx: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .SetShapeFn([](si::InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->Vector(c->Dim(c->input(1), 1)));
      c->set_output(2, c->Vector(c->Dim(c->input(1), 1)));
      return absl::OkStatus();
    });
REGISTER_OP("GmtCausalSoftmax").Input("scores: float").Output("p: float").SetShapeFn(SameAsInput0);
REGISTER_OP("GmtSoftmaxGrad").Input("p: float").Input("dp: float").Output("ds: float").SetShapeFn(SameAsInput0);

REGISTER_KERNEL_BUILDER(Name("GmtBiasGelu").Device(DEVICE_CPU), BiasGeluOp);
REGISTER_KERNEL_BUILDER(Name("GmtBiasGeluGrad").Device(DEVICE_CPU), BiasGeluGradOp);
REGISTER_KERNEL_BUILDER(Name("GmtLayerNorm").Device(DEVICE_CPU), LayerNormOp);
REGISTER_KERNEL_BUILDER(Name("GmtLayerNormGrad").Device(DEVICE_CPU), LayerNormGradOp);
REGISTER_KERNEL_BUILDER(Name("GmtCausalSoftmax").Device(DEVICE_CPU), CausalSoftmaxOp);
REGISTER_KERNEL_BUILDER(Name("GmtSoftmaxGrad").Device(DEVICE_CPU), SoftmaxGradOp);


// ---- AdamW on the host's flat vectors (N-API functions; trainer/src/optim/optimizer.ts)
//
// The same expression in the same order as the JavaScript loops (fp64 arithmetic, each moment rounded
// to fp32, the parameter rounded to fp32 when stored), compiled without FMA contraction
// (-ffp-contract=off), so every bit equals the JavaScript result (test/unit/optim/native-host.test.ts).
// Entries are independent, so splitting a range among threads changes nothing. The keep rules are
// evaluated without branches (the new values are computed for every entry and selected), which is
// what makes GMT's masked step cost the same as a dense one.

struct Hyper {
  double b1, b2, eps, decay, stepSize, bc2Sqrt;
};

// `on` (all ones) picks a, `off` (its complement) picks b, bit by bit.
inline float Select(float a, float b, uint32_t on, uint32_t off) {
  uint32_t ua, ub;
  std::memcpy(&ua, &a, sizeof ua);
  std::memcpy(&ub, &b, sizeof ub);
  const uint32_t u = (ua & on) | (ub & off);
  float out;
  std::memcpy(&out, &u, sizeof out);
  return out;
}

// keep(i) decides entry i; state index = i + so.
template <typename Keep>
int64_t AdamwRange(float* p, const float* g, float* m, float* v, int64_t lo, int64_t hi, int64_t so, const Hyper& h, Keep keep) {
  const double c1 = 1 - h.b1, c2 = 1 - h.b2;
  int64_t kept = 0;
  for (int64_t i = lo; i < hi; ++i) {
    const int64_t j = i + so;
    const double gi = g[i];
    const float mi = static_cast<float>(h.b1 * static_cast<double>(m[j]) + c1 * gi);
    const float vi = static_cast<float>(h.b2 * static_cast<double>(v[j]) + c2 * gi * gi);
    const float decayed = static_cast<float>(static_cast<double>(p[i]) * h.decay);
    const float pi = static_cast<float>(static_cast<double>(decayed) - (h.stepSize * static_cast<double>(mi)) / (std::sqrt(static_cast<double>(vi)) / h.bc2Sqrt + h.eps));
    // Select by bit masks, not `k ? new : old`: GCC turns the conditional into a branch (which
    // mispredicts on GMT's masks) instead of a vector blend.
    const uint32_t k = keep(i) ? 1u : 0u, on = 0u - k, off = ~on;
    m[j] = Select(mi, m[j], on, off);
    v[j] = Select(vi, v[j], on, off);
    p[i] = Select(pi, p[i], on, off);
    kept += k;
  }
  return kept;
}

// Runs fn(t) for t in [0, n) on n threads (the calling thread takes t = 0).
template <typename F>
void OnThreads(int n, F fn) {
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(fn, t);
  fn(0);
  for (auto& th : pool) th.join();
}

int ThreadsFor(int64_t work, int threads) { return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, work / (1 << 16)))); }

// A work list of ranges [lo, hi) split into up to `threads` contiguous pieces of equal length (at least
// 2^16 entries each); fn(range index, lo, hi) runs on each piece.
template <typename F>
void Split(const std::vector<std::pair<int64_t, int64_t>>& ranges, int threads, F fn) {
  int64_t total = 0;
  for (const auto& r : ranges) total += r.second - r.first;
  const int n = ThreadsFor(total, threads);
  OnThreads(n, [&](int t) {
    const int64_t from = total * t / n, to = total * (t + 1) / n;
    int64_t at = 0;
    for (size_t r = 0; r < ranges.size(); ++r) {
      const int64_t len = ranges[r].second - ranges[r].first;
      const int64_t a = std::max(from, at), b = std::min(to, at + len);
      if (a < b) fn(r, ranges[r].first + (a - at), ranges[r].first + (b - at));
      at += len;
    }
  });
}

// ---- N-API plumbing: arguments are checked, and a bad one throws a TypeError/RangeError naming it.

bool Throw(napi_env env, bool range, const std::string& msg) {
  if (range) napi_throw_range_error(env, nullptr, msg.c_str());
  else napi_throw_type_error(env, nullptr, msg.c_str());
  return false;
}

template <typename T>
bool TypedArg(napi_env env, napi_value v, napi_typedarray_type want, const char* name, T** data, size_t* length) {
  bool is = false;
  napi_typedarray_type type;
  void* ptr = nullptr;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is || napi_get_typedarray_info(env, v, &type, length, &ptr, nullptr, nullptr) != napi_ok || type != want)
    return Throw(env, false, std::string(name) + " must be a " + (want == napi_float32_array  ? "Float32Array"
                                                  : want == napi_uint8_array  ? "Uint8Array"
                                                  : want == napi_uint32_array ? "Uint32Array"
                                                  : want == napi_int32_array  ? "Int32Array"
                                                                              : "Float64Array"));
  *data = static_cast<T*>(ptr);
  return true;
}

// Reads exactly `want` arguments into argv; otherwise a TypeError naming the function.
bool Args(napi_env env, napi_callback_info info, const char* name, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) == napi_ok && argc == want) return true;
  return Throw(env, false, std::string(name) + " takes " + std::to_string(want) + " arguments");
}

bool NumberArg(napi_env env, napi_value v, const char* name, double* out) {
  if (napi_get_value_double(env, v, out) != napi_ok || !std::isfinite(*out)) return Throw(env, false, std::string(name) + " must be a finite number");
  return true;
}

// The arguments shared by the AdamW functions: params, g, m, v (Float32Array), then after the
// function's own, b1, b2, eps, decay, stepSize, bc2Sqrt, threads.
struct AdamwArgs {
  float *p, *g, *m, *v;
  size_t np, ng, nm, nv;
  Hyper h;
  int threads;
};

bool ReadAdamwArgs(napi_env env, napi_value* argv, size_t hyperAt, AdamwArgs* a) {
  if (!TypedArg(env, argv[0], napi_float32_array, "params", &a->p, &a->np) || !TypedArg(env, argv[1], napi_float32_array, "g", &a->g, &a->ng) ||
      !TypedArg(env, argv[2], napi_float32_array, "m", &a->m, &a->nm) || !TypedArg(env, argv[3], napi_float32_array, "v", &a->v, &a->nv))
    return false;
  const char* names[] = {"b1", "b2", "eps", "decay", "stepSize", "bc2Sqrt"};
  double* fields[] = {&a->h.b1, &a->h.b2, &a->h.eps, &a->h.decay, &a->h.stepSize, &a->h.bc2Sqrt};
  for (int i = 0; i < 6; ++i)
    if (!NumberArg(env, argv[hyperAt + i], names[i], fields[i])) return false;
  double threads = 0;
  if (!NumberArg(env, argv[hyperAt + 6], "threads", &threads)) return false;
  a->threads = static_cast<int>(std::max(1.0, std::min(threads, 256.0)));
  return true;
}

bool CheckRange(napi_env env, const AdamwArgs& a, double lo, double hi, double so) {
  if (!(lo >= 0 && lo <= hi && hi <= static_cast<double>(a.np) && hi <= static_cast<double>(a.ng) && lo + so >= 0 &&
        hi + so <= static_cast<double>(a.nm) && hi + so <= static_cast<double>(a.nv) && lo == std::floor(lo) && hi == std::floor(hi) && so == std::floor(so)))
    return Throw(env, true,
                 "range [" + std::to_string(lo) + ", " + std::to_string(hi) + ") with state offset " + std::to_string(so) + " does not fit params (" +
                     std::to_string(a.np) + "), g (" + std::to_string(a.ng) + "), m (" + std::to_string(a.nm) + "), v (" + std::to_string(a.nv) + ")");
  return true;
}

// adamwDense(params, g, m, v, lo, hi, so, b1, b2, eps, decay, stepSize, bc2Sqrt, threads)
napi_value AdamwDense(napi_env env, napi_callback_info info) {
  napi_value argv[14];
  if (!Args(env, info, "adamwDense", 14, argv)) return nullptr;
  AdamwArgs a;
  double lo, hi, so;
  if (!ReadAdamwArgs(env, argv, 7, &a) || !NumberArg(env, argv[4], "lo", &lo) || !NumberArg(env, argv[5], "hi", &hi) || !NumberArg(env, argv[6], "so", &so) ||
      !CheckRange(env, a, lo, hi, so))
    return nullptr;
  const int64_t s = static_cast<int64_t>(so);
  Split({{static_cast<int64_t>(lo), static_cast<int64_t>(hi)}}, a.threads,
        [&](size_t, int64_t b, int64_t e) { AdamwRange(a.p, a.g, a.m, a.v, b, e, s, a.h, [](int64_t) { return true; }); });
  return nullptr;
}

// adamwKeep(params, g, m, v, keep: Uint8Array, lo, hi, so, b1, b2, eps, decay, stepSize, bc2Sqrt, threads):
// entry i is updated iff keep[i] != 0.
napi_value AdamwKeep(napi_env env, napi_callback_info info) {
  napi_value argv[15];
  if (!Args(env, info, "adamwKeep", 15, argv)) return nullptr;
  AdamwArgs a;
  uint8_t* keep = nullptr;
  size_t nk = 0;
  double lo, hi, so;
  if (!ReadAdamwArgs(env, argv, 8, &a) || !TypedArg(env, argv[4], napi_uint8_array, "keep", &keep, &nk) || !NumberArg(env, argv[5], "lo", &lo) ||
      !NumberArg(env, argv[6], "hi", &hi) || !NumberArg(env, argv[7], "so", &so) || !CheckRange(env, a, lo, hi, so))
    return nullptr;
  if (hi > static_cast<double>(nk)) {
    Throw(env, true, "keep (" + std::to_string(nk) + ") is shorter than the range's end " + std::to_string(hi));
    return nullptr;
  }
  const int64_t s = static_cast<int64_t>(so);
  Split({{static_cast<int64_t>(lo), static_cast<int64_t>(hi)}}, a.threads,
        [&](size_t, int64_t b, int64_t e) { AdamwRange(a.p, a.g, a.m, a.v, b, e, s, a.h, [keep](int64_t i) { return keep[i] != 0; }); });
  return nullptr;
}

// adamwThreshold(params, g, m, v, ranges: Float64Array of [lo, hi, lim] triples, b1, b2, eps, decay,
// stepSize, bc2Sqrt, threads): entry i of a range is updated iff its |g| bits (sign cleared) are ≥ lim;
// state index = i. Returns the kept count of each range (an Array of numbers).
napi_value AdamwThreshold(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  if (!Args(env, info, "adamwThreshold", 12, argv)) return nullptr;
  AdamwArgs a;
  double* triples = nullptr;
  size_t nt = 0;
  if (!ReadAdamwArgs(env, argv, 5, &a) || !TypedArg(env, argv[4], napi_float64_array, "ranges", &triples, &nt)) return nullptr;
  if (nt % 3 != 0) {
    Throw(env, true, "ranges must hold [lo, hi, lim] triples, got " + std::to_string(nt) + " numbers");
    return nullptr;
  }
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::vector<uint32_t> lims;
  for (size_t r = 0; r < nt / 3; ++r) {
    const double lo = triples[3 * r], hi = triples[3 * r + 1], lim = triples[3 * r + 2];
    if (!CheckRange(env, a, lo, hi, 0)) return nullptr;
    if (!(lim >= 0 && lim <= 4294967295.0 && lim == std::floor(lim))) {
      Throw(env, true, "range " + std::to_string(r) + ": lim " + std::to_string(lim) + " is not an integer in [0, 2^32)");
      return nullptr;
    }
    ranges.emplace_back(static_cast<int64_t>(lo), static_cast<int64_t>(hi));
    lims.push_back(static_cast<uint32_t>(lim));
  }
  std::vector<int64_t> kept(ranges.size(), 0);
  std::mutex guard;  // pieces of one range on two threads add their counts
  Split(ranges, a.threads, [&](size_t r, int64_t b, int64_t e) {
    const uint32_t lim = lims[r];
    const uint32_t* bits = reinterpret_cast<const uint32_t*>(a.g);  // |g| bits; uint32 compares keep the loop vectorised
    const int64_t k = AdamwRange(a.p, a.g, a.m, a.v, b, e, 0, a.h, [bits, lim](int64_t i) { return (bits[i] & 0x7fffffffu) >= lim; });
    std::lock_guard<std::mutex> lock(guard);
    kept[r] += k;
  });
  napi_value out;
  if (napi_create_array_with_length(env, ranges.size(), &out) != napi_ok) return nullptr;
  for (size_t r = 0; r < ranges.size(); ++r) {
    napi_value n;
    if (napi_create_double(env, static_cast<double>(kept[r]), &n) != napi_ok || napi_set_element(env, out, static_cast<uint32_t>(r), n) != napi_ok) return nullptr;
  }
  return out;
}

// ---- The other host-side passes over Γ (trainer/src/update/norm.ts, masking/radix-select.ts,
// optim/clip.ts), compiled: the same integer counts, the same fp64 sums in the same order, the same
// fp32 products. Blocks and segments are split among threads whole or at fixed points, so the
// result never depends on the thread count.


// For each 8-bit mask, the lanes whose bit is set, in order (then zeros): a vpermd control that packs
// the matching lanes of 8 keys to the front.
struct PackTable {
  alignas(32) uint32_t lanes[256][8];
  PackTable() {
    for (int mask = 0; mask < 256; ++mask) {
      int k = 0;
      for (int lane = 0; lane < 8; ++lane)
        if (mask & (1 << lane)) lanes[mask][k++] = static_cast<uint32_t>(lane);
      while (k < 8) lanes[mask][k++] = 0;
    }
  }
};
const PackTable kPack;

// Appends to dst, in index order, the keys x = u[i] & 0x7fffffff of u[0, n) with x >> sh == want;
// returns how many. dst needs room for the matches plus 8. AVX2: compare 8 keys, pack the matching
// ones with one permute, advance by their count — no branch per key.
int64_t PackMatching(const uint32_t* u, int64_t n, uint32_t want, int sh, uint32_t* dst) {
  const __m256i abs = _mm256_set1_epi32(0x7fffffff), w = _mm256_set1_epi32(static_cast<int>(want));
  const __m128i count = _mm_cvtsi32_si128(sh);
  int64_t m = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i x = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + i)), abs);
    const int mask = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_srl_epi32(x, count), w)));
    const __m256i packed = _mm256_permutevar8x32_epi32(x, _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.lanes[mask])));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + m), packed);
    m += __builtin_popcount(static_cast<unsigned>(mask));
  }
  for (; i < n; ++i) {
    const uint32_t x = u[i] & 0x7fffffffu;
    dst[m] = x;
    m += (x >> sh) == want ? 1 : 0;
  }
  return m;
}

// blockSquares(v, lo, hi, block, out: Float64Array, segments: Float64Array [offset, size]..., hist:
// Uint32Array (segments × bins), bins, shift, threads, speculative: Int32Array (one bin or −1 per
// segment), shift2, bins2): out[b] = Σ v[i]² over block b of [lo, hi) (fp64, index order); hist[j·bins + ((bits(v[i]) &
// 0x7fffffff) >> shift)] counts segment j's entries (segments sorted, disjoint, inside [lo, hi); hist is
// overwritten). Segment j's keys in bin speculative[j] are also copied out in index order (the radix
// selection's pass-2 candidates, if its threshold lands in that bin again) and counted by their digit
// (x >> shift2) & (bins2 − 1): returns { candidates: Uint32Array, offsets: Float64Array (segments + 1),
// hist2: Uint32Array (segments × bins2) } when any segment has a bin, else undefined.
napi_value BlockSquares(napi_env env, napi_callback_info info) {
  napi_value argv[13];
  if (!Args(env, info, "blockSquares", 13, argv)) return nullptr;
  float* v = nullptr;
  double *out = nullptr, *segs = nullptr;
  uint32_t* hist = nullptr;
  size_t nv = 0, nout = 0, nsegs = 0, nhist = 0;
  double lo, hi, block, bins, shift, threads;
  if (!TypedArg(env, argv[0], napi_float32_array, "v", &v, &nv) || !NumberArg(env, argv[1], "lo", &lo) || !NumberArg(env, argv[2], "hi", &hi) ||
      !NumberArg(env, argv[3], "block", &block) || !TypedArg(env, argv[4], napi_float64_array, "out", &out, &nout) ||
      !TypedArg(env, argv[5], napi_float64_array, "segments", &segs, &nsegs) || !TypedArg(env, argv[6], napi_uint32_array, "hist", &hist, &nhist) ||
      !NumberArg(env, argv[7], "bins", &bins) || !NumberArg(env, argv[8], "shift", &shift) || !NumberArg(env, argv[9], "threads", &threads))
    return nullptr;
  int32_t* spec = nullptr;
  size_t nspec = 0;
  double shift2, bins2;
  if (!TypedArg(env, argv[10], napi_int32_array, "speculative", &spec, &nspec) || !NumberArg(env, argv[11], "shift2", &shift2) ||
      !NumberArg(env, argv[12], "bins2", &bins2))
    return nullptr;
  const int sh2 = static_cast<int>(shift2);
  const uint32_t nb2 = static_cast<uint32_t>(bins2);
  if (!(sh2 >= 0 && sh2 < 32 && nb2 > 0 && (nb2 & (nb2 - 1)) == 0 && nb2 <= (1u << 20))) {
    Throw(env, true, "blockSquares: shift2 must be in [0, 32) and bins2 a power of two ≤ 2^20");
    return nullptr;
  }
  const int64_t L = static_cast<int64_t>(lo), H = static_cast<int64_t>(hi), B = static_cast<int64_t>(block), nb = B > 0 ? (H - L + B - 1) / B : 0;
  const int64_t nseg = static_cast<int64_t>(nsegs / 2), nbins = static_cast<int64_t>(bins);
  const int sh = static_cast<int>(shift);
  if (!(lo >= 0 && lo <= hi && hi <= static_cast<double>(nv) && B > 0 && static_cast<int64_t>(nout) >= nb && nsegs % 2 == 0 && nbins > 0 &&
        static_cast<int64_t>(nhist) >= nseg * nbins && sh >= 0 && sh < 32 && (0x7fffffffLL >> sh) < nbins)) {
    Throw(env, true, "blockSquares: inconsistent arguments (range, block, out length, segments, histogram size or shift)");
    return nullptr;
  }
  if (nspec != 0 && nspec != nsegs / 2) {
    Throw(env, true, "blockSquares: speculative must be empty or hold one bin per segment");
    return nullptr;
  }
  bool speculate = false;
  for (size_t j = 0; j < nspec; ++j) speculate = speculate || spec[j] >= 0;
  std::vector<int64_t> so(static_cast<size_t>(nseg)), se(static_cast<size_t>(nseg));
  for (int64_t j = 0; j < nseg; ++j) {
    so[j] = static_cast<int64_t>(segs[2 * j]);
    se[j] = so[j] + static_cast<int64_t>(segs[2 * j + 1]);
    if (so[j] < L || se[j] > H || se[j] < so[j] || (j > 0 && so[j] < se[j - 1])) {
      Throw(env, true, "blockSquares: segment " + std::to_string(j) + " is not inside the range or overlaps the previous one");
      return nullptr;
    }
  }
  const int n = ThreadsFor(H - L, static_cast<int>(threads));
  std::vector<std::vector<uint32_t>> local(static_cast<size_t>(n), std::vector<uint32_t>(nseg > 0 ? static_cast<size_t>(nseg * nbins) : 0, 0));
  // cands[t][j]: thread t's keys of segment j in its speculative bin (threads take contiguous blocks).
  struct Keys {
    std::unique_ptr<uint32_t[]> data;  // uninitialised: pages are touched as keys arrive
    int64_t size = 0;
  };
  std::vector<std::vector<Keys>> cands(static_cast<size_t>(n));
  if (speculate)
    for (auto& c : cands) c.resize(static_cast<size_t>(nseg));
  OnThreads(n, [&](int t) {
    const int64_t b0 = nb * t / n, b1 = nb * (t + 1) / n;
    uint32_t* h = local[t].data();
    if (speculate) {
      // Room for every entry of the thread's share of each segment (plus the packer's 8): address
      // space only, so the appends never reallocate and copy.
      const int64_t from = L + b0 * B, to = std::min(H, L + b1 * B);
      for (int64_t q = 0; q < nseg; ++q)
        if (spec[q] >= 0 && so[q] < to && se[q] > from) cands[t][q].data.reset(new uint32_t[static_cast<size_t>(std::min(to, se[q]) - std::max(from, so[q]) + 8)]);
    }
    int64_t j = std::lower_bound(se.begin(), se.end(), L + b0 * B + 1) - se.begin();  // first segment ending after the block start
    // Histograms of the segments' entries in [s, e) (the segment cursor j only moves forward).
    // Counting goes into four interleaved scratch histograms (consecutive keys often share a bin, and
    // one histogram would serialise on that bin's increments), added into segment `cur`'s when the
    // segment changes. Speculative keys are packed into cands[t][j] right after (the block is in cache).
    std::vector<uint32_t> scratch(static_cast<size_t>(4 * nbins), 0);
    uint32_t* s0 = scratch.data();
    uint32_t* s1 = s0 + nbins;
    uint32_t* s2 = s1 + nbins;
    uint32_t* s3 = s2 + nbins;
    int64_t cur = -1;
    auto flush = [&]() {
      if (cur < 0) return;
      uint32_t* hc = h + cur * nbins;
      for (int64_t q = 0; q < nbins; ++q) {
        hc[q] += s0[q] + s1[q] + s2[q] + s3[q];
        s0[q] = s1[q] = s2[q] = s3[q] = 0;
      }
    };
    const uint32_t* u = reinterpret_cast<const uint32_t*>(v);
    auto count = [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e;) {
        while (j < nseg && se[j] <= i) ++j;
        if (j >= nseg || so[j] >= e) break;
        i = std::max(i, so[j]);
        if (j != cur) {
          flush();
          cur = j;
        }
        const int64_t start = i, stop = std::min(e, se[j]);
        for (; i + 4 <= stop; i += 4) {
          ++s0[(u[i] & 0x7fffffffu) >> sh];
          ++s1[(u[i + 1] & 0x7fffffffu) >> sh];
          ++s2[(u[i + 2] & 0x7fffffffu) >> sh];
          ++s3[(u[i + 3] & 0x7fffffffu) >> sh];
        }
        for (; i < stop; ++i) ++s0[(u[i] & 0x7fffffffu) >> sh];
        if (speculate && spec[j] >= 0) {
          Keys& k = cands[t][j];
          k.size += PackMatching(u + start, stop - start, static_cast<uint32_t>(spec[j]), sh, k.data.get() + k.size);
        }
      }
    };
    int64_t b = b0;
    // Eight whole blocks at a time: eight independent chains, each block still summed in index order
    // (the same bits as one block at a time, without waiting on one add's latency per entry).
    constexpr int kChains = 8;
    for (; b + kChains <= b1 && L + (b + kChains) * B <= H; b += kChains) {
      const float* base = v + L + b * B;
      double acc[kChains] = {0};
      for (int64_t i = 0; i < B; ++i)
        for (int c = 0; c < kChains; ++c) {
          const double x = base[c * B + i];
          acc[c] += x * x;
        }
      for (int c = 0; c < kChains; ++c) out[b + c] = acc[c];
      if (nseg > 0) count(L + b * B, L + (b + kChains) * B);
    }
    for (; b < b1; ++b) {
      const int64_t s = L + b * B, e = std::min(H, s + B);
      double acc = 0;
      for (int64_t i = s; i < e; ++i) {
        const double x = v[i];
        acc += x * x;
      }
      out[b] = acc;
      if (nseg > 0) count(s, e);
    }
    flush();
  });
  for (int64_t k = 0; k < nseg * nbins; ++k) {
    uint32_t c = 0;
    for (int t = 0; t < n; ++t) c += local[t][k];
    hist[k] = c;
  }
  if (!speculate) return nullptr;
  // Segment-major, threads in order within a segment: index order.
  size_t total = 0;
  for (int t = 0; t < n; ++t)
    for (const auto& c : cands[t]) total += static_cast<size_t>(c.size);
  napi_value buffer, candidates, offsets, offBuffer, result, h2Buffer, hist2;
  void* data = nullptr;
  void* offData = nullptr;
  void* h2Data = nullptr;
  if (napi_create_arraybuffer(env, total * sizeof(uint32_t), &data, &buffer) != napi_ok ||
      napi_create_typedarray(env, napi_uint32_array, total, buffer, 0, &candidates) != napi_ok ||
      napi_create_arraybuffer(env, static_cast<size_t>(nseg + 1) * sizeof(double), &offData, &offBuffer) != napi_ok ||
      napi_create_typedarray(env, napi_float64_array, static_cast<size_t>(nseg + 1), offBuffer, 0, &offsets) != napi_ok ||
      napi_create_arraybuffer(env, static_cast<size_t>(nseg) * nb2 * sizeof(uint32_t), &h2Data, &h2Buffer) != napi_ok ||
      napi_create_typedarray(env, napi_uint32_array, static_cast<size_t>(nseg) * nb2, h2Buffer, 0, &hist2) != napi_ok || napi_create_object(env, &result) != napi_ok)
    return nullptr;
  uint32_t* h2 = static_cast<uint32_t*>(h2Data);
  std::memset(h2, 0, static_cast<size_t>(nseg) * nb2 * sizeof(uint32_t));
  uint32_t* dst = static_cast<uint32_t*>(data);
  double* off = static_cast<double*>(offData);
  size_t at = 0;
  for (int64_t j = 0; j < nseg; ++j) {
    off[j] = static_cast<double>(at);
    for (int t = 0; t < n; ++t) {
      const Keys& c = cands[t][j];
      if (c.size == 0) continue;
      std::memcpy(dst + at, c.data.get(), static_cast<size_t>(c.size) * sizeof(uint32_t));
      uint32_t* hj = h2 + j * nb2;
      for (int64_t q = 0; q < c.size; ++q) ++hj[(c.data[q] >> sh2) & (nb2 - 1)];
      at += static_cast<size_t>(c.size);
    }
  }
  off[nseg] = static_cast<double>(at);
  if (napi_set_named_property(env, result, "candidates", candidates) != napi_ok || napi_set_named_property(env, result, "offsets", offsets) != napi_ok ||
      napi_set_named_property(env, result, "hist2", hist2) != napi_ok)
    return nullptr;
  return result;
}

// scale(v, lo, hi, f, threads): v[i] = fround(v[i]·f) on [lo, hi) (f: an fp32 value).
napi_value Scale(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!Args(env, info, "scale", 5, argv)) return nullptr;
  float* v = nullptr;
  size_t nv = 0;
  double lo, hi, f, threads;
  if (!TypedArg(env, argv[0], napi_float32_array, "v", &v, &nv) || !NumberArg(env, argv[1], "lo", &lo) || !NumberArg(env, argv[2], "hi", &hi) ||
      !NumberArg(env, argv[3], "f", &f) || !NumberArg(env, argv[4], "threads", &threads))
    return nullptr;
  if (!(lo >= 0 && lo <= hi && hi <= static_cast<double>(nv))) {
    Throw(env, true, "scale: range [" + std::to_string(lo) + ", " + std::to_string(hi) + ") outside v (" + std::to_string(nv) + ")");
    return nullptr;
  }
  const int64_t L = static_cast<int64_t>(lo), H = static_cast<int64_t>(hi);
  const float ff = static_cast<float>(f);
  const int n = ThreadsFor(H - L, static_cast<int>(threads));
  OnThreads(n, [&](int t) {
    const int64_t a = L + (H - L) * t / n, b = L + (H - L) * (t + 1) / n;
    for (int64_t i = a; i < b; ++i) v[i] = static_cast<float>(static_cast<double>(v[i]) * static_cast<double>(ff));
  });
  return nullptr;
}

// compact(segment: Float32Array, f, shift, prefixShift, prefix, hist: Uint32Array (bins), out:
// Uint32Array, threads) → count: the keys x = bits & 0x7fffffff with x >> prefixShift == prefix are
// counted in hist[(x >> shift) & (bins − 1)] and copied to out in index order (the first out.length of
// them); with f ≠ 1 every entry is also multiplied in place by f (fp32), after its key is read. hist
// is overwritten. Returns how many keys matched (the caller checks it against out.length).
napi_value Compact(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!Args(env, info, "compact", 8, argv)) return nullptr;
  float* seg = nullptr;
  uint32_t *hist = nullptr, *out = nullptr;
  size_t ns = 0, nh = 0, no = 0;
  double f, shift, prefixShift, prefix, threads;
  if (!TypedArg(env, argv[0], napi_float32_array, "segment", &seg, &ns) || !NumberArg(env, argv[1], "f", &f) || !NumberArg(env, argv[2], "shift", &shift) ||
      !NumberArg(env, argv[3], "prefixShift", &prefixShift) || !NumberArg(env, argv[4], "prefix", &prefix) ||
      !TypedArg(env, argv[5], napi_uint32_array, "hist", &hist, &nh) || !TypedArg(env, argv[6], napi_uint32_array, "out", &out, &no) ||
      !NumberArg(env, argv[7], "threads", &threads))
    return nullptr;
  const int sh = static_cast<int>(shift), psh = static_cast<int>(prefixShift);
  if (!(nh > 0 && (nh & (nh - 1)) == 0 && sh >= 0 && sh < 32 && psh >= 0 && psh < 32)) {
    Throw(env, true, "compact: hist length must be a power of two and the shifts in [0, 32)");
    return nullptr;
  }
  const uint32_t mask = static_cast<uint32_t>(nh - 1), pre = static_cast<uint32_t>(prefix);
  const bool scale = f != 1;
  const float ff = static_cast<float>(f);
  const int64_t len = static_cast<int64_t>(ns);
  const int n = ThreadsFor(len, static_cast<int>(threads));
  std::vector<std::vector<uint32_t>> hs(static_cast<size_t>(n), std::vector<uint32_t>(nh, 0)), keys(static_cast<size_t>(n));
  OnThreads(n, [&](int t) {
    const int64_t a = len * t / n, b = len * (t + 1) / n;
    uint32_t* h = hs[t].data();
    std::vector<uint32_t>& k = keys[t];
    constexpr int64_t kChunk = 4096;
    uint32_t buf[kChunk];
    for (int64_t i0 = a; i0 < b; i0 += kChunk) {
      const int64_t e = std::min(b, i0 + kChunk);
      int64_t m = 0;
      // Branch-free: every key is written to buf and counted with weight match (0 or 1); buf advances
      // past the matching ones only.
      for (int64_t i = i0; i < e; ++i) {
        uint32_t bits;
        std::memcpy(&bits, seg + i, sizeof bits);
        const uint32_t x = bits & 0x7fffffffu;
        const uint32_t match = (x >> psh) == pre ? 1u : 0u;
        h[(x >> sh) & mask] += match;
        buf[m] = x;
        m += match;
      }
      if (scale)
        for (int64_t i = i0; i < e; ++i) seg[i] = static_cast<float>(static_cast<double>(seg[i]) * static_cast<double>(ff));
      k.insert(k.end(), buf, buf + m);
    }
  });
  for (size_t b = 0; b < nh; ++b) {
    uint32_t c = 0;
    for (int t = 0; t < n; ++t) c += hs[t][b];
    hist[b] = c;
  }
  size_t m = 0;
  for (int t = 0; t < n; ++t)
    for (uint32_t x : keys[t]) {
      if (m < no) out[m] = x;
      ++m;
    }
  napi_value count;
  if (napi_create_double(env, static_cast<double>(m), &count) != napi_ok) return nullptr;
  return count;
}

// keyHistogram(keys: Uint32Array, shift, prefixShift, prefix, hist: Uint32Array (power-of-two length)):
// hist[(x >> shift) & (bins − 1)] += 1 for the keys with x >> prefixShift == prefix (a later radix pass
// over compacted candidates; hist is overwritten).
napi_value KeyHistogram(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!Args(env, info, "keyHistogram", 5, argv)) return nullptr;
  uint32_t *keys = nullptr, *hist = nullptr;
  size_t nk = 0, nh = 0;
  double shift, prefixShift, prefix;
  if (!TypedArg(env, argv[0], napi_uint32_array, "keys", &keys, &nk) || !NumberArg(env, argv[1], "shift", &shift) ||
      !NumberArg(env, argv[2], "prefixShift", &prefixShift) || !NumberArg(env, argv[3], "prefix", &prefix) ||
      !TypedArg(env, argv[4], napi_uint32_array, "hist", &hist, &nh))
    return nullptr;
  const int sh = static_cast<int>(shift), psh = static_cast<int>(prefixShift);
  if (!(nh > 0 && (nh & (nh - 1)) == 0 && sh >= 0 && sh < 32 && psh >= 0 && psh < 32)) {
    Throw(env, true, "keyHistogram: hist length must be a power of two and the shifts in [0, 32)");
    return nullptr;
  }
  const uint32_t mask = static_cast<uint32_t>(nh - 1), pre = static_cast<uint32_t>(prefix);
  std::memset(hist, 0, nh * sizeof(uint32_t));
  for (size_t i = 0; i < nk; ++i) {
    const uint32_t x = keys[i] & 0x7fffffffu;
    hist[(x >> sh) & mask] += (x >> psh) == pre ? 1u : 0u;
  }
  return nullptr;
}

// countAboveAndIn(keys: Uint32Array, lo, hi) → [#keys > hi, #keys in [lo, hi]].
napi_value CountAboveAndIn(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!Args(env, info, "countAboveAndIn", 3, argv)) return nullptr;
  uint32_t* keys = nullptr;
  size_t nk = 0;
  double lo, hi;
  if (!TypedArg(env, argv[0], napi_uint32_array, "keys", &keys, &nk) || !NumberArg(env, argv[1], "lo", &lo) || !NumberArg(env, argv[2], "hi", &hi)) return nullptr;
  int64_t above = 0, in = 0;
  for (size_t i = 0; i < nk; ++i) {
    const double x = keys[i];
    above += x > hi ? 1 : 0;
    in += (x >= lo && x <= hi) ? 1 : 0;
  }
  napi_value out, a, b;
  if (napi_create_array_with_length(env, 2, &out) != napi_ok || napi_create_double(env, static_cast<double>(above), &a) != napi_ok ||
      napi_create_double(env, static_cast<double>(in), &b) != napi_ok || napi_set_element(env, out, 0, a) != napi_ok || napi_set_element(env, out, 1, b) != napi_ok)
    return nullptr;
  return out;
}

const char* const kOps[] = {"GmtBiasGelu", "GmtBiasGeluGrad", "GmtLayerNorm", "GmtLayerNormGrad", "GmtCausalSoftmax", "GmtSoftmaxGrad"};

// The N-API side: exports { ops: string[], abi: number, adamwDense, adamwKeep, adamwThreshold,
// blockSquares, scale, compact, keyHistogram, countAboveAndIn } (abi: bumped when an op's or a
// function's signature changes).
napi_value Init(napi_env env, napi_value exports) {
  napi_value ops, abi;
  if (napi_create_array(env, &ops) != napi_ok) return nullptr;
  for (uint32_t i = 0; i < sizeof(kOps) / sizeof(kOps[0]); ++i) {
    napi_value s;
    if (napi_create_string_utf8(env, kOps[i], NAPI_AUTO_LENGTH, &s) != napi_ok || napi_set_element(env, ops, i, s) != napi_ok) return nullptr;
  }
  if (napi_create_uint32(env, 6, &abi) != napi_ok) return nullptr;
  if (napi_set_named_property(env, exports, "ops", ops) != napi_ok || napi_set_named_property(env, exports, "abi", abi) != napi_ok) return nullptr;
  const struct {
    const char* name;
    napi_callback fn;
  } fns[] = {{"adamwDense", AdamwDense}, {"adamwKeep", AdamwKeep}, {"adamwThreshold", AdamwThreshold},
             {"blockSquares", BlockSquares}, {"scale", Scale},             {"compact", Compact},
             {"keyHistogram", KeyHistogram}, {"countAboveAndIn", CountAboveAndIn}};
  for (const auto& f : fns) {
    napi_value v;
    if (napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &v) != napi_ok || napi_set_named_property(env, exports, f.name, v) != napi_ok) return nullptr;
  }
  return exports;
}

}  // namespace
}  // namespace gmt

NAPI_MODULE(NODE_GYP_MODULE_NAME, gmt::Init)
