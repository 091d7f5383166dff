// What the tracker routes on, read from the protocol: a task's requirement from its target, an
// agent's capability from its registration, architecture aliases spelled one way.

#include "tracker/routing_internal.h"

#include <gtest/gtest.h>

#include "compiler_core/support/architecture.h"

namespace kiln::tracker::internal {
namespace {

namespace pb = kiln::v1;

TEST(Routing, NormalizesTheArchitectureOfATriple) {
  EXPECT_EQ(triple_architecture("aarch64-linux-gnu"), "aarch64");
  EXPECT_EQ(triple_architecture("arm64-apple-darwin"), "aarch64");
  EXPECT_EQ(triple_architecture("amd64-pc-windows"), "x86_64");
  EXPECT_EQ(triple_architecture("x86_64-unknown-linux-gnu"), "x86_64");
  EXPECT_EQ(triple_architecture("x86_64"), "x86_64");
  EXPECT_EQ(triple_architecture(""), "");
}

TEST(Routing, ATaskNeedsItsTriplesArchitectureAndTheFeaturesItTurnsOn) {
  pb::MeasureTask task;
  pb::Target* target = task.mutable_target();
  target->set_canonical("llvm -mtriple=arm64-linux-gnu -mattr=+dotprod,-sve");
  target->set_triple("arm64-linux-gnu");
  target->add_features("+dotprod");
  target->add_features("-sve");
  Requirement r = requirement_of(task);
  EXPECT_EQ(r.architecture, "aarch64");
  EXPECT_EQ(r.features, std::vector<std::string>{"dotprod"});
  EXPECT_EQ(r.target, "llvm -mtriple=arm64-linux-gnu -mattr=+dotprod,-sve");

  Requirement any = requirement_of(pb::MeasureTask());
  EXPECT_EQ(any.architecture, "");
  EXPECT_TRUE(any.features.empty());
}

TEST(Routing, AnAgentRunsItsFactsArchitectureWithItsFeatures) {
  pb::RegisterAgent reg;
  reg.mutable_target()->set_triple("x86_64-unknown-linux-gnu");
  reg.mutable_target()->add_features("+avx2");
  reg.mutable_target()->add_features("-avx512f");
  reg.mutable_facts()->set_architecture("aarch64");  // the facts win over the triple
  reg.mutable_facts()->add_isa_features("neon");
  reg.mutable_facts()->add_isa_features("+dotprod");
  Capability c = capability_of(reg);
  EXPECT_EQ(c.architecture, "aarch64");
  EXPECT_EQ(c.features, (std::set<std::string>{"avx2", "dotprod", "neon"}));

  reg.mutable_facts()->clear_architecture();
  EXPECT_EQ(capability_of(reg).architecture, "x86_64");
  EXPECT_EQ(capability_of(pb::RegisterAgent()).architecture, "");
}

}  // namespace
}  // namespace kiln::tracker::internal
