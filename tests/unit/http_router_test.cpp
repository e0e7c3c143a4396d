#include "http/router.hpp"

#include <optional>
#include <stdexcept>

#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>

using namespace engram::http;
namespace bhttp = boost::beast::http;

namespace {

/// Runs `r` on one request and returns the response it sends synchronously.
struct routed {
  std::optional<response> res;
  std::string route;
  path_params params;
};

routed run(const router& r, verb method, std::string target) {
  request req{method, target, 11};
  auto [path, query] = split_target(req.target());
  request_context ctx{req, {}, path, query, {}};
  routed result;
  r.dispatch(ctx, [&](response res) { result.res = std::move(res); });
  result.route = std::string{ctx.route};
  result.params = ctx.params;
  return result;
}

/// A handler that answers 200 with `name` as body.
handler named(std::string name) {
  return [name](request_context&, responder respond) {
    respond(json_response(status::ok, name));
  };
}

router sample_router() {
  router r;
  r.add(verb::get, "/healthz", named("healthz"));
  r.add(verb::get, "/api/projects", named("list"));
  r.add(verb::post, "/api/projects", named("create"));
  r.add(verb::get, "/api/projects/{id}", named("get"));
  r.add(verb::delete_, "/api/projects/{id}", named("delete"));
  r.add(verb::get, "/api/projects/stats", named("stats"));
  r.add(verb::get, "/api/projects/{id}/memories/{mid}", named("memory"));
  return r;
}

} // namespace

TEST(http_router, unknown_path_is_404_with_the_exact_body) {
  auto r = sample_router();
  auto out = run(r, verb::get, "/nope?x=1");
  ASSERT_TRUE(out.res);
  EXPECT_EQ(out.res->result(), status::not_found);
  EXPECT_EQ(out.res->body(),
            R"({"error":{"code":"not_found","message":"no route for /nope"}})");
  EXPECT_EQ((*out.res)[bhttp::field::content_type], "application/json");
  EXPECT_EQ(out.route, "unmatched");
}

TEST(http_router, trailing_slash_and_extra_segments_do_not_match) {
  auto r = sample_router();
  EXPECT_EQ(run(r, verb::get, "/healthz/").res->result(), status::not_found);
  EXPECT_EQ(run(r, verb::get, "/api/projects/1/x").res->result(),
            status::not_found);
  EXPECT_EQ(run(r, verb::get, "/api/projects//memories/2").res->result(),
            status::not_found);
}

TEST(http_router, known_path_with_another_method_is_405_with_allow) {
  auto r = sample_router();
  auto out = run(r, verb::put, "/api/projects/42");
  ASSERT_TRUE(out.res);
  EXPECT_EQ(out.res->result(), status::method_not_allowed);
  EXPECT_EQ((*out.res)[bhttp::field::allow], "DELETE, GET, HEAD");
  EXPECT_EQ(out.res->body(),
            R"({"error":{"code":"method_not_allowed","message":"method not allowed on /api/projects/42; allowed: DELETE, GET, HEAD"}})");
  EXPECT_EQ(out.route, "/api/projects/{id}");
}

TEST(http_router, allow_lists_methods_of_every_matching_pattern) {
  auto r = sample_router();
  // /api/projects/stats is matched by the literal route (GET) and by
  // /api/projects/{id} (GET, DELETE).
  auto out = run(r, verb::post, "/api/projects/stats");
  EXPECT_EQ(out.res->result(), status::method_not_allowed);
  EXPECT_EQ((*out.res)[bhttp::field::allow], "DELETE, GET, HEAD");
}

TEST(http_router, params_are_extracted_and_percent_decoded) {
  auto r = sample_router();
  auto out = run(r, verb::get, "/api/projects/my%20proj/memories/7?verbose=1");
  ASSERT_TRUE(out.res);
  EXPECT_EQ(out.res->body(), "memory");
  EXPECT_EQ(out.route, "/api/projects/{id}/memories/{mid}");
  EXPECT_EQ(out.params, (path_params{{"id", "my proj"}, {"mid", "7"}}));
}

TEST(http_router, literal_segment_beats_parameter) {
  auto r = sample_router();
  EXPECT_EQ(run(r, verb::get, "/api/projects/stats").res->body(), "stats");
  EXPECT_EQ(run(r, verb::get, "/api/projects/stat").res->body(), "get");
  // A method only the parameter route has still reaches it.
  auto out = run(r, verb::delete_, "/api/projects/stats");
  EXPECT_EQ(out.res->body(), "delete");
  EXPECT_EQ(out.params, (path_params{{"id", "stats"}}));
}

TEST(http_router, head_is_served_by_get) {
  auto r = sample_router();
  auto out = run(r, verb::head, "/healthz");
  ASSERT_TRUE(out.res);
  EXPECT_EQ(out.res->result(), status::ok);
  EXPECT_EQ(out.route, "/healthz");
  // But not where there is no GET.
  router only_post;
  only_post.add(verb::post, "/jobs", named("post"));
  auto denied = run(only_post, verb::head, "/jobs");
  EXPECT_EQ(denied.res->result(), status::method_not_allowed);
  EXPECT_EQ((*denied.res)[bhttp::field::allow], "POST");
}

TEST(http_router, an_explicit_head_handler_wins) {
  router r;
  r.add(verb::get, "/x", named("get"));
  r.add(verb::head, "/x", named("head"));
  EXPECT_EQ(run(r, verb::head, "/x").res->body(), "head");
}

TEST(http_router, root_pattern_matches_only_root) {
  router r;
  r.add(verb::get, "/", named("root"));
  EXPECT_EQ(run(r, verb::get, "/").res->body(), "root");
  EXPECT_EQ(run(r, verb::get, "/x").res->result(), status::not_found);
}

TEST(http_router, malformed_targets_are_400) {
  auto r = sample_router();
  auto out = run(r, verb::get, "/api/projects/%zz");
  EXPECT_EQ(out.res->result(), status::bad_request);
  EXPECT_EQ(out.route, "unmatched");
  EXPECT_EQ(run(r, verb::get, "http://host/healthz").res->result(),
            status::bad_request);
  EXPECT_EQ(run(r, verb::get, "/a%2").res->result(), status::bad_request);
}

TEST(http_router, handler_may_respond_later) {
  router r;
  responder saved;
  r.add(verb::get, "/later", [&](request_context&, responder respond) {
    saved = std::move(respond);
  });
  request req{verb::get, "/later", 11};
  request_context ctx{req, {}, "/later", "", {}};
  std::optional<response> got;
  r.dispatch(ctx, [&](response res) { got = std::move(res); });
  EXPECT_FALSE(got);
  saved(json_response(status::accepted, "{}"));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->result(), status::accepted);
}

TEST(http_router, bad_patterns_and_duplicates_are_logic_errors) {
  router r;
  auto h = named("x");
  EXPECT_THROW(r.add(verb::get, "healthz", h), std::logic_error);
  EXPECT_THROW(r.add(verb::get, "/a//b", h), std::logic_error);
  EXPECT_THROW(r.add(verb::get, "/a/", h), std::logic_error);
  EXPECT_THROW(r.add(verb::get, "/a/{}", h), std::logic_error);
  EXPECT_THROW(r.add(verb::get, "/a/{id", h), std::logic_error);
  EXPECT_THROW(r.add(verb::get, "/a/x{id}", h), std::logic_error);
  EXPECT_THROW(r.add(verb::get, "/a/{id}/{id}", h), std::logic_error);
  EXPECT_THROW(r.add(verb::get, "/a", handler{}), std::logic_error);
  r.add(verb::get, "/a/{id}", h);
  EXPECT_THROW(r.add(verb::get, "/a/{id}", h), std::logic_error);
  EXPECT_THROW(r.add(verb::post, "/a/{name}", h), std::logic_error);
  EXPECT_NO_THROW(r.add(verb::post, "/a/{id}", h));
}

TEST(http_router, split_target_and_percent_decode) {
  EXPECT_EQ(split_target("/a?b=c?d"),
            (std::pair<std::string_view, std::string_view>{"/a", "b=c?d"}));
  EXPECT_EQ(split_target("/a"),
            (std::pair<std::string_view, std::string_view>{"/a", ""}));
  EXPECT_EQ(percent_decode("a%2Fb%2fc+d"), "a/b/c+d");
  EXPECT_EQ(percent_decode("%"), std::nullopt);
  EXPECT_EQ(percent_decode("%4"), std::nullopt);
  EXPECT_EQ(percent_decode("%4g"), std::nullopt);
}
