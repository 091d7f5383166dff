// Tests of the lowering passes: the simplifier, loop partitioning, bound inference,
// vectorization and storage flattening, checked on the printed IR.

#include <gtest/gtest.h>

#include "compiler_core/ir/printer.h"
#include "compiler_core/lower/build_loop_nest.h"
#include "compiler_core/lower/partition_loops.h"
#include "compiler_core/lower/pipeline.h"
#include "compiler_core/lower/simplify.h"
#include "compiler_core/lower/vectorize_loops.h"
#include "compiler_core/schedule/schedule.h"

namespace kiln::core::lower {
namespace {

using ir::Expr;
using ir::Var;

TEST(Simplify, FoldsConstantsAndCollectsTerms) {
  Expr x = Var::make("x");
  EXPECT_EQ(ir::to_string(simplify(Expr(2) + Expr(3) * Expr(4))), "14");
  EXPECT_EQ(ir::to_string(simplify(x * Expr(2) + x - x * Expr(3))), "0");
  EXPECT_EQ(ir::to_string(simplify((x + Expr(1)) * Expr(4) - Expr(4))), "(x * 4)");
}

TEST(Simplify, DropsDivisionByRangeKnowledge) {
  Expr jo = Var::make("jo"), ji = Var::make("ji");
  ConstScope scope{{"ji", {0, 15}}, {"jo", {0, 100}}};
  EXPECT_EQ(ir::to_string(simplify((jo * Expr(16) + ji) / Expr(16), scope)), "jo");
  EXPECT_EQ(ir::to_string(simplify((jo * Expr(16) + ji) % Expr(16), scope)), "ji");
  // Without the range of ji only the multiple of 16 comes out.
  EXPECT_EQ(ir::to_string(simplify((jo * Expr(16) + ji) / Expr(16))), "(jo + (ji / 16))");
}

TEST(Simplify, FoldsMinMaxAndComparisonsDecidedByRanges) {
  Expr i = Var::make("i");
  ConstScope scope{{"i", {0, 9}}};
  EXPECT_EQ(ir::to_string(simplify(ir::min(Expr(4), Expr(100) - i * Expr(4)), scope)), "4");
  EXPECT_TRUE(can_prove(i < Expr(10), scope));
  EXPECT_FALSE(can_prove(i < Expr(9), scope));
  EXPECT_EQ(ir::to_string(simplify(ir::max(Expr(0), ir::min(i, Expr(20))), scope)), "i");
}

TEST(Simplify, FloorDivisionOfNegativeConstants) {
  EXPECT_EQ(ir::to_string(simplify(Expr(-7) / Expr(2))), "-4");
  EXPECT_EQ(ir::to_string(simplify(Expr(-7) % Expr(2))), "1");
}

TEST(PartitionLoops, PeelsTheTailOfANonDividingSplit) {
  // for io in [0, 3): for ii in [0, min(4, 10 - io*4)): out[io*4 + ii] = 1
  Expr io = Var::make("io"), ii = Var::make("ii");
  ir::Stmt store = ir::Store::make("out", io * Expr(4) + ii, ir::f32(1));
  ir::Stmt inner = ir::For::make("ii", Expr(0), ir::min(Expr(4), Expr(10) - io * Expr(4)),
                                 ir::ForKind::kSerial, store);
  ir::Stmt outer = ir::For::make("io", Expr(0), Expr(3), ir::ForKind::kSerial, inner);
  std::string text = ir::to_string(simplify(partition_loops(simplify(outer))));
  EXPECT_NE(text.find("for (io, 0, 2)"), std::string::npos) << text;
  EXPECT_NE(text.find("for (ii, 0, 4)"), std::string::npos) << text;
  EXPECT_NE(text.find("for (ii, 0, 2)"), std::string::npos) << text;  // the tail: 10 - 8
  EXPECT_EQ(text.find("min("), std::string::npos) << text;
}

TEST(VectorizeLoops, TurnsAffineAccessesIntoRamps) {
  Expr i = Var::make("i");
  ir::Stmt body = ir::Store::make("out", i + Expr(3),
                                  ir::Load::make("a", i * Expr(1)) + ir::Load::make("b", Expr(0)));
  ir::Stmt loop = ir::For::make("i", Expr(0), Expr(8), ir::ForKind::kVectorized, body);
  std::string text = ir::to_string(simplify(vectorize_loops(loop)));
  EXPECT_NE(text.find("out[ramp(3, 1, 8)]"), std::string::npos) << text;
  EXPECT_NE(text.find("a[ramp(0, 1, 8)]"), std::string::npos) << text;
  EXPECT_NE(text.find("x8(b[0])"), std::string::npos) << text;
}

TEST(VectorizeLoops, WidensAMathCallToTheLanesOfItsOperand) {
  Expr i = Var::make("i");
  // exp of a lane-varying load and of a loop-invariant one: both widen to 8 lanes.
  ir::Stmt body = ir::Store::make(
      "out", i, ir::exp(ir::Load::make("a", i)) + ir::exp(ir::Load::make("b", Expr(0))));
  ir::Stmt loop = ir::For::make("i", Expr(0), Expr(8), ir::ForKind::kVectorized, body);
  std::string text = ir::to_string(simplify(vectorize_loops(loop)));
  EXPECT_NE(text.find("exp(a[ramp(0, 1, 8)])"), std::string::npos) << text;
  EXPECT_NE(text.find("x8(exp(b[0]))"), std::string::npos) << text;
  EXPECT_EQ(text.find("for ("), std::string::npos) << text;
}

TEST(Simplify, LeavesMathCallsAloneButSimplifiesTheirOperands) {
  Expr x = Var::make("x");
  Expr call = ir::exp(ir::Cast::make(ir::Type::f32(), x + Expr(0)));
  EXPECT_EQ(ir::to_string(simplify(call)), "exp(f32(x))");
  Expr plain = ir::exp(ir::f32(1.5));
  EXPECT_TRUE(simplify(plain).same_as(plain));
  EXPECT_TRUE(ir::equal(ir::exp(ir::f32(2)), ir::exp(ir::f32(2))));
  EXPECT_FALSE(ir::equal(ir::exp(ir::f32(2)), ir::exp(ir::f32(3))));
}

TEST(VectorizeLoops, FallsBackToSerialForAStoreToOneAddress) {
  Expr i = Var::make("i");
  ir::Stmt body = ir::Store::make("out", Expr(0), ir::Load::make("a", i));
  ir::Stmt loop = ir::For::make("i", Expr(0), Expr(8), ir::ForKind::kVectorized, body);
  std::string text = ir::to_string(vectorize_loops(loop));
  EXPECT_NE(text.find("for (i, 0, 8)"), std::string::npos) << text;
}

TEST(BuildLoopNest, InfersTheRegionOfAComputeAtStage) {
  Schedule sch;
  Tensor a = sch.placeholder("A", {10, 8});
  Tensor b = sch.placeholder("B", {8, 12});
  Tensor c = sch.compute_sum("C", {10, 12}, {"i", "j"}, {8}, {"k"},
                             [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
                               return a({x[0], r[0]}) * b({r[0], x[1]});
                             });
  Tensor local = sch.cache_write(c);
  auto tiles = sch.tile(c, sch.axis(c, "i"), sch.axis(c, "j"), 4, 4);
  sch.compute_at(local, c, tiles[1]);
  std::string text = ir::to_string(simplify(build_loop_nest(sch).body));
  // The local accumulator covers one 4 x 4 tile, shortened at the edge of i (10 = 2·4 + 2).
  EXPECT_NE(text.find("realize C.local([(C.i.o * 4), min(4, (10 - (C.i.o * 4)))], "
                      "[(C.j.o * 4), 4])"),
            std::string::npos)
      << text;
}

TEST(BuildLoopNest, AStageAtAnOuterLoopCoversTheReadsOfAStageAtAnInnerOne) {
  // P (a padded copy of A) is computed at a row of O, S (a sum over P) at a tile of that row,
  // and O reads only S: P's region is what S reads over the whole row.
  Schedule sch;
  Tensor a = sch.placeholder("A", {6, 10});
  Tensor p = sch.compute("P", {6, 12}, {"y", "x"}, [&](const std::vector<Expr>& x) {
    return a({x[0], ir::min(x[1], Expr(9))});
  });
  Tensor sum = sch.compute_sum("S", {6, 10}, {"y", "x"}, {3}, {"s"},
                               [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
                                 return p({x[0], x[1] + r[0]});
                               });
  Tensor o = sch.compute("O", {6, 10}, {"y", "x"},
                         [&](const std::vector<Expr>& x) { return sum(x) + ir::f32(1); });
  auto [xo, xi] = sch.split(o, sch.axis(o, "x"), 5);
  sch.compute_at(p, o, sch.axis(o, "y"));
  sch.compute_at(sum, o, xo);
  std::string text = ir::to_string(simplify(build_loop_nest(sch).body));
  EXPECT_NE(text.find("realize P([O.y, 1], [0, 12])"), std::string::npos) << text;
  EXPECT_NE(text.find("realize S([O.y, 1], [(O.x.o * 5), 5])"), std::string::npos) << text;

  // A reader that is not computed inside the consumer is still an error: O reads P too.
  Schedule other;
  Tensor a2 = other.placeholder("A", {4});
  Tensor p2 = other.compute("P", {4}, {"x"}, [&](const std::vector<Expr>& x) { return a2(x); });
  Tensor s2 = other.compute("S", {4}, {"x"}, [&](const std::vector<Expr>& x) { return p2(x); });
  Tensor o2 =
      other.compute("O", {4}, {"x"}, [&](const std::vector<Expr>& x) { return s2(x) + p2(x); });
  other.compute_at(p2, s2, other.axis(s2, "x"));
  EXPECT_THROW(build_loop_nest(other), ScheduleError);
}

TEST(BuildLoopNest, RejectsFusingAReductionLoopWithASpatialOne) {
  Schedule sch;
  Tensor a = sch.placeholder("A", {4, 4});
  Tensor c = sch.compute_sum("C", {4}, {"i"}, {4}, {"k"},
                             [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
                               return a({x[0], r[0]});
                             });
  sch.fuse(c, sch.axis(c, "i"), sch.axis(c, "k"));
  EXPECT_THROW(build_loop_nest(sch), ScheduleError);
}

TEST(BuildLoopNest, TestsAReductionsConditionInsideTheInnermostLoopItDependsOn) {
  // A 1-D convolution over a zero-padded input: taps r where x + r - 1 falls outside A are
  // skipped. The test sits inside the r loop, around the c loop, and the initialization is
  // outside it.
  Schedule sch;
  Tensor a = sch.placeholder("A", {4, 8});
  auto summand = [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
    Expr i = x[0] + r[1] - Expr(1);
    return ir::select(ir::LE::make(Expr(0), i) && ir::LT::make(i, Expr(8)),
                      a({r[0], ir::max(Expr(0), ir::min(i, Expr(7)))}), ir::f32(0));
  };
  auto in_a = [](const std::vector<Expr>& x, const std::vector<Expr>& r) {
    Expr i = x[0] + r[1] - Expr(1);
    return ir::LE::make(Expr(0), i) && ir::LT::make(i, Expr(8));
  };
  Tensor c = sch.compute_sum("C", {8}, {"x"}, {4, 3}, {"c", "r"}, summand, in_a);
  sch.reorder(c, {sch.axis(c, "x"), sch.axis(c, "r"), sch.axis(c, "c")});
  std::string text = ir::to_string(simplify(build_loop_nest(sch).body));
  const size_t init = text.find("C(C.x) = 0.0f"), r = text.find("for (C.r, 0, 3)"),
               test = text.find("if ("), c_loop = text.find("for (C.c, 0, 4)");
  ASSERT_NE(test, std::string::npos) << text;
  EXPECT_LT(init, r) << text;
  EXPECT_LT(r, test) << text;
  EXPECT_LT(test, c_loop) << text;

  // Where the innermost loop it depends on is unrolled, every term is summed (they are zero).
  sch.unroll(c, sch.axis(c, "r"));
  text = ir::to_string(simplify(build_loop_nest(sch).body));
  EXPECT_EQ(text.find("if ("), std::string::npos) << text;
}

TEST(Pipeline, LowersAMatmulTileWithoutTensorNodes) {
  Schedule sch;
  Tensor a = sch.placeholder("A", {6, 5});
  Tensor b = sch.placeholder("B", {5, 16});
  Tensor c = sch.compute_sum("C", {6, 16}, {"i", "j"}, {5}, {"k"},
                             [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
                               return a({x[0], r[0]}) * b({r[0], x[1]});
                             });
  sch.reorder(c, {sch.axis(c, "i"), sch.axis(c, "k"), sch.axis(c, "j")});
  sch.vectorize(c, sch.axis(c, "j"));
  ir::LoweredFunc f = lower_schedule(sch, "k");
  std::string text = ir::to_string(f.body);
  EXPECT_EQ(text.find("realize"), std::string::npos) << text;
  EXPECT_NE(text.find("ramp("), std::string::npos) << text;
  EXPECT_EQ(f.args, (std::vector<std::string>{"A", "B", "C"}));
}

}  // namespace
}  // namespace kiln::core::lower
