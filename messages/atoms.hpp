#pragma once

#include <caf/atom.hpp>
#include <caf/type_id.hpp>

/// The project's type-ID block and atoms. Atom text is at most 10 characters
/// (CAF 0.17). Message structs are added in the headers that define them.
CAF_BEGIN_TYPE_ID_BLOCK(engram, caf::first_custom_type_id)

  // Asks an actor to stop taking work and shut down in order.
  CAF_ADD_ATOM(engram, engram::atom, shutdown, "shutdown")
  // Periodic self-message of actors that do work on an interval.
  CAF_ADD_ATOM(engram, engram::atom, tick, "tick")
  // Asks for statistics.
  CAF_ADD_ATOM(engram, engram::atom, stats, "stats")

CAF_END_TYPE_ID_BLOCK(engram)
