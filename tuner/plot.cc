#include "tuner/plot.h"

#include <algorithm>
#include <cmath>

#include <spdlog/fmt/fmt.h>

#include "compiler_core/support/file.h"

namespace kiln::tuner {
namespace {

constexpr double kWidth = 720, kHeight = 420;
constexpr double kLeft = 70, kRight = 20, kTop = 40, kBottom = 55;

/// A "nice" tick step (1, 2 or 5 times a power of ten) for about `ticks` ticks over `range`.
double nice_step(double range, int ticks) {
  if (!(range > 0)) return 1;
  double raw = range / ticks;
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * power) return m * power;
  }
  return 10 * power;
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// Labels of a step plot.
struct StepPlotText {
  std::string title;
  std::string y_axis;
  std::string last;  ///< the note in the top right corner
};

/// A step plot of y over x (x ascending, from 0): flat from each point to the next. `shade` x
/// units at the start are shaded (trials from an earlier run).
std::string step_plot_svg(const std::vector<std::pair<double, double>>& points,
                          const StepPlotText& text, double shade) {
  const size_t n = points.size();
  double max_y = 0, max_x = 1;
  for (const auto& [x, y] : points) {
    max_y = std::max(max_y, y);
    max_x = std::max(max_x, x);
  }
  const double y_step = nice_step(max_y > 0 ? max_y : 1, 5);
  const double y_top = std::max(y_step, std::ceil(max_y / y_step) * y_step);
  const double x_step = nice_step(max_x, 8);
  const double x_right = std::max(x_step, std::ceil(max_x / x_step) * x_step);
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + x / x_right * plot_w; };
  auto py = [&](double y) { return kTop + plot_h - y / y_top * plot_h; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{3}</text>\n",
      kWidth, kHeight, kWidth / 2, escape(text.title));
  if (shade > 0 && n > 0) {
    svg += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#eeeeee\">"
        "<title>trials from an earlier run</title></rect>\n",
        px(0), kTop, px(shade) - px(0), plot_h);
  }
  // Grid, ticks and tick labels.
  for (double y = 0; y <= y_top + y_step / 2; y += y_step) {
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#dddddd\"/>\n"
        "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"end\">{5:g}</text>\n",
        kLeft, py(y), kLeft + plot_w, kLeft - 6, py(y) + 4, y);
  }
  for (double x = 0; x <= x_right + x_step / 2; x += x_step) {
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#000000\"/>\n"
        "<text x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\">{4:g}</text>\n",
        px(x), kTop + plot_h, kTop + plot_h + 5, kTop + plot_h + 19, x);
  }
  // Axes and their labels.
  svg += fmt::format(
      "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#000000\"/>\n"
      "<line x1=\"{0:.1f}\" y1=\"{2:.1f}\" x2=\"{3:.1f}\" y2=\"{2:.1f}\" stroke=\"#000000\"/>\n"
      "<text x=\"{4:.1f}\" y=\"{5:.1f}\" text-anchor=\"middle\">trials</text>\n"
      "<text x=\"18\" y=\"{6:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {6:.1f})\">"
      "{7}</text>\n",
      kLeft, kTop, kTop + plot_h, kLeft + plot_w, kLeft + plot_w / 2, kHeight - 12,
      kTop + plot_h / 2, escape(text.y_axis));
  if (n > 0) {
    std::string line = fmt::format("{:.1f},{:.1f}", px(points[0].first), py(points[0].second));
    for (size_t i = 1; i < n; ++i) {
      line += fmt::format(" {:.1f},{:.1f} {:.1f},{:.1f}", px(points[i].first),
                          py(points[i - 1].second), px(points[i].first), py(points[i].second));
    }
    svg +=
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"" + line + "\"/>\n";
    svg += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"#1f77b4\">{}</text>\n",
        kLeft + plot_w - 4, kTop + 14, escape(text.last));
  }
  svg += "</svg>\n";
  return svg;
}

Status write_plot(const std::filesystem::path& path, const std::string& svg) {
  Status written = write_file_atomically(path, svg);
  if (!written.is_ok()) {
    return invalid_argument("cannot write the plot to '" + path.string() +
                            "': " + written.message() + "; pass a writable --plot path");
  }
  return Status::ok();
}

}  // namespace

std::string convergence_svg(const std::vector<double>& best_so_far, const std::string& title,
                            size_t resumed) {
  // Trial i's best holds from x = i to x = i + 1.
  std::vector<std::pair<double, double>> points;
  double max_y = 0;
  for (size_t i = 0; i < best_so_far.size(); ++i) {
    points.emplace_back(double(i), best_so_far[i]);
    max_y = std::max(max_y, best_so_far[i]);
  }
  if (!points.empty()) points.emplace_back(double(points.size()), points.back().second);
  return step_plot_svg(
      points,
      {title, "best GFLOP/s so far",
       fmt::format("best {:.1f} GFLOP/s after {} trials", max_y, best_so_far.size())},
      double(resumed));
}

std::string latency_svg(const std::vector<std::pair<int64_t, double>>& curve,
                        const std::string& title, int64_t resumed) {
  std::vector<std::pair<double, double>> points;
  for (const auto& [trials, latency_s] : curve)
    points.emplace_back(double(trials), latency_s * 1e3);
  std::string last;
  if (!curve.empty()) {
    last = fmt::format("{:.3f} ms after {} trials", curve.back().second * 1e3, curve.back().first);
  }
  return step_plot_svg(points, {title, "estimated latency (ms)", last}, double(resumed));
}

Status write_convergence_svg(const std::filesystem::path& path,
                             const std::vector<double>& best_so_far, const std::string& title,
                             size_t resumed) {
  return write_plot(path, convergence_svg(best_so_far, title, resumed));
}

Status write_latency_svg(const std::filesystem::path& path,
                         const std::vector<std::pair<int64_t, double>>& curve,
                         const std::string& title, int64_t resumed) {
  return write_plot(path, latency_svg(curve, title, resumed));
}

}  // namespace kiln::tuner
