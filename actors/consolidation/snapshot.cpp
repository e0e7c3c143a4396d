#include "actors/consolidation/snapshot.hpp"

namespace engram::consolidation {

std::string_view to_string(memory_type x) {
  switch (x) {
    case memory_type::episodic:
      return "episodic";
    case memory_type::semantic:
      return "semantic";
    case memory_type::procedural:
      return "procedural";
    case memory_type::identity:
      return "identity";
    case memory_type::principle:
      return "principle";
  }
  return "semantic";
}

std::string_view to_string(memory_tier x) {
  switch (x) {
    case memory_tier::hot:
      return "hot";
    case memory_tier::warm:
      return "warm";
    case memory_tier::cold:
      return "cold";
  }
  return "warm";
}

std::string_view to_string(memory_status x) {
  switch (x) {
    case memory_status::active:
      return "active";
    case memory_status::superseded:
      return "superseded";
    case memory_status::archived:
      return "archived";
  }
  return "active";
}

std::optional<memory_type> parse_memory_type(std::string_view s) {
  for (auto x : {memory_type::episodic, memory_type::semantic,
                 memory_type::procedural, memory_type::identity,
                 memory_type::principle})
    if (to_string(x) == s)
      return x;
  return std::nullopt;
}

std::optional<memory_tier> parse_memory_tier(std::string_view s) {
  for (auto x : {memory_tier::hot, memory_tier::warm, memory_tier::cold})
    if (to_string(x) == s)
      return x;
  return std::nullopt;
}

std::optional<memory_status> parse_memory_status(std::string_view s) {
  for (auto x : {memory_status::active, memory_status::superseded,
                 memory_status::archived})
    if (to_string(x) == s)
      return x;
  return std::nullopt;
}

int32_t snapshot::space_for(std::string_view model, size_t dim) {
  if (auto found = find_space(model); found != no_space)
    return found;
  spaces.push_back(embedding_space{std::string{model}, vec::matrix{dim}});
  return static_cast<int32_t>(spaces.size() - 1);
}

int32_t snapshot::find_space(std::string_view model) const {
  for (size_t i = 0; i < spaces.size(); ++i)
    if (spaces[i].model == model)
      return static_cast<int32_t>(i);
  return no_space;
}

} // namespace engram::consolidation
