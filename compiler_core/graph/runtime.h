/// \file
/// The module runtime: loads a module file that `kiln compile` wrote (code for this host's
/// architecture, weights, the graph and its memory plan), packs the kernels' weights once, and
/// runs the graph on inputs the caller binds. Needs neither the ONNX file nor a tuning log.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiler_core/graph/graph.h"
#include "compiler_core/graph/ops.h"
#include "compiler_core/support/status.h"

namespace kiln::graph {

class ModuleRuntime {
 public:
  virtual ~ModuleRuntime() = default;

  /// Loads the module at `path`. NotFound when it cannot be read; InvalidArgument for a file
  /// that is not a kiln module (or a damaged one), a module of another format version, and a
  /// module whose code is for another architecture than this host's (the message names both).
  static Result<std::unique_ptr<ModuleRuntime>> load(const std::string& path);
  /// As load, from the module file's bytes.
  static Result<std::unique_ptr<ModuleRuntime>> load_bytes(const std::string& bytes);

  /// The graph's inputs and outputs, in the model's order.
  virtual const std::vector<Value>& inputs() const = 0;
  virtual const std::vector<Value>& outputs() const = 0;
  /// The target string the module was compiled for.
  virtual const std::string& target() const = 0;

  /// Copies `data` (row-major, `info`'s dtype) in as input `name`. InvalidArgument for an
  /// unknown input name, or a dtype or shape other than the input's (the message names both).
  virtual Status set_input(const std::string& name, const TensorInfo& info, const void* data) = 0;
  /// Runs the graph. FailedPrecondition when an input has not been set.
  virtual Status run() = 0;
  /// Runs the graph as run() does, timing each node: in execution order, the node's name, what
  /// it ran (a kernel's workload string, else the operator) and its seconds.
  struct NodeTime {
    std::string node;
    std::string what;
    double seconds = 0;
  };
  virtual Result<std::vector<NodeTime>> run_profiled() = 0;
  /// Output `name` of the last run: valid until the next run or the runtime's destruction.
  /// NotFound for an unknown name; FailedPrecondition before the first run.
  virtual Result<TensorView> output(const std::string& name) const = 0;

  /// Threads the kernels' parallel loops use (the process's kernel thread pool), >= 1.
  virtual void set_threads(int threads) = 0;
};

}  // namespace kiln::graph
