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
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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
// (-ffp-contract=off), so every bit equals the JavaScript result (test/unit/optim/native-adamw.test.ts).
// Entries are independent, so splitting a range among threads changes nothing. The keep rules are
// evaluated without branches (the new values are computed for every entry and selected), which is
// what makes GMT's masked step cost the same as a dense one.

struct Hyper {
  double b1, b2, eps, decay, stepSize, bc2Sqrt;
};

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
    const bool k = keep(i);
    m[j] = k ? mi : m[j];
    v[j] = k ? vi : v[j];
    p[i] = k ? pi : p[i];
    kept += k ? 1 : 0;
  }
  return kept;
}

// A work list of ranges [lo, hi) split into `threads` contiguous pieces of equal length (at least 2^15
// entries each); fn(range index, lo, hi) runs on each piece (the calling thread takes the first).
template <typename F>
void Split(const std::vector<std::pair<int64_t, int64_t>>& ranges, int threads, F fn) {
  int64_t total = 0;
  for (const auto& r : ranges) total += r.second - r.first;
  const int n = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, total / (1 << 15))));
  auto piece = [&](int t) {
    const int64_t from = total * t / n, to = total * (t + 1) / n;
    int64_t at = 0;
    for (size_t r = 0; r < ranges.size(); ++r) {
      const int64_t len = ranges[r].second - ranges[r].first;
      const int64_t a = std::max(from, at), b = std::min(to, at + len);
      if (a < b) fn(r, ranges[r].first + (a - at), ranges[r].first + (b - at));
      at += len;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(piece, t);
  piece(0);
  for (auto& th : pool) th.join();
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
    return Throw(env, false, std::string(name) + " must be a " + (want == napi_float32_array ? "Float32Array" : want == napi_uint8_array ? "Uint8Array" : "Float64Array"));
  *data = static_cast<T*>(ptr);
  return true;
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
  size_t argc = 14;
  napi_value argv[14];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != 14) {
    Throw(env, false, "adamwDense takes 14 arguments");
    return nullptr;
  }
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
  size_t argc = 15;
  napi_value argv[15];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != 15) {
    Throw(env, false, "adamwKeep takes 15 arguments");
    return nullptr;
  }
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
  size_t argc = 12;
  napi_value argv[12];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != 12) {
    Throw(env, false, "adamwThreshold takes 12 arguments");
    return nullptr;
  }
  AdamwArgs a;
  double* triples = nullptr;
  size_t nt = 0;
  if (!ReadAdamwArgs(env, argv, 5, &a) || !TypedArg(env, argv[4], napi_float64_array, "ranges", &triples, &nt)) return nullptr;
  if (nt % 3 != 0) {
    Throw(env, true, "ranges must hold [lo, hi, lim] triples, got " + std::to_string(nt) + " numbers");
    return nullptr;
  }
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::vector<int64_t> lims;
  for (size_t r = 0; r < nt / 3; ++r) {
    const double lo = triples[3 * r], hi = triples[3 * r + 1], lim = triples[3 * r + 2];
    if (!CheckRange(env, a, lo, hi, 0)) return nullptr;
    if (!(lim >= 0 && lim <= 4294967296.0 && lim == std::floor(lim))) {
      Throw(env, true, "range " + std::to_string(r) + ": lim " + std::to_string(lim) + " is not an integer in [0, 2^32]");
      return nullptr;
    }
    ranges.emplace_back(static_cast<int64_t>(lo), static_cast<int64_t>(hi));
    lims.push_back(static_cast<int64_t>(lim));
  }
  std::vector<int64_t> kept(ranges.size(), 0);
  std::mutex guard;  // pieces of one range on two threads add their counts
  Split(ranges, a.threads, [&](size_t r, int64_t b, int64_t e) {
    const int64_t lim = lims[r];
    const float* g = a.g;
    const int64_t k = AdamwRange(a.p, a.g, a.m, a.v, b, e, 0, a.h, [g, lim](int64_t i) {
      uint32_t bits;
      std::memcpy(&bits, g + i, sizeof bits);
      return static_cast<int64_t>(bits & 0x7fffffffu) >= lim;
    });
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

const char* const kOps[] = {"GmtBiasGelu", "GmtBiasGeluGrad", "GmtLayerNorm", "GmtLayerNormGrad", "GmtCausalSoftmax", "GmtSoftmaxGrad"};

// The N-API side: exports { ops: string[], abi: number, adamwDense, adamwKeep, adamwThreshold } (abi:
// bumped when an op's or a function's signature changes).
napi_value Init(napi_env env, napi_value exports) {
  napi_value ops, abi;
  if (napi_create_array(env, &ops) != napi_ok) return nullptr;
  for (uint32_t i = 0; i < sizeof(kOps) / sizeof(kOps[0]); ++i) {
    napi_value s;
    if (napi_create_string_utf8(env, kOps[i], NAPI_AUTO_LENGTH, &s) != napi_ok || napi_set_element(env, ops, i, s) != napi_ok) return nullptr;
  }
  if (napi_create_uint32(env, 2, &abi) != napi_ok) return nullptr;
  if (napi_set_named_property(env, exports, "ops", ops) != napi_ok || napi_set_named_property(env, exports, "abi", abi) != napi_ok) return nullptr;
  const struct {
    const char* name;
    napi_callback fn;
  } fns[] = {{"adamwDense", AdamwDense}, {"adamwKeep", AdamwKeep}, {"adamwThreshold", AdamwThreshold}};
  for (const auto& f : fns) {
    napi_value v;
    if (napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &v) != napi_ok || napi_set_named_property(env, exports, f.name, v) != napi_ok) return nullptr;
  }
  return exports;
}

}  // namespace
}  // namespace gmt

NAPI_MODULE(NODE_GYP_MODULE_NAME, gmt::Init)
