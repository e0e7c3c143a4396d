#include "runtime/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace engram::metrics {

// -- counter, gauge ------------------------------------------------------------

void counter::inc(double delta) noexcept {
  if (delta > 0)
    value_.fetch_add(delta, std::memory_order_relaxed);
}

double counter::value() const noexcept {
  return value_.load(std::memory_order_relaxed);
}

void gauge::set(double x) noexcept {
  value_.store(x, std::memory_order_relaxed);
}

void gauge::inc(double delta) noexcept {
  value_.fetch_add(delta, std::memory_order_relaxed);
}

void gauge::dec(double delta) noexcept {
  value_.fetch_sub(delta, std::memory_order_relaxed);
}

double gauge::value() const noexcept {
  return value_.load(std::memory_order_relaxed);
}

// -- histogram -----------------------------------------------------------------

histogram::histogram(std::vector<double> upper_bounds)
  : bounds_(std::move(upper_bounds)) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]))
      throw std::logic_error("histogram bounds must be finite (+Inf is implied)");
    if (i > 0 && !(bounds_[i - 1] < bounds_[i]))
      throw std::logic_error("histogram bounds must be strictly increasing");
  }
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
}

void histogram::observe(double x) noexcept {
  if (std::isnan(x))
    return;
  // The first bound >= x; past the end means the +Inf bucket.
  auto i = std::lower_bound(bounds_.begin(), bounds_.end(), x) - bounds_.begin();
  sum_.fetch_add(x, std::memory_order_relaxed);
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot result;
  result.upper_bounds = bounds_;
  result.cumulative_counts.reserve(bounds_.size() + 1);
  // The count is the sum of the buckets (not a separate atomic) so that a
  // concurrent observe() can never make _count differ from the +Inf bucket.
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    result.cumulative_counts.push_back(total);
  }
  result.sum = sum_.load(std::memory_order_relaxed);
  result.count = total;
  return result;
}

std::vector<double> default_latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
}

// -- formatting ----------------------------------------------------------------

std::string escape_label_value(std::string_view x) {
  std::string result;
  result.reserve(x.size());
  for (char c : x) {
    switch (c) {
      case '\\': result += "\\\\"; break;
      case '"': result += "\\\""; break;
      case '\n': result += "\\n"; break;
      default: result += c;
    }
  }
  return result;
}

std::string format_value(double x) {
  if (std::isnan(x))
    return "NaN";
  if (std::isinf(x))
    return x > 0 ? "+Inf" : "-Inf";
  // Integers up to 2^53 are exact in a double: print them without exponent or
  // fraction (this also prints -0 as 0).
  if (std::trunc(x) == x && std::fabs(x) <= 9007199254740992.0)
    return std::to_string(static_cast<int64_t>(x));
  // Shortest round-trip digits; plain notation for exponents in [-4, 16)
  // like Python's repr (0.0005, not 5e-04), scientific beyond (1e-05, 1e+20).
  char buf[64];
  auto sci = std::to_chars(buf, buf + sizeof(buf), x,
                           std::chars_format::scientific);
  auto e = std::string_view(buf, sci.ptr).find('e');
  int exponent = 0;
  std::from_chars(buf + e + 1 + (buf[e + 1] == '+'), sci.ptr, exponent);
  if (exponent < -4 || exponent >= 16)
    return std::string(buf, sci.ptr);
  auto fixed = std::to_chars(buf, buf + sizeof(buf), x,
                             std::chars_format::fixed);
  return std::string(buf, fixed.ptr);
}

namespace {

enum class kind { counter, gauge, histogram };

std::string_view type_name(kind k) {
  switch (k) {
    case kind::counter: return "counter";
    case kind::gauge: return "gauge";
    case kind::histogram: return "histogram";
  }
  return "untyped";
}

bool is_metric_name(std::string_view x) {
  if (x.empty())
    return false;
  auto head = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
           || c == ':';
  };
  auto tail = [&](char c) { return head(c) || (c >= '0' && c <= '9'); };
  return head(x.front()) && std::all_of(x.begin() + 1, x.end(), tail);
}

bool is_label_name(std::string_view x) {
  if (x.empty() || x.starts_with("__"))
    return false;
  auto head = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  auto tail = [&](char c) { return head(c) || (c >= '0' && c <= '9'); };
  return head(x.front()) && std::all_of(x.begin() + 1, x.end(), tail);
}

std::string escape_help(std::string_view x) {
  std::string result;
  result.reserve(x.size());
  for (char c : x) {
    switch (c) {
      case '\\': result += "\\\\"; break;
      case '\n': result += "\\n"; break;
      default: result += c;
    }
  }
  return result;
}

/// Appends `{a="b",c="d"}` (with `extra` as the last pair, if any), or
/// nothing for an empty label set.
void append_labels(std::string& out, const labels& ls,
                   const std::pair<std::string_view, std::string>* extra
                   = nullptr) {
  if (ls.empty() && extra == nullptr)
    return;
  out += '{';
  bool first = true;
  auto add = [&](std::string_view name, std::string_view value) {
    if (!first)
      out += ',';
    first = false;
    out += name;
    out += "=\"";
    out += escape_label_value(value);
    out += '"';
  };
  for (const auto& [name, value] : ls)
    add(name, value);
  if (extra != nullptr)
    add(extra->first, extra->second);
  out += '}';
}

void append_sample(std::string& out, std::string_view name,
                   std::string_view suffix, const labels& ls, double value,
                   const std::pair<std::string_view, std::string>* extra
                   = nullptr) {
  out += name;
  out += suffix;
  append_labels(out, ls, extra);
  out += ' ';
  out += format_value(value);
  out += '\n';
}

/// Evaluates a callback gauge; one that throws renders as NaN instead of
/// breaking the whole exposition.
double call_gauge(const std::function<double()>& fn) noexcept {
  try {
    return fn();
  } catch (...) {
    return std::numeric_limits<double>::quiet_NaN();
  }
}

} // namespace

// -- registry ------------------------------------------------------------------

struct registry::impl {
  struct series {
    labels ls;
    std::unique_ptr<counter> c;
    std::unique_ptr<gauge> g;
    std::unique_ptr<histogram> h;
    std::function<double()> fn;
  };

  struct family {
    std::string help;
    kind type;
    /// Registration order; series are never removed, so pointers are stable.
    std::vector<std::unique_ptr<series>> all;
    std::map<labels, series*> index;
  };

  mutable std::mutex mtx;
  std::map<std::string, family, std::less<>> families;

  /// Returns the series of `name` and `ls`, creating family and series as
  /// needed; `created` tells whether the series is new. Requires `mtx`.
  series& find_or_add(std::string_view name, std::string_view help, kind type,
                      labels ls, bool& created) {
    if (!is_metric_name(name))
      throw std::logic_error("invalid metric name: " + std::string{name});
    for (size_t i = 0; i < ls.size(); ++i) {
      if (!is_label_name(ls[i].first))
        throw std::logic_error("invalid label name " + ls[i].first
                               + " on metric " + std::string{name});
      if (type == kind::histogram && ls[i].first == "le")
        throw std::logic_error("label le is reserved on histogram "
                               + std::string{name});
      for (size_t j = 0; j < i; ++j)
        if (ls[j].first == ls[i].first)
          throw std::logic_error("duplicate label " + ls[i].first
                                 + " on metric " + std::string{name});
    }
    auto i = families.find(name);
    if (i == families.end())
      i = families.emplace(std::string{name}, family{std::string{help}, type, {}, {}})
            .first;
    else if (i->second.type != type)
      throw std::logic_error("metric " + std::string{name} + " registered as "
                             + std::string{type_name(i->second.type)}
                             + ", requested as "
                             + std::string{type_name(type)});
    auto& fam = i->second;
    if (auto j = fam.index.find(ls); j != fam.index.end()) {
      created = false;
      return *j->second;
    }
    created = true;
    auto s = std::make_unique<series>();
    s->ls = std::move(ls);
    auto* ptr = s.get();
    fam.index.emplace(ptr->ls, ptr);
    fam.all.push_back(std::move(s));
    return *ptr;
  }
};

registry::registry() : impl_(std::make_unique<impl>()) {
  // nop
}

registry::~registry() = default;

counter& registry::get_counter(std::string_view name, std::string_view help,
                               labels ls) {
  std::lock_guard guard{impl_->mtx};
  bool created = false;
  auto& s = impl_->find_or_add(name, help, kind::counter, std::move(ls), created);
  if (created)
    s.c = std::make_unique<counter>();
  return *s.c;
}

gauge& registry::get_gauge(std::string_view name, std::string_view help,
                           labels ls) {
  std::lock_guard guard{impl_->mtx};
  bool created = false;
  auto& s = impl_->find_or_add(name, help, kind::gauge, std::move(ls), created);
  if (created)
    s.g = std::make_unique<gauge>();
  if (!s.g)
    throw std::logic_error("gauge " + std::string{name}
                           + " with these labels is a callback gauge");
  return *s.g;
}

histogram& registry::get_histogram(std::string_view name, std::string_view help,
                                   labels ls, std::vector<double> upper_bounds) {
  // Validate the bounds before touching the registry.
  auto fresh = std::make_unique<histogram>(std::move(upper_bounds));
  std::lock_guard guard{impl_->mtx};
  bool created = false;
  auto& s = impl_->find_or_add(name, help, kind::histogram, std::move(ls),
                               created);
  if (created)
    s.h = std::move(fresh);
  return *s.h;
}

void registry::add_callback_gauge(std::string_view name, std::string_view help,
                                  labels ls, std::function<double()> fn) {
  if (!fn)
    throw std::logic_error("callback gauge " + std::string{name}
                           + " without a function");
  std::lock_guard guard{impl_->mtx};
  bool created = false;
  auto& s = impl_->find_or_add(name, help, kind::gauge, std::move(ls), created);
  if (!created && s.g)
    throw std::logic_error("gauge " + std::string{name}
                           + " with these labels is not a callback gauge");
  s.fn = std::move(fn);
}

std::vector<registry::sample> registry::collect() const {
  struct view {
    std::string name;
    kind type;
    const impl::series* s;
    std::function<double()> fn;
  };
  std::vector<view> views;
  {
    std::lock_guard guard{impl_->mtx};
    for (const auto& [name, fam] : impl_->families)
      for (const auto& s : fam.all)
        views.push_back({name, fam.type, s.get(), s->fn});
  }
  std::vector<sample> result;
  for (const auto& v : views) {
    switch (v.type) {
      case kind::counter:
        result.push_back({v.name, v.s->ls, true, v.s->c->value()});
        break;
      case kind::gauge:
        result.push_back(
          {v.name, v.s->ls, false, v.fn ? call_gauge(v.fn) : v.s->g->value()});
        break;
      case kind::histogram: {
        auto snap = v.s->h->read();
        result.push_back({v.name + "_count", v.s->ls, true,
                          static_cast<double>(snap.count)});
        result.push_back({v.name + "_sum", v.s->ls, true, snap.sum});
        break;
      }
    }
  }
  return result;
}

std::string registry::render() const {
  struct series_view {
    const impl::series* s;
    std::function<double()> fn;
  };
  struct family_view {
    std::string_view name;
    std::string_view help;
    kind type;
    std::vector<series_view> all;
  };
  // Copy the structure under the lock, then read values and call callbacks
  // without it: a callback may be slow or touch the registry itself. Names,
  // help texts and series live as long as the registry and never move.
  std::vector<family_view> fams;
  {
    std::lock_guard guard{impl_->mtx};
    fams.reserve(impl_->families.size());
    for (const auto& [name, fam] : impl_->families) {
      auto& fv = fams.emplace_back(family_view{name, fam.help, fam.type, {}});
      fv.all.reserve(fam.all.size());
      for (const auto& s : fam.all)
        fv.all.push_back(series_view{s.get(), s->fn});
    }
  }
  std::string out;
  for (const auto& fam : fams) {
    out += "# HELP ";
    out += fam.name;
    out += ' ';
    out += escape_help(fam.help);
    out += "\n# TYPE ";
    out += fam.name;
    out += ' ';
    out += type_name(fam.type);
    out += '\n';
    for (const auto& [s, fn] : fam.all) {
      switch (fam.type) {
        case kind::counter:
          append_sample(out, fam.name, "", s->ls, s->c->value());
          break;
        case kind::gauge:
          append_sample(out, fam.name, "", s->ls,
                        fn ? call_gauge(fn) : s->g->value());
          break;
        case kind::histogram: {
          auto snap = s->h->read();
          std::pair<std::string_view, std::string> le{"le", ""};
          for (size_t i = 0; i < snap.upper_bounds.size(); ++i) {
            le.second = format_value(snap.upper_bounds[i]);
            append_sample(out, fam.name, "_bucket", s->ls,
                          static_cast<double>(snap.cumulative_counts[i]), &le);
          }
          le.second = "+Inf";
          append_sample(out, fam.name, "_bucket", s->ls,
                        static_cast<double>(snap.count), &le);
          append_sample(out, fam.name, "_sum", s->ls, snap.sum);
          append_sample(out, fam.name, "_count", s->ls,
                        static_cast<double>(snap.count));
          break;
        }
      }
    }
  }
  return out;
}

} // namespace engram::metrics
