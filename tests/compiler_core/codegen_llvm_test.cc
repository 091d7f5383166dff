#include "compiler_core/codegen/llvm/codegen_llvm.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/ir/function.h"
#include "compiler_core/ir/ir.h"
#include "compiler_core/ir/printer.h"
#include "compiler_core/lower/pipeline.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/schedule/schedule.h"

namespace kiln::core {
namespace {

using ir::Expr;
using ir::Stmt;
using ir::Type;
using ::testing::HasSubstr;

Expr var(const std::string& name) { return ir::Var::make(name); }
Expr load(const std::string& buffer, Expr index) { return ir::Load::make(buffer, index); }
Stmt store(const std::string& buffer, Expr index, Expr value) {
  return ir::Store::make(buffer, index, value);
}
Stmt serial(const std::string& v, Expr min, Expr extent, Stmt body) {
  return ir::For::make(v, min, extent, ir::ForKind::kSerial, body);
}
Stmt parallel(const std::string& v, Expr min, Expr extent, Stmt body) {
  return ir::For::make(v, min, extent, ir::ForKind::kParallel, body);
}
Expr to_f32(Expr e) { return ir::Cast::make(Type::f32(e.type().lanes), e); }
Expr ramp(Expr base, int64_t stride, int lanes) { return ir::Ramp::make(base, stride, lanes); }
Expr bcast(Expr e, int lanes) { return ir::Broadcast::make(e, lanes); }

Target host_target() {
  auto target = resolve_host_target(Target{});
  EXPECT_TRUE(target.is_ok()) << target.status().to_string();
  return *target;
}

std::unique_ptr<JitFunction> compile(const ir::LoweredFunc& func, const Target& target) {
  auto compiled = jit_compile(func, target);
  EXPECT_TRUE(compiled.is_ok()) << compiled.status().to_string();
  if (!compiled.is_ok()) return nullptr;
  return std::move(compiled).value();
}

/// Compiles `func` and runs it on `buffers` (one per argument, in order).
void run(const ir::LoweredFunc& func, std::vector<std::vector<float>*> buffers,
         const Target& target = host_target()) {
  std::unique_ptr<JitFunction> f = compile(func, target);
  ASSERT_NE(f, nullptr);
  std::vector<float*> args;
  for (std::vector<float>* b : buffers) args.push_back(b->data());
  f->call(args.data());
}

std::vector<float> iota(int n, float start = 0.0f, float step = 1.0f) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = start + step * static_cast<float>(i);
  return v;
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t floor_mod(int64_t a, int64_t b) { return a - b * floor_div(a, b); }

TEST(CodegenLlvm, ScalarLoopComputesMultiplyAdd) {
  constexpr int kN = 37;
  Expr i = var("i");
  ir::LoweredFunc func{
      "scalar_madd",
      {"a", "b", "out"},
      serial("i", 0, kN, store("out", i, load("a", i) * ir::f32(2.0) + load("b", i)))};
  std::vector<float> a = iota(kN), b = iota(kN, 100.0f, -0.5f), out(kN, -1.0f);
  run(func, {&a, &b, &out});
  for (int k = 0; k < kN; ++k) EXPECT_FLOAT_EQ(out[k], a[k] * 2.0f + b[k]) << "k=" << k;
}

/// out[v*lanes + l] = a[...] * 2 + b[...] with dense vector accesses of `lanes` lanes.
void check_vector_madd(int lanes, const Target& target = host_target()) {
  const int blocks = 7;
  const int n = blocks * lanes;
  Expr v = var("v");
  Expr index = ramp(v * lanes, 1, lanes);
  ir::LoweredFunc func{
      "vector_madd_" + std::to_string(lanes),
      {"a", "b", "out"},
      serial(
          "v", 0, blocks,
          store("out", index, load("a", index) * bcast(ir::f32(2.0), lanes) + load("b", index)))};
  std::vector<float> a = iota(n, 1.0f, 0.25f), b = iota(n, -3.0f, 1.5f), out(n, 0.0f);
  run(func, {&a, &b, &out}, target);
  for (int k = 0; k < n; ++k) EXPECT_FLOAT_EQ(out[k], a[k] * 2.0f + b[k]) << "k=" << k;
}

TEST(CodegenLlvm, DenseVectorLoadsAndStoresOfAnyLaneCount) {
  check_vector_madd(4);
  check_vector_madd(5);
  check_vector_madd(8);
  check_vector_madd(16);
}

TEST(CodegenLlvm, SixteenLaneVectorsStayWholeOnAvx512) {
  const Target target = host_target();
  Expr index = ramp(var("v") * 16, 1, 16);
  ir::LoweredFunc func{"wide",
                       {"a", "out"},
                       serial("v", 0, 4, store("out", index, load("a", index) + load("a", index)))};
  auto compiled = jit_compile(func, target);
  ASSERT_TRUE(compiled.is_ok()) << compiled.status().to_string();
  const std::string& ir_text = (*compiled)->llvm_ir();
  EXPECT_THAT(ir_text, HasSubstr("<16 x float>"));
  EXPECT_THAT(ir_text, HasSubstr("\"min-legal-vector-width\"=\"512\""));
  if (target.vector_lanes == 16) {
    EXPECT_THAT(ir_text, HasSubstr("\"prefer-vector-width\"=\"512\""));
  }
}

TEST(CodegenLlvm, FloatMultiplyAddMayContractButNothingMore) {
  Expr i = var("i");
  ir::LoweredFunc func{
      "contract",
      {"a", "out"},
      serial("i", 0, 8, store("out", i, load("a", i) * load("a", i) + ir::f32(1.0)))};
  auto compiled = jit_compile(func, host_target());
  ASSERT_TRUE(compiled.is_ok()) << compiled.status().to_string();
  const std::string& ir_text = (*compiled)->llvm_ir();
  EXPECT_THAT(ir_text, ::testing::AnyOf(HasSubstr("fmul contract"), HasSubstr("fmuladd")));
  EXPECT_THAT(ir_text, ::testing::Not(HasSubstr("fast ")));
  EXPECT_THAT(ir_text, ::testing::Not(HasSubstr("reassoc")));
}

TEST(CodegenLlvm, FloorDivisionAndModuloOfNegativeNumbers) {
  // out[k] = (k - 20) / d and (k - 20) % d for constant divisors 3 (generic) and 4 (a power
  // of two), and a run-time divisor of either sign.
  constexpr int kN = 41;
  Expr k = var("k");
  Expr x = k - 20;
  Expr d = var("d");
  std::vector<Stmt> stmts = {
      store("div3", k, to_f32(x / 3)),
      store("mod3", k, to_f32(x % 3)),
      store("div4", k, to_f32(x / 4)),
      store("mod4", k, to_f32(x % 4)),
  };
  ir::LoweredFunc constant_func{
      "floor_const", {"div3", "mod3", "div4", "mod4"}, serial("k", 0, kN, ir::Block::make(stmts))};
  std::vector<float> div3(kN), mod3(kN), div4(kN), mod4(kN);
  run(constant_func, {&div3, &mod3, &div4, &mod4});
  for (int j = 0; j < kN; ++j) {
    const int64_t xv = j - 20;
    EXPECT_EQ(div3[j], static_cast<float>(floor_div(xv, 3))) << "x=" << xv;
    EXPECT_EQ(mod3[j], static_cast<float>(floor_mod(xv, 3))) << "x=" << xv;
    EXPECT_EQ(div4[j], static_cast<float>(floor_div(xv, 4))) << "x=" << xv;
    EXPECT_EQ(mod4[j], static_cast<float>(floor_mod(xv, 4))) << "x=" << xv;
  }

  // Divisors -4..-1 and 1..4 from a loop variable: out[(dd) * kN + k].
  Expr divisor = ir::select(d < 4, d - 4, d - 3);  // d in [0, 8): -4..-1, 1..4
  ir::LoweredFunc general_func{
      "floor_general",
      {"div", "mod"},
      serial("d", 0, 8,
             serial("k", 0, kN,
                    ir::Block::make({store("div", d * kN + k, to_f32(x / divisor)),
                                     store("mod", d * kN + k, to_f32(x % divisor))})))};
  std::vector<float> div(8 * kN), mod(8 * kN);
  run(general_func, {&div, &mod});
  for (int dd = 0; dd < 8; ++dd) {
    const int64_t b = dd < 4 ? dd - 4 : dd - 3;
    for (int j = 0; j < kN; ++j) {
      const int64_t xv = j - 20;
      EXPECT_EQ(div[dd * kN + j], static_cast<float>(floor_div(xv, b))) << xv << "/" << b;
      EXPECT_EQ(mod[dd * kN + j], static_cast<float>(floor_mod(xv, b))) << xv << "%" << b;
    }
  }
}

TEST(CodegenLlvm, VectorFloorDivisionByBroadcastConstant) {
  // A vector index through div/mod: out[ramp] = a[(ramp - 8) / 3 mod 5 + 10]-like gather.
  constexpr int kLanes = 8;
  Expr lanes_index = ramp(var("v") * kLanes, 1, kLanes);
  Expr shifted = lanes_index - bcast(Expr(12), kLanes);
  ir::LoweredFunc func{
      "vector_floor",
      {"div", "mod"},
      serial(
          "v", 0, 4,
          ir::Block::make({store("div", lanes_index, to_f32(shifted / bcast(Expr(3), kLanes))),
                           store("mod", lanes_index, to_f32(shifted % bcast(Expr(3), kLanes)))}))};
  std::vector<float> div(32), mod(32);
  run(func, {&div, &mod});
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(div[j], static_cast<float>(floor_div(j - 12, 3))) << j;
    EXPECT_EQ(mod[j], static_cast<float>(floor_mod(j - 12, 3))) << j;
  }
}

TEST(CodegenLlvm, ParallelLoopWritesEveryIndex) {
  set_num_threads(4);
  constexpr int kN = 1000;
  constexpr int kRows = 3;
  // for j: parallel for i: out[j*kN + i] = a[i] + j   (captures j, a and out)
  Expr i = var("i");
  Expr j = var("j");
  ir::LoweredFunc func{
      "parallel_rows",
      {"a", "out"},
      serial("j", 0, kRows,
             parallel("i", 0, kN, store("out", j * kN + i, load("a", i) + to_f32(j))))};
  std::vector<float> a = iota(kN, 0.5f), out(kRows * kN, -1.0f);
  run(func, {&a, &out});
  for (int r = 0; r < kRows; ++r) {
    for (int k = 0; k < kN; ++k) {
      ASSERT_EQ(out[r * kN + k], a[k] + static_cast<float>(r)) << "row " << r << " k=" << k;
    }
  }
  set_num_threads(1);
}

TEST(CodegenLlvm, ParallelLoopWithNonZeroMinAndPerThreadScratch) {
  set_num_threads(4);
  // parallel for p in [2, 10): allocate tmp[8]; tmp[q] = a[p*8+q] * 3; out[p*8+q] = tmp[7-q]
  // and a nested parallel loop, which runs serially inside a task.
  Expr p = var("p");
  Expr q = var("q");
  Stmt body = ir::Allocate::make(
      "tmp", 8,
      ir::Block::make({serial("q", 0, 8, store("tmp", q, load("a", p * 8 + q) * ir::f32(3.0))),
                       parallel("q", 0, 8, store("out", p * 8 + q, load("tmp", 7 - q)))}));
  ir::LoweredFunc func{"parallel_scratch", {"a", "out"}, parallel("p", 2, 8, body)};
  std::vector<float> a = iota(80, 1.0f), out(80, -1.0f);
  run(func, {&a, &out});
  for (int pp = 0; pp < 10; ++pp) {
    for (int qq = 0; qq < 8; ++qq) {
      const float expected = pp < 2 ? -1.0f : a[pp * 8 + 7 - qq] * 3.0f;
      EXPECT_EQ(out[pp * 8 + qq], expected) << pp << "," << qq;
    }
  }
  set_num_threads(1);
}

TEST(CodegenLlvm, AllocateOnStackAndHeapServesAsScratch) {
  // A small (stack) and a large (heap, > 64 KiB) scratch buffer, both reversed into out.
  for (int64_t n : {int64_t{16}, int64_t{40000}}) {
    Expr i = var("i");
    Stmt body = ir::Allocate::make(
        "tmp", n,
        ir::Block::make({serial("i", 0, n, store("tmp", i, load("a", i) * ir::f32(3.0))),
                         serial("i", 0, n, store("out", i, load("tmp", n - 1 - i)))}));
    ir::LoweredFunc func{"scratch_" + std::to_string(n), {"a", "out"}, body};
    std::vector<float> a = iota(static_cast<int>(n)), out(n, -1.0f);
    run(func, {&a, &out});
    for (int64_t k = 0; k < n; ++k) ASSERT_EQ(out[k], a[n - 1 - k] * 3.0f) << "n=" << n;
  }
}

TEST(CodegenLlvm, GatherScatterAndBroadcastIndices) {
  // out[v*8 .. +8] = a[ramp(v*16, 2, 8)] (a gather) + a[broadcast(v)] (one scalar, splat);
  // odd[ramp(1, 2, 4)] = a[0..4] (a scatter).
  Expr v = var("v");
  ir::LoweredFunc func{
      "gather",
      {"a", "out", "odd"},
      ir::Block::make({serial("v", 0, 3,
                              store("out", ramp(v * 8, 1, 8),
                                    load("a", ramp(v * 16, 2, 8)) + load("a", bcast(v, 8)))),
                       store("odd", ramp(1, 2, 4), load("a", ramp(0, 1, 4)))})};
  std::vector<float> a = iota(48, 0.0f, 1.5f), out(24, 0.0f), odd(8, -1.0f);
  run(func, {&a, &out, &odd});
  for (int vv = 0; vv < 3; ++vv) {
    for (int l = 0; l < 8; ++l) EXPECT_EQ(out[vv * 8 + l], a[vv * 16 + 2 * l] + a[vv]);
  }
  EXPECT_THAT(odd, ::testing::ElementsAre(-1.0f, a[0], -1.0f, a[1], -1.0f, a[2], -1.0f, a[3]));
}

TEST(CodegenLlvm, IfThenElseTakesTheRightBranch) {
  Expr i = var("i");
  ir::LoweredFunc func{
      "branches",
      {"out", "only_then"},
      serial("i", 0, 10,
             ir::Block::make({ir::IfThenElse::make(i < 5, store("out", i, ir::f32(1.0)),
                                                   store("out", i, ir::f32(2.0))),
                              ir::IfThenElse::make(i >= 7, store("only_then", i, ir::f32(5.0)))}))};
  std::vector<float> out(10, 0.0f), only_then(10, 0.0f);
  run(func, {&out, &only_then});
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(out[k], k < 5 ? 1.0f : 2.0f) << k;
    EXPECT_EQ(only_then[k], k >= 7 ? 5.0f : 0.0f) << k;
  }
}

TEST(CodegenLlvm, SelectIsLaneWise) {
  // Scalar and 8-lane |a| through select, and a scalar condition choosing whole vectors.
  Expr i = var("i");
  Expr index = ramp(var("v") * 8, 1, 8);
  Expr zero8 = bcast(ir::f32(0.0), 8);
  ir::LoweredFunc func{
      "selects",
      {"a", "abs_scalar", "abs_vector", "pick"},
      ir::Block::make(
          {serial("i", 0, 16,
                  store("abs_scalar", i,
                        ir::select(load("a", i) < ir::f32(0.0), ir::f32(0.0) - load("a", i),
                                   load("a", i)))),
           serial("v", 0, 2,
                  ir::Block::make({store("abs_vector", index,
                                         ir::select(load("a", index) < zero8,
                                                    zero8 - load("a", index), load("a", index))),
                                   store("pick", index,
                                         ir::select(var("v") < 1, load("a", index), zero8))}))})};
  std::vector<float> a = iota(16, -7.5f), abs_scalar(16), abs_vector(16), pick(16, -1.0f);
  run(func, {&a, &abs_scalar, &abs_vector, &pick});
  for (int k = 0; k < 16; ++k) {
    EXPECT_EQ(abs_scalar[k], std::fabs(a[k])) << k;
    EXPECT_EQ(abs_vector[k], std::fabs(a[k])) << k;
    EXPECT_EQ(pick[k], k < 8 ? a[k] : 0.0f) << k;
  }
}

/// `floats` floats between two pages that may not be touched: reading one float past either
/// end faults.
class FencedFloats {
 public:
  explicit FencedFloats(size_t floats) : page_(size_t(sysconf(_SC_PAGESIZE))) {
    bytes_ = (floats * sizeof(float) + page_ - 1) / page_ * page_;
    base_ = static_cast<char*>(
        mmap(nullptr, bytes_ + 2 * page_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(base_, MAP_FAILED);
    EXPECT_EQ(mprotect(base_ + page_, bytes_, PROT_READ | PROT_WRITE), 0);
    // The floats end where the second fence starts.
    data_ = reinterpret_cast<float*>(base_ + page_ + bytes_) - floats;
  }
  ~FencedFloats() { munmap(base_, bytes_ + 2 * page_); }
  float* data() const { return data_; }

 private:
  size_t page_, bytes_ = 0;
  char* base_ = nullptr;
  float* data_ = nullptr;
};

TEST(CodegenLlvm, GuardedSelectsReadOnlyWhereTheirConditionHolds) {
  // out[i] = a[i - 8] where 0 <= i - 8 < 1024, else 0, for i in [0, 1040): as a masked vector
  // load, a masked gather (every other element) and a scalar branch. `a` lies between pages
  // that fault, so a read outside the condition would crash the test.
  constexpr int64_t n = 1024, lanes = 8, out_n = n + 16;
  Expr v = var("v"), i = var("i");
  auto in_range = [](const Expr& x, int lanes_of_x) {
    return ir::LE::make(bcast(Expr(0), lanes_of_x), x) &&
           ir::LT::make(x, bcast(Expr(n), lanes_of_x));
  };
  Expr shifted = ramp(v * lanes - 8, 1, lanes);
  Expr strided = ramp(v * lanes * 2 - 8, 2, lanes);
  Expr zero = bcast(ir::f32(0), lanes);
  ir::LoweredFunc func{
      "guarded",
      {"a", "dense", "gathered", "scalar"},
      ir::Block::make(
          {serial("v", 0, out_n / lanes,
                  ir::Block::make({store("dense", ramp(v * lanes, 1, lanes),
                                         ir::guarded_select(in_range(shifted, lanes),
                                                            load("a", shifted), zero)),
                                   store("gathered", ramp(v * lanes, 1, lanes),
                                         ir::guarded_select(in_range(strided, lanes),
                                                            load("a", strided), zero))})),
           serial("i", 0, out_n,
                  store("scalar", i,
                        ir::guarded_select(ir::LE::make(Expr(0), i - 8) && (i - 8 < Expr(n)),
                                           load("a", i - 8), ir::f32(0))))})};
  FencedFloats a(n);
  for (int64_t k = 0; k < n; ++k) a.data()[k] = float(k) + 0.5f;
  std::vector<float> dense(out_n, -1.0f), gathered(out_n, -1.0f), scalar(out_n, -1.0f);
  std::unique_ptr<JitFunction> f = compile(func, host_target());
  ASSERT_NE(f, nullptr);
  EXPECT_THAT(f->llvm_ir(), HasSubstr("llvm.masked.load"));
  EXPECT_THAT(f->llvm_ir(), HasSubstr("llvm.masked.gather"));
  std::vector<float*> args = {a.data(), dense.data(), gathered.data(), scalar.data()};
  f->call(args.data());
  for (int64_t k = 0; k < out_n; ++k) {
    const int64_t from = k - 8;
    EXPECT_EQ(dense[k], from >= 0 && from < n ? a.data()[from] : 0.0f) << k;
    EXPECT_EQ(scalar[k], from >= 0 && from < n ? a.data()[from] : 0.0f) << k;
    const int64_t every_other = (k / lanes) * lanes * 2 - 8 + (k % lanes) * 2;
    EXPECT_EQ(gathered[k], every_other >= 0 && every_other < n ? a.data()[every_other] : 0.0f) << k;
  }
}

TEST(CodegenLlvm, ASplitShiftedInwardsVectorizesWholeWithNoTail) {
  // B[i] = 2·A[i] for 20 points in vectors of 16: the second vector covers [4, 20).
  Schedule sch;
  Tensor a = sch.placeholder("A", {20});
  Tensor b = sch.compute("B", {20}, {"i"},
                         [&](const std::vector<Expr>& x) { return a({x[0]}) * ir::f32(2); });
  auto [outer, inner] = sch.split_shift_inwards(b, sch.axis(b, "i"), 16);
  sch.vectorize(b, inner);
  ir::LoweredFunc func = lower::lower_schedule(sch, "shifted");
  const std::string text = ir::to_string(func.body);
  EXPECT_EQ(text.find("if ("), std::string::npos) << text;   // no guard, no scalar tail
  EXPECT_EQ(text.find("for ("), std::string::npos) << text;  // two whole vectors
  std::vector<float> in = iota(20, 1.0f), out(20, 0.0f);
  run(func, {&in, &out});
  for (int k = 0; k < 20; ++k) EXPECT_EQ(out[k], 2 * in[k]) << k;
}

TEST(CodegenLlvm, ASplitShiftedInwardsNeverSumsTwice) {
  auto reduction = [](Schedule& sch) {
    Tensor a = sch.placeholder("A", {20, 20});
    return sch.compute_sum("C", {20}, {"i"}, {20}, {"k"},
                           [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
                             return a({x[0], r[0]});
                           });
  };
  {
    Schedule sch;  // a reduction loop itself
    Tensor c = reduction(sch);
    sch.split_shift_inwards(c, sch.axis(c, "k"), 16);
    EXPECT_THROW(lower::lower_schedule(sch, "bad"), ScheduleError);
  }
  {
    Schedule sch;  // a spatial loop, but inside the reduction
    Tensor c = reduction(sch);
    auto [outer, inner] = sch.split_shift_inwards(c, sch.axis(c, "i"), 16);
    sch.reorder(c, {sch.axis(c, "k"), outer, inner});
    EXPECT_THROW(lower::lower_schedule(sch, "bad"), ScheduleError);
  }
  {
    Schedule sch;  // outside the reduction: each part's sums start from zero
    Tensor c = reduction(sch);
    sch.split_shift_inwards(c, sch.axis(c, "i"), 16);
    ir::LoweredFunc func = lower::lower_schedule(sch, "good");
    std::vector<float> in = iota(400), out(20, 0.0f);
    run(func, {&in, &out});
    for (int row = 0; row < 20; ++row) {
      float sum = 0;
      for (int k = 0; k < 20; ++k) sum += in[size_t(row * 20 + k)];
      EXPECT_EQ(out[size_t(row)], sum) << row;
    }
  }
}

TEST(CodegenLlvm, MinAndMaxOfFloatsAndInts) {
  // relu = max(x, 0), min(x, 1), and an integer clamp used as an index.
  Expr i = var("i");
  Expr index = ramp(var("v") * 4, 1, 4);
  ir::LoweredFunc func{
      "minmax",
      {"a", "relu", "low", "clamped"},
      ir::Block::make(
          {serial("v", 0, 4,
                  ir::Block::make(
                      {store("relu", index, ir::max(load("a", index), bcast(ir::f32(0.0), 4))),
                       store("low", index, ir::min(load("a", index), bcast(ir::f32(1.0), 4)))})),
           serial("i", 0, 16, store("clamped", i, load("a", ir::max(ir::min(i, 9), 3))))})};
  std::vector<float> a = iota(16, -4.0f, 0.75f), relu(16), low(16), clamped(16);
  run(func, {&a, &relu, &low, &clamped});
  for (int k = 0; k < 16; ++k) {
    EXPECT_EQ(relu[k], std::max(a[k], 0.0f)) << k;
    EXPECT_EQ(low[k], std::min(a[k], 1.0f)) << k;
    EXPECT_EQ(clamped[k], a[std::max(std::min(k, 9), 3)]) << k;
  }
}

/// out = exp(a) on `lanes`-lane vectors (1: scalar), over values that reach both ends of
/// float range: exp overflows to +inf above about 88.72 and underflows to 0.
void check_exp(int lanes) {
  constexpr int kBlocks = 6;
  const int n = kBlocks * std::max(lanes, 1);
  Expr index = lanes == 1 ? var("v") : ramp(var("v") * lanes, 1, lanes);
  ir::LoweredFunc func{"exp_" + std::to_string(lanes),
                       {"a", "out"},
                       serial("v", 0, kBlocks, store("out", index, ir::exp(load("a", index))))};
  std::vector<float> a = iota(n, -110.0f, 220.0f / static_cast<float>(n - 1)), out(n, -1.0f);
  a[0] = 0.0f;
  a[1] = 1.0f;
  a[2] = -1.5f;
  run(func, {&a, &out});
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_FLOAT_EQ(out[1], std::exp(1.0f));
  for (int k = 0; k < n; ++k) {
    const float expected = std::exp(a[k]);
    if (std::isinf(expected)) {
      EXPECT_TRUE(std::isinf(out[k]) && out[k] > 0) << "a=" << a[k] << " out=" << out[k];
    } else {
      EXPECT_NEAR(out[k], expected, 4e-7 * expected + 1e-38) << "a=" << a[k];
    }
  }
}

TEST(CodegenLlvm, ExpOfScalarsAndVectors) {
  check_exp(1);
  check_exp(4);
  check_exp(8);
  check_exp(16);
}

TEST(CodegenLlvm, CastsBetweenIntAndFloat) {
  // out[i] = float(int(a[i] * 2.5)): truncation toward zero, as fptosi does.
  Expr i = var("i");
  ir::LoweredFunc func{
      "casts",
      {"a", "out"},
      serial("i", 0, 8,
             store("out", i, to_f32(ir::Cast::make(Type::i64(), load("a", i) * ir::f32(2.5)))))};
  std::vector<float> a = iota(8, -2.0f, 0.5f), out(8);
  run(func, {&a, &out});
  for (int k = 0; k < 8; ++k) {
    EXPECT_EQ(out[k], static_cast<float>(static_cast<int64_t>(a[k] * 2.5f))) << k;
  }
}

TEST(CodegenLlvm, ShadowedLoopVariablesAndBranchesKeepTheirOwnIndices) {
  // for i in [0, 3): { a[i*2] = i; for i in [0, 2): b[i*2] = 10 + i; }   (inner i shadows)
  // for j in [0, 4): { if (j < 2) c[j*3] = 1; c[j*3 + 1] = 2 }   (j*3 first seen in a branch)
  Expr i = var("i");
  Expr j = var("j");
  ir::LoweredFunc func{
      "shadowing",
      {"a", "b", "c"},
      ir::Block::make(
          {serial("i", 0, 3,
                  ir::Block::make({store("a", i * 2, to_f32(i)),
                                   serial("i", 0, 2, store("b", i * 2, to_f32(i + 10)))})),
           serial("j", 0, 4,
                  ir::Block::make({ir::IfThenElse::make(j < 2, store("c", j * 3, ir::f32(1.0))),
                                   store("c", j * 3 + 1, ir::f32(2.0))}))})};
  std::vector<float> a(6, -1.0f), b(4, -1.0f), c(12, -1.0f);
  run(func, {&a, &b, &c});
  EXPECT_THAT(a, ::testing::ElementsAre(0, -1, 1, -1, 2, -1));
  EXPECT_THAT(b, ::testing::ElementsAre(10, -1, 11, -1));
  EXPECT_THAT(c, ::testing::ElementsAre(1, 2, -1, 1, 2, -1, -1, 2, -1, -1, 2, -1));
}

TEST(CodegenLlvm, CompilesConcurrentlyFromManyThreads) {
  const Target target = host_target();
  constexpr int kThreads = 4;
  std::vector<std::vector<float>> outputs(kThreads, std::vector<float>(64, 0.0f));
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Expr index = ramp(var("v") * 8, 1, 8);
      ir::LoweredFunc func{
          "scale_" + std::to_string(t),
          {"out"},
          serial("v", 0, 8, store("out", index, to_f32(index) * bcast(ir::f32(t + 1.0), 8)))};
      auto compiled = jit_compile(func, target);
      if (!compiled.is_ok()) {
        errors[t] = compiled.status().to_string();
        return;
      }
      float* args[] = {outputs[t].data()};
      (*compiled)->call(args);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(errors[t], "");
    for (int k = 0; k < 64; ++k) ASSERT_EQ(outputs[t][k], static_cast<float>(k * (t + 1)));
  }
}

uint16_t elf_machine(const std::vector<uint8_t>& object) {
  // e_machine: a 16-bit little-endian field at offset 18 of the ELF header.
  return static_cast<uint16_t>(object[18] | (object[19] << 8));
}

ir::LoweredFunc small_vector_kernel() {
  Expr index = ramp(var("v") * 4, 1, 4);
  return {
      "kernel",
      {"a", "out"},
      parallel("v", 0, 8, store("out", index, ir::max(load("a", index), bcast(ir::f32(0.0), 4))))};
}

TEST(CodegenLlvm, Aarch64ObjectIsAnAarch64Elf) {
  auto target = parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72");
  ASSERT_TRUE(target.is_ok()) << target.status().to_string();
  auto object = compile_object(small_vector_kernel(), *target);
  ASSERT_TRUE(object.is_ok()) << object.status().to_string();
  ASSERT_GT(object->size(), 64u);
  EXPECT_EQ((*object)[0], 0x7f);
  EXPECT_EQ((*object)[1], 'E');
  EXPECT_EQ(elf_machine(*object), 183);  // EM_AARCH64
}

TEST(CodegenLlvm, X86ObjectIsAnX86Elf) {
  auto target = parse_target("llvm -mtriple=x86_64-linux-gnu -mcpu=skylake-avx512");
  ASSERT_TRUE(target.is_ok()) << target.status().to_string();
  auto object = compile_object(small_vector_kernel(), *target);
  ASSERT_TRUE(object.is_ok()) << object.status().to_string();
  ASSERT_GT(object->size(), 64u);
  EXPECT_EQ(elf_machine(*object), 62);  // EM_X86_64
}

TEST(CodegenLlvm, ExpCompilesForAarch64AndPrints) {
  // A target without a vector exp gets calls of expf (resolved by the loader).
  auto target = parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72");
  ASSERT_TRUE(target.is_ok()) << target.status().to_string();
  Expr index = ramp(var("v") * 4, 1, 4);
  ir::LoweredFunc func{"exp_kernel",
                       {"a", "out"},
                       serial("v", 0, 4, store("out", index, ir::exp(load("a", index))))};
  EXPECT_THAT(ir::to_string(func.body), HasSubstr("exp(a[ramp((v * 4), 1, 4)])"));
  auto object = compile_object(func, *target);
  ASSERT_TRUE(object.is_ok()) << object.status().to_string();
  EXPECT_EQ(elf_machine(*object), 183);  // EM_AARCH64
  auto assembly = emit_assembly(func, *target);
  ASSERT_TRUE(assembly.is_ok()) << assembly.status().to_string();
  EXPECT_THAT(*assembly, HasSubstr("expf"));
}

TEST(CodegenLlvm, UnknownTripleIsInvalidArgument) {
  Target target;
  target.is_host = false;
  target.triple = "nonsense-unknown-nowhere";
  auto object = compile_object(small_vector_kernel(), target);
  ASSERT_FALSE(object.is_ok());
  EXPECT_EQ(object.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(object.status().message(), HasSubstr("nonsense-unknown-nowhere"));
}

TEST(CodegenLlvm, UnknownCpuIsInvalidArgument) {
  auto target = parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=pentium-9000");
  ASSERT_TRUE(target.is_ok()) << target.status().to_string();
  auto object = compile_object(small_vector_kernel(), *target);
  ASSERT_FALSE(object.is_ok());
  EXPECT_EQ(object.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(object.status().message(), HasSubstr("pentium-9000"));
}

/// out[v*4 + l] += a[...] * b[...] on 4-lane vectors: one FMA a vector on any FMA target.
ir::LoweredFunc vector_fma_kernel() {
  Expr index = ramp(var("v") * 4, 1, 4);
  return {"fma_kernel",
          {"a", "b", "out"},
          serial("v", 0, 16,
                 store("out", index, load("a", index) * load("b", index) + load("out", index)))};
}

TEST(CodegenLlvm, Aarch64AssemblyHoldsTheKernelsNeonFmas) {
  auto target = parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72");
  ASSERT_TRUE(target.is_ok()) << target.status().to_string();
  auto assembly = emit_assembly(vector_fma_kernel(), *target);
  ASSERT_TRUE(assembly.is_ok()) << assembly.status().to_string();
  EXPECT_THAT(*assembly, HasSubstr("fma_kernel:"));
  EXPECT_THAT(*assembly, HasSubstr("fmla"));
  EXPECT_THAT(*assembly, HasSubstr(".4s"));
}

TEST(CodegenLlvm, LlvmIrIsTheOptimizedModuleForTheTriple) {
  auto target = parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1");
  ASSERT_TRUE(target.is_ok()) << target.status().to_string();
  auto ir_text = emit_llvm_ir(vector_fma_kernel(), *target);
  ASSERT_TRUE(ir_text.is_ok()) << ir_text.status().to_string();
  EXPECT_THAT(*ir_text, HasSubstr("target triple = \"aarch64-linux-gnu\""));
  EXPECT_THAT(*ir_text, HasSubstr("define void @fma_kernel("));
  EXPECT_THAT(*ir_text, HasSubstr("\"target-cpu\"=\"neoverse-n1\""));
  // Optimized: the always-inlined body is gone.
  EXPECT_THAT(*ir_text, ::testing::Not(HasSubstr("@kernel_body")));
}

TEST(CodegenLlvm, HostAssemblyIsForThisMachine) {
  auto assembly = emit_assembly(vector_fma_kernel(), Target{});
  ASSERT_TRUE(assembly.is_ok()) << assembly.status().to_string();
  EXPECT_THAT(*assembly, HasSubstr("fma_kernel:"));
}

TEST(CodegenLlvm, EmittersRejectUnknownTriplesAndNonLlvmTargets) {
  Target target;
  target.is_host = false;
  target.triple = "nonsense-unknown-nowhere";
  auto assembly = emit_assembly(vector_fma_kernel(), target);
  ASSERT_FALSE(assembly.is_ok());
  EXPECT_EQ(assembly.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(assembly.status().message(), HasSubstr("nonsense-unknown-nowhere"));
  auto ir_text = emit_llvm_ir(vector_fma_kernel(), target);
  ASSERT_FALSE(ir_text.is_ok());
  EXPECT_EQ(ir_text.status().code(), StatusCode::kInvalidArgument);

  auto cuda = parse_target("cuda -arch=sm_90");
  ASSERT_TRUE(cuda.is_ok());
  auto refused = emit_assembly(vector_fma_kernel(), *cuda);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("llvm target"));
}

TEST(HostTarget, ResolvesTripleCpuFeaturesAndLanes) {
  const Target target = host_target();
  EXPECT_FALSE(target.triple.empty());
  EXPECT_FALSE(target.cpu.empty());
  // LLVM 16 calls some x86 hosts (Zen 5) "generic"; resolution picks a model it knows.
  if (target.triple.starts_with("x86_64")) {
    EXPECT_NE(target.cpu, "generic");
  }
  EXPECT_THAT(target.vector_lanes, ::testing::AnyOf(4, 8, 16));
  for (const std::string& attr : target.attrs) {
    ASSERT_GE(attr.size(), 2u);
    EXPECT_TRUE(attr[0] == '+' || attr[0] == '-') << attr;
  }
  // Resolving again changes nothing.
  auto again = resolve_host_target(target);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(*again, target);
  EXPECT_FALSE(host_cpu_model_name().empty());
}

TEST(HostTarget, MattrOverridesDetectedFeatures) {
  const Target detected = host_target();
  if (detected.vector_lanes != 16) GTEST_SKIP() << "host has no avx512f";
  auto parsed = parse_target("llvm -mattr=-avx512f");
  ASSERT_TRUE(parsed.is_ok());
  auto target = resolve_host_target(*parsed);
  ASSERT_TRUE(target.is_ok()) << target.status().to_string();
  EXPECT_EQ(target->vector_lanes, 8);
  EXPECT_THAT(target->attrs, ::testing::Contains("-avx512f"));
  // A kernel built without AVX-512 still runs here.
  check_vector_madd(16, *target);
}

TEST(HostTarget, CrossTargetsGetLanesFromTripleAndCpu) {
  auto arm = parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72");
  ASSERT_TRUE(arm.is_ok());
  auto resolved_arm = resolve_host_target(*arm);
  ASSERT_TRUE(resolved_arm.is_ok());
  EXPECT_EQ(resolved_arm->vector_lanes, 4);
  EXPECT_EQ(resolved_arm->triple, "aarch64-linux-gnu");

  auto x86 = parse_target("llvm -mtriple=x86_64-linux-gnu -mcpu=skylake-avx512");
  ASSERT_TRUE(x86.is_ok());
  auto resolved_x86 = resolve_host_target(*x86);
  ASSERT_TRUE(resolved_x86.is_ok());
  EXPECT_EQ(resolved_x86->vector_lanes, 16);
}

}  // namespace
}  // namespace kiln::core
