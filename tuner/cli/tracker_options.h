/// \file
/// What `kiln tracker` and `kiln serve` share: the tracker's flags, the TrackerOptions they
/// give, and serving until SIGINT or SIGTERM.
#pragma once

#include <functional>

#include "compiler_core/support/status.h"
#include "tracker/server.h"
#include "tuner/cli/flags.h"

namespace kiln::tuner {

/// Declares --listen ADDR (default `listen`), --token-file, --tls-cert, --tls-key and
/// --heartbeat-timeout-ms.
void add_tracker_server_flags(FlagSet& flags, const std::string& listen);

/// The tracker's options from those flags (files read, the address checked); tasks are
/// validated against the compiler's config spaces before queuing.
Result<tracker::TrackerOptions> tracker_options_from_flags(const FlagSet& flags);

/// Catches SIGINT and SIGTERM, runs `start` (which returns once serving), then waits for a stop
/// signal and calls `shutdown` while `wait` returns when the server has stopped.
int serve_until_signal(const std::function<Status()>& start, const std::function<void()>& wait,
                       const std::function<void()>& shutdown);

}  // namespace kiln::tuner
