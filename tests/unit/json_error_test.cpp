#include "http/json_error.hpp"

#include <gtest/gtest.h>

#include "http/handler.hpp"

using namespace engram;
using engram::http::error_body;
using engram::http::status;
using engram::http::status_for;

TEST(json_error, body_has_the_exact_format) {
  EXPECT_EQ(error_body("not_found", "no route for /x"),
            R"({"error":{"code":"not_found","message":"no route for /x"}})");
}

TEST(json_error, body_escapes_quotes_backslashes_newlines_and_controls) {
  EXPECT_EQ(error_body("bad", "say \"hi\"\\ now\nthen\ttab\x01"),
            R"({"error":{"code":"bad","message":"say \"hi\"\\ now\nthen\ttab\u0001"}})");
  EXPECT_EQ(error_body("a\"b", ""),
            R"({"error":{"code":"a\"b","message":""}})");
}

TEST(json_error, body_keeps_utf8) {
  EXPECT_EQ(error_body("x", "caf\xC3\xA9"),
            "{\"error\":{\"code\":\"x\",\"message\":\"caf\xC3\xA9\"}}");
}

TEST(json_error, status_for_maps_every_code) {
  EXPECT_EQ(status_for(errc::invalid_argument), status::bad_request);
  EXPECT_EQ(status_for(errc::invalid_config), status::bad_request);
  EXPECT_EQ(status_for(errc::unauthorized), status::unauthorized);
  EXPECT_EQ(status_for(errc::not_found), status::not_found);
  EXPECT_EQ(status_for(errc::conflict), status::conflict);
  EXPECT_EQ(status_for(errc::too_large), status::payload_too_large);
  EXPECT_EQ(status_for(errc::database_unavailable),
            status::service_unavailable);
  EXPECT_EQ(status_for(errc::schema_too_new), status::service_unavailable);
  EXPECT_EQ(status_for(errc::schema_outdated), status::service_unavailable);
  EXPECT_EQ(status_for(errc::shutting_down), status::service_unavailable);
  EXPECT_EQ(status_for(errc::timeout), status::gateway_timeout);
  EXPECT_EQ(status_for(errc::database_error), status::internal_server_error);
  EXPECT_EQ(status_for(errc::unspecified), status::internal_server_error);
  EXPECT_EQ(status_for(errc::process_failed), status::internal_server_error);
  EXPECT_EQ(status_for(errc::none), status::internal_server_error);
}

TEST(json_error, error_response_from_errc_uses_status_and_name) {
  auto res = http::error_response(errc::conflict, "project exists");
  EXPECT_EQ(res.result(), status::conflict);
  EXPECT_EQ(res[boost::beast::http::field::content_type], "application/json");
  EXPECT_EQ(res.body(),
            R"({"error":{"code":"conflict","message":"project exists"}})");
  EXPECT_EQ(res[boost::beast::http::field::content_length],
            std::to_string(res.body().size()));
}
