/// \file
/// What the tracker routes on, read from the protocol: the Requirement of a submitted
/// MeasureTask and the Capability of a registering agent. Private to tracker/.
#pragma once

#include <string>
#include <string_view>

#include "kiln/v1/tracker.pb.h"
#include "tracker/broker.h"

namespace kiln::tracker::internal {

/// A task needs the architecture of its target's triple (any when the triple is empty) and
/// every feature its target turns on ("+dotprod" -> "dotprod"; "-..." entries ask nothing).
/// Its target text is the canonical target, else the triple.
Requirement requirement_of(const kiln::v1::MeasureTask& task);

/// An agent runs its facts' architecture (else its target triple's) and has the ISA features
/// of its facts plus those its target turns on.
Capability capability_of(const kiln::v1::RegisterAgent& registration);

}  // namespace kiln::tracker::internal
