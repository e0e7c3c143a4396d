#include "bench/memory_generator.hpp"

#include <algorithm>
#include <bit>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>

#include "runtime/clock.hpp"

namespace engram::bench {

namespace {

constexpr int64_t us_per_day = 86'400'000'000;
constexpr int64_t us_per_hour = 3'600'000'000;

// -- words ----------------------------------------------------------------------

constexpr std::array subjects{
  "deploy pipeline",    "billing export",     "customer onboarding",
  "invoice template",   "staging database",   "search index",
  "weekly report",      "support queue",      "release checklist",
  "backup job",         "payment gateway",    "mobile app",
  "marketing budget",   "hiring plan",        "office move",
  "travel booking",     "security audit",     "data warehouse",
  "API gateway",        "design review",      "sprint planning",
  "vendor contract",    "on-call rotation",   "feature flag",
  "load balancer",      "email campaign",     "analytics dashboard",
  "user survey",        "pricing page",       "legal review",
  "tax filing",         "team offsite",       "laptop refresh",
  "VPN access",         "cache cluster",      "log retention",
  "error budget",       "product roadmap",    "churn forecast",
  "partner integration"};

constexpr std::array details{
  "the Lisbon team",     "the finance team",     "PDF attachments",
  "the EU region",       "Friday afternoons",    "the new vendor",
  "two approvals",       "the staging cluster",  "the March release",
  "the legacy schema",   "the mobile team",      "the board meeting",
  "the annual budget",   "the support rota",     "the Berlin office",
  "the security team",   "customer feedback",    "the audit trail",
  "the nightly build",   "the reporting tool",   "the sales team",
  "the quarterly plan",  "the cloud bill",       "the design system",
  "the onboarding docs", "the data team",        "the shared drive",
  "the status page",     "the partner portal",   "the holiday calendar",
  "the test suite",      "the release notes",    "the ops channel",
  "the pricing model",   "the contract renewal", "the user interviews"};

constexpr std::array verbs{
  "runs on",         "needs approval from", "was moved to",
  "depends on",      "is blocked by",       "should be checked before",
  "was discussed with", "is owned by",      "breaks without",
  "was rescheduled for", "is reviewed by",  "must be sent to",
  "is cheaper with", "keeps failing for",   "was agreed with",
  "is tracked against", "needs a fix for",  "was migrated to",
  "is waiting on",   "was announced to"};

constexpr std::array times{
  "on Mondays",        "every Friday",     "after lunch",
  "before each release", "at month end",   "this quarter",
  "next week",         "in the morning",   "twice a week",
  "since January",     "during the sprint", "after the outage"};

constexpr std::array episodic_openers{
  "The user mentioned that", "Yesterday", "In the call,",
  "During the standup", "The user said that", "Earlier today"};
constexpr std::array semantic_openers{"", "Note:", "Fact:", "Known:"};
constexpr std::array procedural_openers{
  "To handle it,", "Procedure:", "Always remember:", "When asked,"};
constexpr std::array paraphrase_tails{
  " (confirmed)", " Again.", " Same as before.", " (repeated)",
  " This came up once more.", ""};

template <class A>
const char* pick(std::mt19937_64& rng, const A& words) {
  return words[std::uniform_int_distribution<size_t>{0, words.size() - 1}(rng)];
}

/// The words a topic's memories are made of.
struct topic_words {
  const char* subject;
  std::array<const char*, 3> details;
  std::array<const char*, 2> verbs;
  std::array<const char*, 2> times;
};

struct topic {
  std::string agent_id;
  std::vector<float> centre;
  topic_words words;
};

// -- vectors ----------------------------------------------------------------------

class vectors {
public:
  vectors(std::mt19937_64& rng, size_t dim) : rng_(rng), dim_(dim) {
  }

  /// A random unit vector.
  std::vector<float> random_unit() {
    std::vector<double> g(dim_);
    for (auto& x : g)
      x = normal_(rng_);
    return to_unit(g);
  }

  /// A unit vector with cosine `c` to the unit vector `t`:
  /// c·t + sqrt(1 − c²)·u with u a random unit vector orthogonal to t.
  std::vector<float> at_cosine(const std::vector<float>& t, double c) {
    std::vector<double> g(dim_);
    for (auto& x : g)
      x = normal_(rng_);
    double dot = 0;
    for (size_t k = 0; k < dim_; ++k)
      dot += g[k] * t[k];
    for (size_t k = 0; k < dim_; ++k)
      g[k] -= dot * t[k];
    double norm = 0;
    for (auto x : g)
      norm += x * x;
    norm = std::sqrt(norm);
    double s = std::sqrt(std::max(0.0, 1 - c * c));
    std::vector<double> v(dim_);
    for (size_t k = 0; k < dim_; ++k)
      v[k] = c * t[k] + s * g[k] / norm;
    return to_unit(v);
  }

private:
  std::vector<float> to_unit(const std::vector<double>& v) {
    double norm = 0;
    for (auto x : v)
      norm += x * x;
    norm = std::sqrt(norm);
    std::vector<float> out(dim_);
    for (size_t k = 0; k < dim_; ++k)
      out[k] = static_cast<float>(v[k] / norm);
    return out;
  }

  std::mt19937_64& rng_;
  size_t dim_;
  std::normal_distribution<double> normal_{0.0, 1.0};
};

std::string make_uuid(std::mt19937_64& rng) {
  uint64_t hi = rng();
  uint64_t lo = rng();
  hi = (hi & ~0xf000ull) | 0x4000ull; // version 4
  lo = (lo & ~(0xc000ull << 48)) | (0x8000ull << 48); // variant 10
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffull));
  return buf;
}

double uniform(std::mt19937_64& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>{lo, hi}(rng);
}

bool chance(std::mt19937_64& rng, double p) {
  return uniform(rng, 0, 1) < p;
}

std::string capitalised(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z')
    s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

/// A sentence about `w` for a memory of `type`.
std::string sentence(std::mt19937_64& rng, const topic_words& w,
                     const std::string& type) {
  std::string opener;
  if (type == "episodic")
    opener = pick(rng, episodic_openers);
  else if (type == "procedural")
    opener = pick(rng, procedural_openers);
  else if (type == "identity")
    opener = "I look after";
  else if (type == "principle")
    opener = "Principle:";
  else
    opener = pick(rng, semantic_openers);
  auto d = std::uniform_int_distribution<size_t>{0, 2}(rng);
  auto v = std::uniform_int_distribution<size_t>{0, 1}(rng);
  auto t = std::uniform_int_distribution<size_t>{0, 1}(rng);
  std::string body = std::string{"the "} + w.subject + " " + w.verbs[v] + " "
                     + w.details[d] + " " + w.times[t] + ".";
  std::string out = opener.empty() ? capitalised(body) : opener + " " + body;
  switch (std::uniform_int_distribution<int>{0, 3}(rng)) {
    case 0:
      out += " Ticket #" + std::to_string(1000 + rng() % 9000) + ".";
      break;
    case 1:
      out += std::string{" It also affects "} + w.details[(d + 1) % 3] + ".";
      break;
    default:
      break;
  }
  return out;
}

topic_words random_words(std::mt19937_64& rng) {
  topic_words w;
  w.subject = pick(rng, subjects);
  for (auto& d : w.details)
    d = pick(rng, details);
  for (auto& v : w.verbs)
    v = pick(rng, verbs);
  for (auto& t : w.times)
    t = pick(rng, times);
  return w;
}

// -- the other fields -------------------------------------------------------------

void fill_fields(std::mt19937_64& rng, generated_memory& m, int64_t now_us) {
  auto age = static_cast<int64_t>(uniform(rng, 0, 120) * us_per_day);
  m.created_at_us = now_us - age;
  auto reads = uniform(rng, 0, 1);
  m.access_count = reads < 0.5    ? 0
                   : reads < 0.7  ? 1
                   : reads < 0.8  ? 2
                                  : 3 + static_cast<int32_t>(rng() % 18);
  if (m.access_count > 0) {
    // Mostly read lately; some not for a long time.
    auto since = chance(rng, 0.75)
                   ? std::min<int64_t>(age, static_cast<int64_t>(
                                              uniform(rng, 0, 20) * us_per_day))
                   : static_cast<int64_t>(uniform(rng, 0, 1)
                                          * static_cast<double>(age));
    m.last_accessed_at_us = now_us - since;
  }
  auto tier = uniform(rng, 0, 1);
  m.tier = tier < 0.15 ? "hot" : tier < 0.75 ? "warm" : "cold";
  m.pinned = chance(rng, 0.03);
  m.importance
    = 1 + std::binomial_distribution<int32_t>{9, 0.45}(rng);
  auto expiry = uniform(rng, 0, 1);
  if (expiry < 0.02)
    m.expires_at_us = now_us
                      - static_cast<int64_t>(uniform(rng, 1, 720) * us_per_hour);
  else if (expiry < 0.05)
    m.expires_at_us = now_us
                      + static_cast<int64_t>(uniform(rng, 1, 60) * us_per_day);
}

/// A near-duplicate or borderline partner of memory `src`: same agent and
/// type, created after it.
generated_memory partner_of(std::mt19937_64& rng, const generated_memory& src,
                            role kind, int64_t now_us) {
  generated_memory m;
  fill_fields(rng, m, now_us);
  m.kind = kind;
  m.agent_id = src.agent_id;
  m.type = src.type;
  auto age = now_us - src.created_at_us;
  m.created_at_us = src.created_at_us
                    + static_cast<int64_t>(uniform(rng, 0, 1)
                                           * static_cast<double>(std::min<int64_t>(
                                             age, 5 * us_per_day)));
  if (m.last_accessed_at_us != 0 && m.last_accessed_at_us < m.created_at_us)
    m.last_accessed_at_us = m.created_at_us;
  std::string content = src.content;
  if (kind == role::duplicate) {
    // A light paraphrase: another opener or tail, same words.
    m.content = content + pick(rng, paraphrase_tails);
  } else {
    m.content = "Related: " + content;
  }
  return m;
}

const char* topic_type(std::mt19937_64& rng) {
  auto x = uniform(rng, 0, 1);
  return x < 0.40 ? "episodic" : x < 0.75 ? "semantic" : "procedural";
}

void add(generated_project& p, generated_memory m, const std::vector<float>& v) {
  p.memories.push_back(std::move(m));
  p.vectors.insert(p.vectors.end(), v.begin(), v.end());
}

generated_project generate_regular(const generator_options& o,
                                   std::mt19937_64& rng) {
  generated_project p;
  p.dim = o.dim;
  vectors vec{rng, o.dim};
  std::vector<std::string> agents(std::max<size_t>(o.agents, 1));
  for (auto& a : agents)
    a = make_uuid(rng);
  p.agents = agents.size();
  auto n = o.count;
  auto n_singleton = n / 100;
  auto n_identity = n * 3 / 100;
  auto n_duplicate = n * 8 / 100;
  auto n_borderline = n / 100;
  auto n_topic_all = n - n_singleton - n_identity - n_duplicate - n_borderline;
  // Topics of 80 members on average (sizes varied: log-normal weights), and
  // at least about one per agent while topics keep 10 members or more.
  auto n_topics = std::max<size_t>(
    {1, n_topic_all / 80, std::min(agents.size(), n_topic_all / 10)});
  auto n_principle = std::min(n_topics / 10, n_topic_all / 2);
  auto n_topic = n_topic_all - n_principle;
  std::vector<topic> topics(n_topics);
  std::vector<double> weights(n_topics);
  std::lognormal_distribution<double> size_spread{0.0, 0.6};
  for (size_t t = 0; t < n_topics; ++t) {
    topics[t].agent_id
      = chance(rng, 0.05) ? std::string{} : agents[rng() % agents.size()];
    topics[t].centre = vec.random_unit();
    topics[t].words = random_words(rng);
    weights[t] = size_spread(rng);
  }
  p.topics = n_topics;
  std::discrete_distribution<size_t> which_topic{weights.begin(),
                                                 weights.end()};
  p.memories.reserve(n);
  p.vectors.reserve(n * o.dim);
  // Every topic gets its first member, then the rest by weight.
  for (size_t i = 0; i < n_topic; ++i) {
    auto t = i < n_topics ? i : which_topic(rng);
    generated_memory m;
    fill_fields(rng, m, o.now_us);
    m.kind = role::topic;
    m.agent_id = topics[t].agent_id;
    m.type = topic_type(rng);
    m.content = sentence(rng, topics[t].words, m.type);
    add(p, std::move(m), vec.at_cosine(topics[t].centre, uniform(rng, 0.905, 0.93)));
  }
  for (size_t i = 0; i < n_principle; ++i) {
    auto t = (i * 10) % n_topics;
    generated_memory m;
    fill_fields(rng, m, o.now_us);
    m.kind = role::principle;
    m.agent_id = topics[t].agent_id;
    m.type = "principle";
    m.content = sentence(rng, topics[t].words, m.type);
    add(p, std::move(m), vec.at_cosine(topics[t].centre, 0.975));
  }
  for (size_t i = 0; i < n_identity; ++i) {
    auto t = rng() % n_topics;
    generated_memory m;
    fill_fields(rng, m, o.now_us);
    m.kind = role::identity;
    m.agent_id = topics[t].agent_id;
    m.type = "identity";
    m.content = sentence(rng, topics[t].words, m.type);
    add(p, std::move(m), vec.at_cosine(topics[t].centre, uniform(rng, 0.85, 0.93)));
  }
  for (size_t i = 0; i < n_singleton; ++i) {
    generated_memory m;
    fill_fields(rng, m, o.now_us);
    m.kind = role::singleton;
    m.agent_id = chance(rng, 0.05) ? std::string{} : agents[rng() % agents.size()];
    m.type = topic_type(rng);
    m.content = sentence(rng, random_words(rng), m.type);
    add(p, std::move(m), vec.random_unit());
  }
  // Near-duplicate clusters of 2–5 around a topic member (the source).
  auto sources = n_topic;
  for (size_t made = 0; made < n_duplicate;) {
    auto src = rng() % sources;
    auto extra = std::min<size_t>(1 + rng() % 4, n_duplicate - made);
    std::vector<float> seed(p.vector(src), p.vector(src) + o.dim);
    for (size_t k = 0; k < extra; ++k, ++made) {
      auto m = partner_of(rng, p.memories[src], role::duplicate, o.now_us);
      add(p, std::move(m), vec.at_cosine(seed, uniform(rng, 0.95, 0.99)));
    }
  }
  // Borderline pairs: cosine 0.92 ± 0.002…0.010, half on each side.
  for (size_t i = 0; i < n_borderline; ++i) {
    auto src = rng() % sources;
    std::vector<float> seed(p.vector(src), p.vector(src) + o.dim);
    auto off = uniform(rng, 0.002, 0.010);
    auto m = partner_of(rng, p.memories[src], role::borderline, o.now_us);
    add(p, std::move(m), vec.at_cosine(seed, i % 2 == 0 ? 0.92 + off : 0.92 - off));
  }
  return p;
}

generated_project generate_stress(const generator_options& o,
                                  std::mt19937_64& rng) {
  generated_project p;
  p.dim = o.dim;
  p.agents = 1;
  vectors vec{rng, o.dim};
  auto agent = make_uuid(rng);
  auto n = o.count;
  auto n_duplicate = n / 10;
  p.memories.reserve(n);
  p.vectors.reserve(n * o.dim);
  for (size_t i = 0; i + n_duplicate < n; ++i) {
    generated_memory m;
    fill_fields(rng, m, o.now_us);
    m.kind = role::singleton;
    m.agent_id = agent;
    m.type = "semantic";
    m.content = sentence(rng, random_words(rng), m.type);
    add(p, std::move(m), vec.random_unit());
  }
  auto sources = p.memories.size();
  for (size_t i = 0; i < n_duplicate; ++i) {
    auto src = rng() % sources;
    std::vector<float> seed(p.vector(src), p.vector(src) + o.dim);
    auto m = partner_of(rng, p.memories[src], role::duplicate, o.now_us);
    add(p, std::move(m), vec.at_cosine(seed, uniform(rng, 0.95, 0.99)));
  }
  return p;
}

const char* role_name(role r) {
  switch (r) {
    case role::topic:
      return "topic";
    case role::duplicate:
      return "near-duplicate";
    case role::borderline:
      return "borderline";
    case role::principle:
      return "principle";
    case role::identity:
      return "identity";
    case role::singleton:
      return "singleton";
  }
  return "?";
}

void append_escaped(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

} // namespace

std::string generated_project::composition() const {
  std::map<std::string, size_t> roles, types;
  size_t pinned = 0, expired = 0, hot = 0, warm = 0, cold = 0;
  for (const auto& m : memories) {
    ++roles[role_name(m.kind)];
    ++types[m.type];
    pinned += m.pinned;
    hot += m.tier == "hot";
    warm += m.tier == "warm";
    cold += m.tier == "cold";
    expired += m.expires_at_us != 0;
  }
  auto pct = [&](size_t x) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f%%",
                  100.0 * static_cast<double>(x)
                    / static_cast<double>(std::max<size_t>(memories.size(), 1)));
    return std::string{buf};
  };
  std::string out;
  for (const auto& [k, v] : roles)
    out += (out.empty() ? "" : ", ") + k + " " + pct(v);
  out += "; ";
  bool first = true;
  for (const auto& [k, v] : types) {
    out += (first ? "" : ", ") + k + " " + pct(v);
    first = false;
  }
  out += "; hot " + pct(hot) + ", warm " + pct(warm) + ", cold " + pct(cold)
         + "; pinned " + pct(pinned) + "; with expiry " + pct(expired);
  return out;
}

generated_project generate_project(const generator_options& opts) {
  std::mt19937_64 rng{opts.seed ^ (opts.count * 0x9e3779b97f4a7c15ull)
                      ^ (opts.stress ? 0x5354524553530000ull : 0)};
  auto p = opts.stress ? generate_stress(opts, rng) : generate_regular(opts, rng);
  return p;
}

namespace {

void append_base64(std::string& out, std::string_view bytes) {
  static constexpr char alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (auto left = bytes.size() - i; left > 0) {
    uint32_t v = at(i) << 16;
    if (left == 2)
      v |= at(i + 1) << 8;
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += left == 2 ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
}

} // namespace

void append_ndjson(const generated_project& p, size_t i,
                   const std::string& model, std::string& out,
                   vector_form form) {
  const auto& m = p.memories[i];
  out += '{';
  if (!m.agent_id.empty()) {
    out += "\"agent_id\":\"";
    out += m.agent_id;
    out += "\",";
  }
  out += "\"type\":\"";
  out += m.type;
  out += "\",\"tier\":\"";
  out += m.tier;
  out += "\",\"importance\":";
  out += std::to_string(m.importance);
  out += ",\"pinned\":";
  out += m.pinned ? "true" : "false";
  out += ",\"access_count\":";
  out += std::to_string(m.access_count);
  out += ",\"created_at\":\"";
  out += format_utc(from_epoch_us(m.created_at_us));
  out += '"';
  if (m.last_accessed_at_us != 0) {
    out += ",\"last_accessed_at\":\"";
    out += format_utc(from_epoch_us(m.last_accessed_at_us));
    out += '"';
  }
  if (m.expires_at_us != 0) {
    out += ",\"expires_at\":\"";
    out += format_utc(from_epoch_us(m.expires_at_us));
    out += '"';
  }
  out += ",\"content\":";
  append_escaped(out, m.content);
  out += ",\"embedding_model\":\"";
  out += model;
  const float* v = p.vector(i);
  char buf[32];
  if (form == vector_form::base64) {
    // The values the numbers would carry (6 significant digits), as
    // little-endian float32 bytes in base64.
    std::string bytes;
    bytes.reserve(p.dim * 4);
    for (size_t k = 0; k < p.dim; ++k) {
      auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v[k],
                                     std::chars_format::general, 6);
      float f = 0;
      std::from_chars(buf, end, f);
      auto u = std::bit_cast<uint32_t>(f);
      for (int b = 0; b < 4; ++b)
        bytes.push_back(static_cast<char>((u >> (8 * b)) & 0xff));
    }
    out += "\",\"embedding\":\"";
    append_base64(out, bytes);
    out += "\"}\n";
    return;
  }
  out += "\",\"embedding\":[";
  for (size_t k = 0; k < p.dim; ++k) {
    if (k > 0)
      out += ',';
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v[k],
                                   std::chars_format::general, 6);
    out.append(buf, end);
  }
  out += "]}\n";
}

} // namespace engram::bench
