#pragma once

// Hand-built consolidation snapshots for the phase tests: small dimensions,
// hand-picked unit vectors, ids that order like their numbers.

#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>
#include <string_view>
#include <vector>

#include "actors/consolidation/snapshot.hpp"

namespace engram::consolidation::testing {

/// One day in microseconds (24 * 3600 * 10^6).
constexpr int64_t day_us = 86'400'000'000;

/// The instant the tests evaluate ages at: 2023-11-14T22:13:20Z.
constexpr int64_t as_of = 1'700'000'000'000'000;

/// A canonical UUID whose text orders like `n`.
inline std::string uuid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "00000000-0000-0000-0000-%012d", n);
  return buf;
}

/// Axis `k` of a 4-dimensional space.
inline std::vector<float> axis(size_t k) {
  std::vector<float> v(4, 0.0f);
  v[k] = 1.0f;
  return v;
}

/// A unit vector in the plane of axes 0 and 1 whose kernel cosine with axis
/// 0 is exactly the float `c`: the dot product is c * 1 + y * 0 + 0 + 0.
inline std::vector<float> at_cosine(float c) {
  return {c, std::sqrt(1.0f - c * c), 0.0f, 0.0f};
}

/// The unit vector at `degrees` from axis 0 towards axis 1.
inline std::vector<float> at_angle(double degrees) {
  auto r = degrees * std::numbers::pi / 180.0;
  return {static_cast<float>(std::cos(r)), static_cast<float>(std::sin(r)),
          0.0f, 0.0f};
}

/// Builds a snapshot memory by memory.
class builder {
public:
  builder() {
    s.project_id = uuid(9999);
    s.as_of_us = as_of;
  }

  /// Appends an active semantic warm memory of agent "a1" with id uuid(n)
  /// created 100 days (+ n us) before as_of, with vector `v` of `model`
  /// (none when empty); returns its index.
  uint32_t add(int n, std::vector<float> v, std::string_view model = "m4") {
    memory m;
    m.id = uuid(n);
    m.agent_id = "a1";
    m.created_at_us = as_of - 100 * day_us + n;
    m.content = "memory " + std::to_string(n);
    if (!v.empty()) {
      m.space = s.space_for(model, v.size());
      m.row = static_cast<uint32_t>(s.spaces[m.space].vectors.append(v.data()));
    }
    s.memories.push_back(std::move(m));
    return static_cast<uint32_t>(s.memories.size() - 1);
  }

  memory& operator[](uint32_t i) {
    return s.memories[i];
  }

  /// Appends a playbook entry with vector `v` of `model`; returns its index.
  uint32_t add_entry(int n, std::vector<float> v, std::string content,
                     std::string principle_id, std::string_view model = "m4") {
    playbook_entry e;
    e.id = uuid(n);
    e.content = std::move(content);
    e.principle_id = std::move(principle_id);
    e.title = "entry " + std::to_string(n);
    e.created_at_us = as_of - 50 * day_us + n;
    e.space = s.space_for(model, v.size());
    e.row = static_cast<uint32_t>(s.spaces[e.space].vectors.append(v.data()));
    s.playbook.push_back(std::move(e));
    return static_cast<uint32_t>(s.playbook.size() - 1);
  }

  snapshot s;
};

} // namespace engram::consolidation::testing
