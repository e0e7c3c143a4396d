#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/handler.hpp"

namespace engram::http {

/// Route label of requests that matched no route (for metrics).
inline constexpr std::string_view unmatched_route = "unmatched";

/// Maps (method, path pattern) to handlers. Patterns consist of literal
/// segments and `{name}` segments that match any one non-empty segment, e.g.
/// `/api/projects/{id}`; a literal segment beats a parameter. HEAD is served by
/// the GET handler wherever no HEAD handler is registered. Routes are added
/// before serving starts; matching is then thread-safe.
class router {
public:
  /// The outcome of matching one request.
  struct match {
    /// Route label for metrics: the pattern, or `unmatched`. Points into the
    /// router (or a string literal).
    std::string_view route = unmatched_route;
    /// The handler to call, or nullptr if `error` is to be sent instead.
    const handler* target = nullptr;
    /// Percent-decoded values of the pattern's parameters.
    path_params params;
    /// 404 `not_found`, 405 `method_not_allowed` (with `Allow`) or 400
    /// `bad_request` when `target` is null.
    std::optional<response> error;
  };

  router();
  ~router();
  router(router&&) noexcept;
  router& operator=(router&&) noexcept;

  /// Registers `h` for `method` on `pattern`. Throws std::logic_error for a
  /// malformed pattern, an empty handler, or a (method, pattern) pair that is
  /// already taken.
  void add(verb method, std::string_view pattern, handler h);

  /// Matches a request's method and path (without query).
  [[nodiscard]] match find(verb method, std::string_view path) const;

  /// Matches `ctx.req` by `ctx.path`, fills `ctx.params` and `ctx.route` and
  /// calls the handler, or responds with the error of the match.
  void dispatch(request_context& ctx, responder respond) const;

private:
  struct route;
  std::vector<std::unique_ptr<route>> routes_;
};

/// Splits a request target into path and query (without the `?`).
[[nodiscard]] std::pair<std::string_view, std::string_view>
split_target(std::string_view target) noexcept;

/// Decodes `%XX` escapes; returns nullopt for a malformed escape.
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view x);

} // namespace engram::http
