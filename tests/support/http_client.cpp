#include "tests/support/http_client.hpp"

#include <algorithm>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/span_body.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace engram::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

http_reply http_request(uint16_t port, const std::string& method,
                        const std::string& target, const std::string& body,
                        const std::map<std::string, std::string>& headers,
                        std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  stream.expires_after(timeout);
  stream.connect(asio::ip::tcp::endpoint{asio::ip::make_address("127.0.0.1"),
                                         port});
  // The body is sent from where it lies (bulk imports send many MB).
  http::request<http::span_body<const char>> req{http::string_to_verb(method),
                                                 target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers)
    req.set(k, v);
  req.body() = boost::beast::span<const char>{body.data(), body.size()};
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(stream, buffer, parser);
  auto res = parser.release();
  http_reply result;
  result.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    std::string name{field.name_string()};
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    result.headers[name] = std::string{field.value()};
  }
  result.body = res.body();
  beast::error_code ec;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  return result;
}

} // namespace engram::test
