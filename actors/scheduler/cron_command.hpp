#pragma once

#include <chrono>
#include <iosfwd>

#include "runtime/cli.hpp"

namespace engram::cron {

/// `engram cron next`: writes the next `args.count` runs of
/// `args.expression` strictly after `args.from` (or `now` when empty), one
/// RFC 3339 time with the zone's offset per line, to `out`. Returns the exit
/// status: 0, or 2 with the reason on `err` for an invalid expression, an
/// unknown zone or an unreadable --from.
[[nodiscard]] int run_next_command(const cron_next_args& args,
                                   std::chrono::sys_seconds now,
                                   std::ostream& out, std::ostream& err);

} // namespace engram::cron
