#include "http/router.hpp"

#include <algorithm>
#include <set>
#include <stdexcept>

#include <boost/beast/http/field.hpp>

namespace engram::http {

namespace {

struct segment {
  /// Parameter name without braces, or the literal text.
  std::string text;
  bool is_param = false;
};

bool is_param_name(std::string_view x) {
  return !x.empty() && std::all_of(x.begin(), x.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_';
  });
}

/// Splits `/a/b` into {"a", "b"}; `/` is one empty segment.
std::vector<std::string_view> split_segments(std::string_view path) {
  std::vector<std::string_view> result;
  path.remove_prefix(1);
  for (;;) {
    auto pos = path.find('/');
    result.push_back(path.substr(0, pos));
    if (pos == std::string_view::npos)
      return result;
    path.remove_prefix(pos + 1);
  }
}

std::vector<segment> parse_pattern(std::string_view pattern) {
  auto fail = [&](const std::string& why) {
    throw std::logic_error("invalid route pattern " + std::string{pattern}
                           + ": " + why);
  };
  if (pattern.empty() || pattern.front() != '/')
    fail("must start with /");
  std::vector<segment> result;
  if (pattern == "/") {
    result.push_back(segment{});
    return result;
  }
  std::set<std::string_view> names;
  for (auto seg : split_segments(pattern)) {
    if (seg.empty())
      fail("empty segment");
    if (seg.front() == '{') {
      if (seg.back() != '}' || !is_param_name(seg.substr(1, seg.size() - 2)))
        fail("a parameter segment is {name} with name in [A-Za-z0-9_]");
      auto name = seg.substr(1, seg.size() - 2);
      if (!names.insert(name).second)
        fail("duplicate parameter " + std::string{name});
      result.push_back(segment{std::string{name}, true});
    } else {
      if (seg.find_first_of("{}%?#") != std::string_view::npos)
        fail("literal segment with one of {}%?#");
      result.push_back(segment{std::string{seg}, false});
    }
  }
  return result;
}

/// A pattern's shape: literals as they are, parameters as `{}`.
std::string shape_of(const std::vector<segment>& segs) {
  std::string result;
  for (const auto& seg : segs) {
    result += '/';
    result += seg.is_param ? std::string{"{}"} : seg.text;
  }
  return result;
}

std::string allow_list(const std::set<verb>& methods) {
  std::vector<std::string_view> names;
  for (auto m : methods)
    names.push_back(boost::beast::http::to_string(m));
  std::sort(names.begin(), names.end());
  std::string result;
  for (auto name : names) {
    if (!result.empty())
      result += ", ";
    result += name;
  }
  return result;
}

} // namespace

struct router::route {
  std::string pattern;
  std::string shape;
  std::vector<segment> segments;
  std::map<verb, handler> handlers;

  /// Returns the handler for `method`, falling back from HEAD to GET.
  const handler* handler_for(verb method) const {
    if (auto i = handlers.find(method); i != handlers.end())
      return &i->second;
    if (method == verb::head)
      if (auto i = handlers.find(verb::get); i != handlers.end())
        return &i->second;
    return nullptr;
  }

  /// Returns whether `path` (decoded segments) matches, capturing parameters.
  bool matches(const std::vector<std::string>& path, path_params* params) const {
    if (path.size() != segments.size())
      return false;
    for (size_t i = 0; i < path.size(); ++i) {
      const auto& seg = segments[i];
      if (seg.is_param ? path[i].empty() : path[i] != seg.text)
        return false;
    }
    if (params != nullptr)
      for (size_t i = 0; i < path.size(); ++i)
        if (segments[i].is_param)
          (*params)[segments[i].text] = path[i];
    return true;
  }

  /// Orders routes so that a literal segment beats a parameter, left first.
  bool more_specific_than(const route& other) const {
    for (size_t i = 0; i < segments.size() && i < other.segments.size(); ++i)
      if (segments[i].is_param != other.segments[i].is_param)
        return !segments[i].is_param;
    return false;
  }
};

router::router() = default;
router::~router() = default;
router::router(router&&) noexcept = default;
router& router::operator=(router&&) noexcept = default;

void router::add(verb method, std::string_view pattern, handler h) {
  if (!h)
    throw std::logic_error("empty handler for route " + std::string{pattern});
  auto segs = parse_pattern(pattern);
  auto shape = shape_of(segs);
  auto i = std::find_if(routes_.begin(), routes_.end(),
                        [&](const auto& r) { return r->shape == shape; });
  if (i == routes_.end()) {
    auto r = std::make_unique<route>();
    r->pattern = std::string{pattern};
    r->shape = std::move(shape);
    r->segments = std::move(segs);
    routes_.push_back(std::move(r));
    i = routes_.end() - 1;
  } else if ((*i)->pattern != pattern) {
    throw std::logic_error("route pattern " + std::string{pattern}
                           + " conflicts with " + (*i)->pattern);
  }
  if (!(*i)->handlers.emplace(method, std::move(h)).second)
    throw std::logic_error("duplicate route "
                           + std::string{boost::beast::http::to_string(method)}
                           + " " + std::string{pattern});
}

router::match router::find(verb method, std::string_view path) const {
  match result;
  if (path.empty() || path.front() != '/') {
    result.error = error_response(status::bad_request, "bad_request",
                                  "the request target must be an absolute "
                                  "path such as /healthz");
    return result;
  }
  std::vector<std::string> decoded;
  for (auto seg : split_segments(path)) {
    auto x = percent_decode(seg);
    if (!x) {
      result.error = error_response(status::bad_request, "bad_request",
                                    "malformed percent-encoding in path "
                                      + std::string{path});
      return result;
    }
    decoded.push_back(std::move(*x));
  }
  const route* best = nullptr;
  const route* best_any = nullptr;
  std::set<verb> allowed;
  for (const auto& r : routes_) {
    if (!r->matches(decoded, nullptr))
      continue;
    if (best_any == nullptr || r->more_specific_than(*best_any))
      best_any = r.get();
    for (const auto& [m, h] : r->handlers)
      allowed.insert(m);
    if (r->handler_for(method) != nullptr
        && (best == nullptr || r->more_specific_than(*best)))
      best = r.get();
  }
  if (best != nullptr) {
    result.route = best->pattern;
    result.target = best->handler_for(method);
    best->matches(decoded, &result.params);
    return result;
  }
  if (best_any == nullptr) {
    result.error = error_response(status::not_found, "not_found",
                                  "no route for " + std::string{path});
    return result;
  }
  if (allowed.count(verb::get) > 0)
    allowed.insert(verb::head);
  auto allow = allow_list(allowed);
  result.route = best_any->pattern;
  result.error = error_response(status::method_not_allowed,
                                "method_not_allowed",
                                "method not allowed on " + std::string{path}
                                  + "; allowed: " + allow);
  result.error->set(boost::beast::http::field::allow, allow);
  return result;
}

void router::dispatch(request_context& ctx, responder respond) const {
  auto m = find(ctx.req.method(), ctx.path);
  ctx.route = m.route;
  if (m.target == nullptr) {
    respond(std::move(*m.error));
    return;
  }
  ctx.params = std::move(m.params);
  (*m.target)(ctx, std::move(respond));
}

std::pair<std::string_view, std::string_view>
split_target(std::string_view target) noexcept {
  auto pos = target.find('?');
  if (pos == std::string_view::npos)
    return {target, {}};
  return {target.substr(0, pos), target.substr(pos + 1)};
}

std::optional<std::string> percent_decode(std::string_view x) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  std::string result;
  result.reserve(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] != '%') {
      result += x[i];
      continue;
    }
    if (i + 2 >= x.size())
      return std::nullopt;
    auto hi = hex(x[i + 1]);
    auto lo = hex(x[i + 2]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    result += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return result;
}

} // namespace engram::http
