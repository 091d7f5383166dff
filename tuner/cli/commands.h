/// \file
/// The entry points of `kiln`'s subcommands, one per file in tuner/cli/. Each takes the
/// arguments after the command name (global flags already removed) and returns the process exit
/// code: 0 on success, 2 for bad usage or input, 1 for a failure.
#pragma once

#include <string>
#include <vector>

namespace kiln::tuner {

/// `kiln run`: builds a workload's kernel for this machine, checks it against the reference
/// implementation and times it (run.cc).
int run_command(const std::vector<std::string>& args);

/// True when `args` (of `kiln run`) name --module: the module form of `kiln run`.
bool is_module_run(const std::vector<std::string>& args);
/// `kiln run --module`: runs a compiled model (run_module.cc).
int run_module_command(const std::vector<std::string>& args);

/// `kiln compile`: an ONNX model into a module file for a target (compile.cc).
int compile_command(const std::vector<std::string>& args);

/// `kiln emit`: writes a kernel's text assembly, object file or optimized LLVM IR for any
/// target, this machine's or another (emit.cc).
int emit_command(const std::vector<std::string>& args);

/// `kiln tune`: searches a workload's space on this machine into the tuning log (tune.cc).
int tune_command(const std::vector<std::string>& args);

/// `kiln bench`: the best stored kernel of a workload against the fastest library for it, in
/// one process (bench.cc).
int bench_command(const std::vector<std::string>& args);

/// `kiln best`: lists the fastest valid records of a workload on a target from the tuning log
/// (best.cc).
int best_command(const std::vector<std::string>& args);

/// `kiln db export|import|stats`: the tuning log as JSON lines, and its counts (db.cc).
int db_command(const std::vector<std::string>& args);

/// `kiln tracker`: the fleet's broker (tracker.cc).
int tracker_command(const std::vector<std::string>& args);
/// `kiln serve`: the Tuning service and the tracker on one port.
int serve_command(const std::vector<std::string>& args);
/// `kiln jobs list|watch|cancel|resume`: a server's tuning jobs (jobs.cc).
int jobs_command(const std::vector<std::string>& args);

/// `kiln agent`: joins the fleet as a board (agent.cc).
int agent_command(const std::vector<std::string>& args);

/// `kiln agent-worker`: the worker process `kiln agent` measures in (agent.cc).
int agent_worker_command(const std::vector<std::string>& args);

/// `kiln status`: a tracker's agents and queues (status.cc).
int status_command(const std::vector<std::string>& args);

/// `kiln model eval`: the cost model's ranking of a workload's held-out records, trained and
/// pre-trained on other shapes (model.cc).
int model_command(const std::vector<std::string>& args);

}  // namespace kiln::tuner
