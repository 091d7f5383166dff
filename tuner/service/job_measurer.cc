#include "tuner/service/job_measurer.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "tuner/measure/fleet_measurer.h"
#include "tuner/measure/local_measurer.h"

namespace kiln::tuner {
namespace {

/// Lets one job at a time measure on this machine: two timing at once would disturb each other.
class OneAtATime final : public Measurer {
 public:
  OneAtATime(std::unique_ptr<Measurer> inner, std::mutex& mutex)
      : inner_(std::move(inner)), mutex_(mutex) {}
  Result<std::vector<core::TuningRecord>> measure(const std::vector<core::Config>& configs,
                                                  const core::TimingOptions& timing) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return inner_->measure(configs, timing);
  }

 private:
  std::unique_ptr<Measurer> inner_;
  std::mutex& mutex_;
};

}  // namespace

Result<std::unique_ptr<Measurer>> make_job_measurer(const JobSpec& spec,
                                                    const core::Workload& workload,
                                                    const core::Target& target,
                                                    const core::ConfigSpace& space,
                                                    const JobMeasurerSettings& settings,
                                                    std::function<bool()> stop_requested) {
  if (!spec.device_key.empty()) {
    FleetSettings fleet;
    fleet.channel = settings.tracker;
    fleet.tracker = settings.tracker_name;
    fleet.device_key = spec.device_key;
    fleet.token = settings.token;
    fleet.threads = spec.threads;
    fleet.stop_requested = std::move(stop_requested);
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<FleetMeasurer> m,
                          FleetMeasurer::create(workload, target, space, fleet));
    return std::unique_ptr<Measurer>(std::move(m));
  }
  const int threads = spec.record_threads();
  std::unique_ptr<Measurer> local;
  if (settings.local) {
    KILN_ASSIGN_OR_RETURN(local, settings.local(workload, target, space, threads));
  } else {
    MeasureSettings in_process;
    in_process.threads = threads;
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<LocalMeasurer> m,
                          LocalMeasurer::create(workload, target, space, in_process));
    local = std::move(m);
  }
  return std::unique_ptr<Measurer>(
      std::make_unique<OneAtATime>(std::move(local), *settings.local_measure));
}

}  // namespace kiln::tuner
