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

const char* const kOps[] = {"GmtBiasGelu", "GmtBiasGeluGrad", "GmtLayerNorm", "GmtLayerNormGrad", "GmtCausalSoftmax", "GmtSoftmaxGrad"};

// The N-API side: exports { ops: string[], abi: number } (abi: bumped when an op's signature changes).
napi_value Init(napi_env env, napi_value exports) {
  napi_value ops, abi;
  if (napi_create_array(env, &ops) != napi_ok) return nullptr;
  for (uint32_t i = 0; i < sizeof(kOps) / sizeof(kOps[0]); ++i) {
    napi_value s;
    if (napi_create_string_utf8(env, kOps[i], NAPI_AUTO_LENGTH, &s) != napi_ok || napi_set_element(env, ops, i, s) != napi_ok) return nullptr;
  }
  if (napi_create_uint32(env, 1, &abi) != napi_ok) return nullptr;
  if (napi_set_named_property(env, exports, "ops", ops) != napi_ok || napi_set_named_property(env, exports, "abi", abi) != napi_ok) return nullptr;
  return exports;
}

}  // namespace
}  // namespace gmt

NAPI_MODULE(NODE_GYP_MODULE_NAME, gmt::Init)
