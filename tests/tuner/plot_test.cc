// The convergence plot: a self-contained SVG with axes, labels and the best-so-far steps.

#include "tuner/plot.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace kiln::tuner {
namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(ConvergenceSvg, DrawsAxesLabelsAndOneStepPerTrial) {
  std::string svg = convergence_svg({0, 10, 10, 25.5, 40}, "matmul <M=4> & more");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find(">trials</text>"), std::string::npos);
  EXPECT_NE(svg.find(">best GFLOP/s so far</text>"), std::string::npos);
  // The title is escaped, never raw markup.
  EXPECT_NE(svg.find("matmul &lt;M=4&gt; &amp; more"), std::string::npos);
  // One polyline: a start point, then two points per trial.
  ASSERT_EQ(count(svg, "<polyline"), 1u);
  size_t begin = svg.find("points=\"", svg.find("<polyline")) + 8;
  std::string points = svg.substr(begin, svg.find('"', begin) - begin);
  EXPECT_EQ(count(points, ","), 1u + 2 * 5);
  EXPECT_NE(svg.find("best 40.0 GFLOP/s after 5 trials"), std::string::npos);
  // Tick labels cover the largest value.
  EXPECT_NE(svg.find(">40</text>"), std::string::npos);
}

TEST(ConvergenceSvg, ShadesResumedTrialsAndDrawsAnEmptySeries) {
  std::string svg = convergence_svg({5, 6, 7, 8}, "t", 2);
  EXPECT_NE(svg.find("trials from an earlier run"), std::string::npos);
  std::string empty = convergence_svg({}, "t");
  EXPECT_EQ(count(empty, "<polyline"), 0u);
  EXPECT_NE(empty.find(">trials</text>"), std::string::npos);
}

TEST(ConvergenceSvg, UnwritablePathIsInvalidArgument) {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("kiln_no_such_dir_" + std::to_string(getpid())) / "p.svg";
  Status s = write_convergence_svg(path, {1, 2}, "t");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(path.string()), std::string::npos);
}

}  // namespace
}  // namespace kiln::tuner
