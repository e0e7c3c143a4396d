#include "runtime/outbound_http.hpp"

#include <deque>
#include <mutex>

#include <gtest/gtest.h>

#include "messages/errc.hpp"

using namespace engram;
using namespace std::chrono_literals;

namespace {

/// Fixed "now" for date arithmetic: Sun, 06 Nov 1994 08:49:00 GMT.
wall_time nov_6_1994_08_49() {
  return wall_time{std::chrono::sys_days{std::chrono::year{1994}
                                         / std::chrono::November / 6}
                     .time_since_epoch()
                   + 8h + 49min};
}

/// An http_client that answers from a script and counts calls.
class scripted_client final : public http_client {
public:
  void push(caf::expected<http_response> x) {
    script_.push_back(std::move(x));
  }

  caf::expected<http_response> send(const http_request& req) const override {
    std::lock_guard guard{mtx_};
    ++calls_;
    last_url_ = req.url;
    if (script_.empty())
      return make_error(errc::unspecified, "script exhausted");
    auto next = std::move(script_.front());
    script_.pop_front();
    return next;
  }

  int calls() const {
    std::lock_guard guard{mtx_};
    return calls_;
  }

private:
  mutable std::mutex mtx_;
  mutable std::deque<caf::expected<http_response>> script_;
  mutable int calls_ = 0;
  mutable std::string last_url_;
};

http_response response(unsigned status, http_headers headers = {},
                       std::string body = {}) {
  return http_response{status, std::move(headers), std::move(body)};
}

/// A sleep function that records the delays and never blocks.
struct recorded_sleep {
  std::vector<std::chrono::milliseconds> delays;
  bool keep_going = true;

  sleep_function fn() {
    return [this](std::chrono::milliseconds d) {
      delays.push_back(d);
      return keep_going;
    };
  }
};

http_request post(std::string url = "https://api.example.com/v1/x?secret=1") {
  http_request req;
  req.url = std::move(url);
  req.body = "{}";
  return req;
}

} // namespace

// -- parse_url ------------------------------------------------------------------

TEST(parse_url, splits_an_https_url_with_default_port) {
  auto u = parse_url("https://api.openai.com/v1/chat/completions");
  ASSERT_TRUE(u) << describe(u.error());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_TRUE(u->tls());
  EXPECT_EQ(u->host, "api.openai.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/v1/chat/completions");
  EXPECT_EQ(u->host_header(), "api.openai.com");
  EXPECT_EQ(u->origin(), "https://api.openai.com:443");
}

TEST(parse_url, keeps_port_and_query_and_drops_the_fragment) {
  auto u = parse_url("HTTP://Example.COM:8080/hook?token=a%20b#frag");
  ASSERT_TRUE(u) << describe(u.error());
  EXPECT_EQ(u->scheme, "http");
  EXPECT_FALSE(u->tls());
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/hook?token=a%20b");
  EXPECT_EQ(u->host_header(), "example.com:8080");
}

TEST(parse_url, an_empty_path_becomes_slash) {
  auto a = parse_url("http://127.0.0.1:9");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->target, "/");
  EXPECT_EQ(a->port, 9);
  auto b = parse_url("http://example.com?x=1");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->target, "/?x=1");
  EXPECT_EQ(b->port, 80);
}

TEST(parse_url, accepts_bracketed_ipv6) {
  auto u = parse_url("http://[::1]:8080/x");
  ASSERT_TRUE(u) << describe(u.error());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->host_header(), "[::1]:8080");
  EXPECT_EQ(u->origin(), "http://[::1]:8080");
}

TEST(parse_url, refuses_what_it_cannot_send) {
  for (const char* bad :
       {"", "example.com/x", "ftp://example.com/", "file:///etc/passwd",
        "https://", "https:///path", "https://user:pw@example.com/",
        "https://example.com:0/", "https://example.com:65536/",
        "https://example.com:8o/", "https://exa mple.com/",
        "https://example.com/a b", "https://example.com/\r\nX: y",
        "http://[::1/", "http://[zz::1]/", "https://exa$mple.com/"}) {
    auto u = parse_url(bad);
    EXPECT_FALSE(u) << "accepted: " << bad;
    if (!u) {
      EXPECT_EQ(code_of(u.error()), errc::invalid_argument) << bad;
    }
  }
}

// -- parse_retry_after ------------------------------------------------------------

TEST(parse_retry_after, reads_delta_seconds) {
  auto now = nov_6_1994_08_49();
  EXPECT_EQ(parse_retry_after("120", now), 120s);
  EXPECT_EQ(parse_retry_after(" 0 ", now), 0ms);
  EXPECT_EQ(parse_retry_after("1.5", now), 1500ms);
  EXPECT_EQ(parse_retry_after("2.25", now), 2250ms);
}

TEST(parse_retry_after, clamps_huge_values_to_thirty_days) {
  auto now = nov_6_1994_08_49();
  EXPECT_EQ(parse_retry_after("99999999999999999999999", now),
            std::chrono::milliseconds{std::chrono::hours{24 * 30}});
}

TEST(parse_retry_after, reads_the_three_http_date_formats) {
  auto now = nov_6_1994_08_49();
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 37s);
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), 37s);
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), 37s);
  EXPECT_EQ(parse_retry_after("Mon, 07 Nov 1994 08:49:00 GMT", now), 24h);
}

TEST(parse_retry_after, a_date_in_the_past_means_now) {
  auto now = nov_6_1994_08_49();
  EXPECT_EQ(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), 0ms);
}

TEST(parse_retry_after, refuses_garbage) {
  auto now = nov_6_1994_08_49();
  for (const char* bad :
       {"", "  ", "-1", "abc", "1.", "1.x", "10s", "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 30 Feb 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 94 08:49:37 GMT", "06 Nov 1994 08:49:37 GMT"})
    EXPECT_EQ(parse_retry_after(bad, now), std::nullopt) << bad;
}

// -- backoff and statuses ------------------------------------------------------------

TEST(backoff_delay, doubles_up_to_the_cap) {
  retry_options o{10, 100ms, 1s};
  EXPECT_EQ(backoff_delay(o, 1), 100ms);
  EXPECT_EQ(backoff_delay(o, 2), 200ms);
  EXPECT_EQ(backoff_delay(o, 3), 400ms);
  EXPECT_EQ(backoff_delay(o, 4), 800ms);
  EXPECT_EQ(backoff_delay(o, 5), 1s);
  EXPECT_EQ(backoff_delay(o, 2147483647), 1s);
  EXPECT_EQ(backoff_delay(retry_options{3, 5s, 1s}, 1), 1s);
}

TEST(is_retryable_status, covers_408_429_and_5xx_only) {
  for (unsigned s : {408u, 429u, 500u, 502u, 503u, 504u, 599u})
    EXPECT_TRUE(is_retryable_status(s)) << s;
  for (unsigned s : {200u, 201u, 204u, 301u, 400u, 401u, 403u, 404u, 413u, 600u})
    EXPECT_FALSE(is_retryable_status(s)) << s;
}

TEST(requested_delay, prefers_retry_after_ms_and_caps_at_max_delay) {
  retry_options o{3, 100ms, 5s};
  auto now = nov_6_1994_08_49();
  EXPECT_EQ(requested_delay(response(429, {{"retry-after-ms", "250"},
                                           {"Retry-After", "1"}}),
                            o, now),
            250ms);
  EXPECT_EQ(requested_delay(response(429, {{"RETRY-AFTER", "2"}}), o, now), 2s);
  EXPECT_EQ(requested_delay(response(503, {{"Retry-After", "3600"}}), o, now), 5s);
  EXPECT_EQ(requested_delay(response(503), o, now), std::nullopt);
  EXPECT_EQ(requested_delay(response(503, {{"Retry-After", "soon"}}), o, now),
            std::nullopt);
}

TEST(http_response, header_lookup_ignores_case) {
  auto r = response(200, {{"Content-Type", "text/plain"}, {"X-A", "1"}, {"x-a", "2"}});
  EXPECT_EQ(r.header("content-type"), "text/plain");
  EXPECT_EQ(r.header("X-A"), "1");
  EXPECT_EQ(r.header("missing"), "");
}

// -- send_with_retries -----------------------------------------------------------------

TEST(send_with_retries, returns_the_first_success_without_sleeping) {
  scripted_client client;
  client.push(response(200, {}, "ok"));
  recorded_sleep sleep;
  auto res = send_with_retries(client, post(), {3, 100ms, 1s}, sleep.fn());
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->body, "ok");
  EXPECT_EQ(client.calls(), 1);
  EXPECT_TRUE(sleep.delays.empty());
}

TEST(send_with_retries, backs_off_exponentially_on_5xx) {
  scripted_client client;
  client.push(response(503));
  client.push(response(502));
  client.push(response(200, {}, "finally"));
  recorded_sleep sleep;
  auto res = send_with_retries(client, post(), {5, 100ms, 1s}, sleep.fn());
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->body, "finally");
  EXPECT_EQ(client.calls(), 3);
  EXPECT_EQ(sleep.delays, (std::vector<std::chrono::milliseconds>{100ms, 200ms}));
}

TEST(send_with_retries, honours_retry_after_capped_by_max_delay) {
  scripted_client client;
  client.push(response(429, {{"Retry-After", "2"}}));
  client.push(response(429, {{"Retry-After", "120"}}));
  client.push(response(200));
  recorded_sleep sleep;
  auto res = send_with_retries(client, post(), {3, 100ms, 10s}, sleep.fn());
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->status, 200u);
  EXPECT_EQ(sleep.delays, (std::vector<std::chrono::milliseconds>{2s, 10s}));
}

TEST(send_with_retries, honours_an_http_date_retry_after_against_the_clock) {
  manual_clock clk{nov_6_1994_08_49()};
  scripted_client client;
  client.push(response(503, {{"Retry-After", "Sun, 06 Nov 1994 08:49:07 GMT"}}));
  client.push(response(204));
  recorded_sleep sleep;
  auto res = send_with_retries(client, post(), {3, 100ms, 1min}, sleep.fn(), clk);
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->status, 204u);
  EXPECT_EQ(sleep.delays, (std::vector<std::chrono::milliseconds>{7s}));
}

TEST(send_with_retries, gives_a_retryable_error_after_max_attempts) {
  scripted_client client;
  for (int i = 0; i < 5; ++i)
    client.push(response(500, {}, "internal oops"));
  recorded_sleep sleep;
  auto res = send_with_retries(client, post(), {3, 100ms, 1s}, sleep.fn());
  ASSERT_FALSE(res);
  EXPECT_EQ(client.calls(), 3);
  EXPECT_EQ(sleep.delays.size(), 2u);
  EXPECT_TRUE(is_retryable(res.error()));
  auto msg = message_of(res.error());
  EXPECT_NE(msg.find("HTTP 500"), std::string::npos) << msg;
  EXPECT_NE(msg.find("internal oops"), std::string::npos) << msg;
  EXPECT_NE(msg.find("https://api.example.com:443"), std::string::npos) << msg;
  // The query (often a secret) never shows up in errors.
  EXPECT_EQ(msg.find("secret"), std::string::npos) << msg;
}

TEST(send_with_retries, retries_retryable_errors_and_not_others) {
  {
    scripted_client client;
    client.push(make_error(errc::timeout, "slow"));
    client.push(make_error(errc::unavailable, "refused"));
    client.push(response(200));
    recorded_sleep sleep;
    auto res = send_with_retries(client, post(), {3, 10ms, 1s}, sleep.fn());
    ASSERT_TRUE(res) << describe(res.error());
    EXPECT_EQ(client.calls(), 3);
    EXPECT_EQ(sleep.delays, (std::vector<std::chrono::milliseconds>{10ms, 20ms}));
  }
  {
    scripted_client client;
    client.push(make_error(errc::invalid_config, "bad certificate"));
    client.push(response(200));
    recorded_sleep sleep;
    auto res = send_with_retries(client, post(), {3, 10ms, 1s}, sleep.fn());
    ASSERT_FALSE(res);
    EXPECT_EQ(code_of(res.error()), errc::invalid_config);
    EXPECT_EQ(client.calls(), 1);
    EXPECT_TRUE(sleep.delays.empty());
  }
  {
    scripted_client client;
    for (int i = 0; i < 3; ++i)
      client.push(make_error(errc::timeout, "slow"));
    recorded_sleep sleep;
    auto res = send_with_retries(client, post(), {2, 10ms, 1s}, sleep.fn());
    ASSERT_FALSE(res);
    EXPECT_EQ(code_of(res.error()), errc::timeout);
    EXPECT_EQ(client.calls(), 2);
  }
}

TEST(send_with_retries, returns_client_errors_without_retrying) {
  scripted_client client;
  client.push(response(404, {}, "no such hook"));
  client.push(response(200));
  recorded_sleep sleep;
  auto res = send_with_retries(client, post(), {3, 10ms, 1s}, sleep.fn());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404u);
  EXPECT_EQ(client.calls(), 1);
}

TEST(send_with_retries, stops_when_sleep_says_so) {
  scripted_client client;
  client.push(response(503));
  client.push(response(200));
  recorded_sleep sleep;
  sleep.keep_going = false;
  auto res = send_with_retries(client, post(), {3, 10ms, 1s}, sleep.fn());
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::shutting_down);
  EXPECT_EQ(client.calls(), 1);
}

TEST(send_with_retries, makes_at_least_one_attempt) {
  scripted_client client;
  client.push(response(503));
  recorded_sleep sleep;
  auto res = send_with_retries(client, post(), {0, 10ms, 1s}, sleep.fn());
  ASSERT_FALSE(res);
  EXPECT_EQ(client.calls(), 1);
  EXPECT_TRUE(sleep.delays.empty());
}

// -- request validation (no network: refused before connecting) ------------------------

TEST(outbound_http, refuses_bad_requests_before_connecting) {
  auto client = outbound_http::make();
  ASSERT_TRUE(client) << describe(client.error());
  auto send = [&](http_request req) {
    req.timeout = 200ms;
    auto res = (*client)->send(req);
    EXPECT_FALSE(res);
    return res ? errc::none : code_of(res.error());
  };
  EXPECT_EQ(send(post("gopher://example.com/")), errc::invalid_argument);
  auto injected = post("http://127.0.0.1:9/");
  injected.headers = {{"X-Evil", "a\r\nX-Injected: 1"}};
  EXPECT_EQ(send(injected), errc::invalid_argument);
  auto bad_name = post("http://127.0.0.1:9/");
  bad_name.headers = {{"Bad Name", "x"}};
  EXPECT_EQ(send(bad_name), errc::invalid_argument);
  auto length = post("http://127.0.0.1:9/");
  length.headers = {{"Content-Length", "5"}};
  EXPECT_EQ(send(length), errc::invalid_argument);
  auto method = post("http://127.0.0.1:9/");
  method.method = "FROB";
  EXPECT_EQ(send(method), errc::invalid_argument);
}

TEST(outbound_http, refuses_a_missing_ca_file) {
  outbound_http_options opts;
  opts.ca_file = "/nonexistent/ca.pem";
  auto client = outbound_http::make(opts);
  ASSERT_FALSE(client);
  EXPECT_EQ(code_of(client.error()), errc::invalid_config);
}
