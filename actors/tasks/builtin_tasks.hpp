#pragma once

#include "actors/tasks/task_registry.hpp"

namespace engram::tasks {

/// Registers the diagnostic tasks operators and benchmarks use, like
/// Celery's ping:
/// - `engram.noop` {}: does nothing → {"ok": true};
/// - `engram.sleep` {"ms": 0..3600000}: waits, honouring a stop request →
///   {"slept_ms": ms};
/// - `engram.fail` {"failures": N (default 1), "message": text}: its first N
///   attempts fail, later ones succeed → {"attempts": n}.
/// Their retries back off from 1 s (capped at 1 min), so a demonstration
/// does not wait 30 s.
void register_builtin_tasks(task_registry& registry);

} // namespace engram::tasks
