#include "runtime/openai_api.hpp"

#include <cstdlib>
#include <utility>

#include <boost/json.hpp>

namespace engram {

namespace json = boost::json;

namespace {

bool is_local_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

} // namespace

std::string openai_api_url(std::string_view base_url, std::string_view path) {
  std::string base{base_url};
  while (!base.empty() && base.back() == '/')
    base.pop_back();
  auto ends_with_v1
    = base.size() >= 3 && base.compare(base.size() - 3, 3, "/v1") == 0;
  base += ends_with_v1 ? "/" : "/v1/";
  base += path;
  return base;
}

caf::expected<openai_endpoint>
openai_endpoint::make(std::string url, openai_endpoint_options opts,
                      llm_environment env) {
  auto parsed = parse_url(url);
  if (!parsed)
    return make_error(errc::invalid_config, "invalid " + opts.kind
                                              + " base URL: "
                                              + message_of(parsed.error()));
  if (!env.getenv)
    env.getenv = [](const std::string& name) -> std::optional<std::string> {
      if (const char* value = std::getenv(name.c_str()))
        return std::string{value};
      return std::nullopt;
    };
  std::optional<std::string> key;
  if (!opts.api_key_env.empty())
    if (auto value = env.getenv(opts.api_key_env); value && !value->empty())
      key = std::move(*value);
  if (!key && !is_local_host(parsed->host))
    return make_error(errc::invalid_config,
                      "the openai " + opts.kind
                        + " provider needs an API key in the environment "
                          "variable "
                        + (opts.api_key_env.empty()
                             ? std::string{"(none configured)"}
                             : opts.api_key_env)
                        + ", which is not set (or empty)");
  if (!env.http) {
    auto client = outbound_http::make();
    if (!client)
      return std::move(client.error());
    env.http = std::move(*client);
  }
  if (!env.sleep)
    env.sleep = blocking_sleep();
  if (!env.clk)
    env.clk = &real_clock();
  openai_endpoint result;
  result.opts_ = std::move(opts);
  result.url_ = std::move(url);
  result.parsed_ = std::move(*parsed);
  result.key_ = std::move(key);
  result.env_ = std::move(env);
  return result;
}

caf::error openai_endpoint::fail(errc code, const std::string& what) const {
  return make_error(code, opts_.operation + " (" + parsed_.origin()
                            + "): " + what);
}

caf::expected<http_response>
openai_endpoint::post_json(std::string body) const {
  http_request req;
  req.method = "POST";
  req.url = url_;
  req.headers = {{"Content-Type", "application/json"},
                 {"Accept", "application/json"}};
  if (key_)
    req.headers.emplace_back("Authorization", "Bearer " + *key_);
  req.body = std::move(body);
  req.timeout = opts_.timeout;
  auto res = send_with_retries(*env_.http, req, opts_.retry, env_.sleep,
                               *env_.clk);
  if (!res)
    return fail(code_of(res.error()), message_of(res.error()));
  if (res->status < 200 || res->status > 299)
    return status_error(*res);
  return res;
}

caf::error openai_endpoint::status_error(const http_response& res) const {
  std::string detail;
  json::error_code ec;
  auto doc = json::parse(res.body, ec);
  if (!ec && doc.is_object())
    if (auto* err = doc.as_object().if_contains("error"))
      if (err->is_object())
        if (auto* msg = err->as_object().if_contains("message"))
          if (msg->is_string())
            detail = std::string{msg->as_string()};
  if (detail.empty())
    detail = res.body.substr(0, 200);
  auto what = "HTTP " + std::to_string(res.status) + ": " + detail;
  switch (res.status) {
    case 401:
    case 403:
      return fail(errc::unauthorized,
                  what + " (check the key in $" + opts_.api_key_env + ")");
    case 400:
    case 404:
    case 422:
      return fail(errc::invalid_argument, what);
    case 413:
      return fail(errc::too_large, what);
    default:
      return fail(errc::unspecified, what);
  }
}

} // namespace engram
