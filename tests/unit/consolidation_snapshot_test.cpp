// consolidation::make_snapshot: a session's load becomes the snapshot the
// phases share. Vectors are normalised once into one matrix per model; when
// every vector is of one model the matrix takes the loaded buffer over, and
// the snapshot must be the one the copying path builds.

#include <cmath>

#include <gtest/gtest.h>

#include "actors/consolidation/stage.hpp"

using namespace engram;
using namespace engram::consolidation;

namespace {

/// Appends a memory with vector `v` (empty: none) of `model`.
void add_memory(snapshot_data& d, std::string id, std::string model,
                std::vector<float> v) {
  memory_state m;
  m.id = std::move(id);
  m.type = "semantic";
  m.tier = "warm";
  m.content = "memory " + m.id;
  m.created_at_us = 1'000'000 + static_cast<int64_t>(d.memories.size());
  m.embedding_model = std::move(model);
  m.offset = d.floats.size();
  m.dim = static_cast<uint32_t>(v.size());
  d.floats.insert(d.floats.end(), v.begin(), v.end());
  d.memories.push_back(std::move(m));
}

void add_pattern(snapshot_data& d, std::string seed, std::string model,
                 std::vector<float> centroid) {
  pattern_state p;
  p.id = "p-" + seed;
  p.seed_memory_id = seed;
  p.label = "label";
  p.member_ids = {seed};
  p.embedding_model = std::move(model);
  p.offset = d.floats.size();
  p.dim = static_cast<uint32_t>(centroid.size());
  d.floats.insert(d.floats.end(), centroid.begin(), centroid.end());
  d.patterns.push_back(std::move(p));
}

void add_entry(snapshot_data& d, std::string id, std::string model,
               std::vector<float> v) {
  playbook_state e;
  e.id = std::move(id);
  e.title = "entry";
  e.content = "do it";
  e.embedding_model = std::move(model);
  e.offset = d.floats.size();
  e.dim = static_cast<uint32_t>(v.size());
  d.floats.insert(d.floats.end(), v.begin(), v.end());
  d.playbook.push_back(std::move(e));
}

std::vector<float> unit(std::vector<float> v) {
  double sum = 0;
  for (float x : v)
    sum += static_cast<double>(x) * x;
  for (auto& x : v)
    x = static_cast<float>(x / std::sqrt(sum));
  return v;
}

std::vector<float> vector_of(const snapshot& s, const memory& m) {
  const float* p = s.vector_of(m);
  if (p == nullptr)
    return {};
  auto dim = s.spaces[static_cast<size_t>(m.space)].vectors.dim();
  return {p, p + dim};
}

std::vector<float> entry_vector(const snapshot& s, const playbook_entry& e) {
  if (e.space == no_space)
    return {};
  const auto& vectors = s.spaces[static_cast<size_t>(e.space)].vectors;
  return {vectors.row(e.row), vectors.row(e.row) + vectors.dim()};
}

/// The project of both tests: vectors of `model` (and one memory of
/// `other`, when given), a zero vector, one without a vector, a pattern
/// and a playbook entry.
snapshot_data project(const std::string& other) {
  snapshot_data d;
  add_memory(d, "a", "m", {3, 4, 0});
  add_memory(d, "b", "m", {0, 0, 0});
  add_memory(d, "c", "", {});
  add_memory(d, "d", other.empty() ? "m" : other,
             other.empty() ? std::vector<float>{0, 2, 0}
                           : std::vector<float>{0, 2});
  add_memory(d, "e", "m", {1, 1, 1});
  add_pattern(d, "a", "m", {6, 8, 0});
  add_entry(d, "x", "m", {0, 0, 5});
  return d;
}

} // namespace

TEST(consolidation_snapshot, one_model_takes_the_loaded_vectors_over_normalised) {
  auto data = project("");
  const float* loaded = data.floats.data();
  auto s = make_snapshot("p", 0, std::move(data));
  // No copy: the first memory's row is where the load put its vector.
  EXPECT_EQ(s.vector_of(s.memories[0]), loaded);
  ASSERT_EQ(s.spaces.size(), 1u);
  EXPECT_EQ(s.spaces[0].model, "m");
  ASSERT_EQ(s.memories.size(), 5u);
  EXPECT_EQ(vector_of(s, s.memories[0]), unit({3, 4, 0}));
  // A zero vector and a missing one match nothing.
  EXPECT_EQ(s.memories[1].space, no_space);
  EXPECT_EQ(s.memories[2].space, no_space);
  EXPECT_EQ(vector_of(s, s.memories[3]), unit({0, 2, 0}));
  EXPECT_EQ(vector_of(s, s.memories[4]), unit({1, 1, 1}));
  ASSERT_EQ(s.patterns.size(), 1u);
  EXPECT_EQ(s.patterns[0].centroid, unit({6, 8, 0}));
  ASSERT_EQ(s.playbook.size(), 1u);
  EXPECT_EQ(entry_vector(s, s.playbook[0]), unit({0, 0, 5}));
  // Rows the phases add land after the loaded ones and leave them as
  // they were.
  std::vector<float> added = unit({1, 0, 0});
  auto row = s.spaces[0].vectors.append(added.data());
  EXPECT_EQ(std::vector<float>(s.spaces[0].vectors.row(row),
                               s.spaces[0].vectors.row(row) + 3),
            added);
  EXPECT_EQ(vector_of(s, s.memories[0]), unit({3, 4, 0}));
}

TEST(consolidation_snapshot, several_models_get_a_matrix_each_with_the_same_vectors) {
  auto s = make_snapshot("p", 0, project("other"));
  ASSERT_EQ(s.spaces.size(), 2u);
  EXPECT_EQ(vector_of(s, s.memories[0]), unit({3, 4, 0}));
  EXPECT_EQ(s.memories[1].space, no_space);
  EXPECT_EQ(s.memories[2].space, no_space);
  EXPECT_EQ(s.spaces[static_cast<size_t>(s.memories[3].space)].model, "other");
  EXPECT_EQ(vector_of(s, s.memories[3]), unit({0, 2}));
  EXPECT_EQ(vector_of(s, s.memories[4]), unit({1, 1, 1}));
  EXPECT_EQ(s.patterns[0].centroid, unit({6, 8, 0}));
  EXPECT_EQ(entry_vector(s, s.playbook[0]), unit({0, 0, 5}));
}

TEST(consolidation_snapshot, a_vector_of_another_dimension_counts_as_none) {
  snapshot_data d;
  add_memory(d, "a", "m", {3, 4, 0});
  add_memory(d, "b", "m", {1, 0}); // the model's vectors have 3
  add_memory(d, "c", "m", {0, 0, 7});
  auto s = make_snapshot("p", 0, std::move(d));
  EXPECT_EQ(vector_of(s, s.memories[0]), unit({3, 4, 0}));
  EXPECT_EQ(s.memories[1].space, no_space);
  EXPECT_EQ(vector_of(s, s.memories[2]), unit({0, 0, 7}));
}
