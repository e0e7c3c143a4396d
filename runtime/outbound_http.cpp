#include "runtime/outbound_http.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <condition_variable>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>
#include <type_traits>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "runtime/ascii.hpp"

namespace engram {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// -- small string helpers ------------------------------------------------------

char lower(char c) noexcept {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size()
         && std::equal(a.begin(), a.end(), b.begin(),
                       [](char x, char y) { return lower(x) == lower(y); });
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

bool all_digits(std::string_view x) noexcept {
  return !x.empty() && std::all_of(x.begin(), x.end(), is_digit);
}

std::string_view trim(std::string_view x) noexcept {
  while (!x.empty() && (x.front() == ' ' || x.front() == '\t'))
    x.remove_prefix(1);
  while (!x.empty() && (x.back() == ' ' || x.back() == '\t'))
    x.remove_suffix(1);
  return x;
}

// An RFC 9110 token character (header names, methods).
bool is_tchar(char c) noexcept {
  if (std::isalnum(static_cast<unsigned char>(c)))
    return true;
  return std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

/// The first `n` bytes of `body`, for error messages.
std::string excerpt(std::string_view body, size_t n = 200) {
  std::string result{body.substr(0, n)};
  for (auto& c : result)
    if (static_cast<unsigned char>(c) < 0x20)
      c = ' ';
  if (body.size() > n)
    result += "…";
  return result;
}

// -- HTTP dates -----------------------------------------------------------------

std::optional<unsigned> month_of(std::string_view name) noexcept {
  static constexpr std::array<std::string_view, 12> names{
    "jan", "feb", "mar", "apr", "may", "jun",
    "jul", "aug", "sep", "oct", "nov", "dec"};
  for (unsigned i = 0; i < names.size(); ++i)
    if (iequals(name, names[i]))
      return i + 1;
  return std::nullopt;
}

bool is_day_name(std::string_view x) noexcept {
  return x.size() >= 3
         && std::all_of(x.begin(), x.end(), [](char c) {
              return std::isalpha(static_cast<unsigned char>(c)) != 0;
            });
}

/// "HH:MM:SS" as seconds of the day.
std::optional<std::chrono::seconds> time_of_day(std::string_view x) noexcept {
  if (x.size() != 8 || x[2] != ':' || x[5] != ':')
    return std::nullopt;
  auto two = [&](size_t pos) -> int {
    if (!is_digit(x[pos]) || !is_digit(x[pos + 1]))
      return -1;
    return (x[pos] - '0') * 10 + (x[pos + 1] - '0');
  };
  auto h = two(0), m = two(3), s = two(6);
  if (h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 60)
    return std::nullopt;
  return std::chrono::seconds{h * 3600 + m * 60 + s};
}

std::optional<int> number(std::string_view x) noexcept {
  if (!all_digits(x) || x.size() > 4)
    return std::nullopt;
  int result = 0;
  for (char c : x)
    result = result * 10 + (c - '0');
  return result;
}

std::optional<wall_time> make_time(int year, std::optional<unsigned> month,
                                   std::optional<int> day,
                                   std::optional<std::chrono::seconds> tod) {
  if (!month || !day || !tod)
    return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year{year},
                                  std::chrono::month{*month},
                                  std::chrono::day{static_cast<unsigned>(*day)}};
  if (!ymd.ok())
    return std::nullopt;
  return wall_time{std::chrono::sys_days{ymd}.time_since_epoch() + *tod};
}

/// Parses the three HTTP-date formats of RFC 9110 §5.6.7.
std::optional<wall_time> parse_http_date(std::string_view x, wall_time now) {
  std::vector<std::string_view> tok;
  while (!x.empty()) {
    auto pos = x.find(' ');
    auto part = x.substr(0, pos);
    if (!part.empty())
      tok.push_back(part);
    if (pos == std::string_view::npos)
      break;
    x.remove_prefix(pos + 1);
  }
  auto comma_day = [&] {
    return tok[0].size() > 1 && tok[0].back() == ','
           && is_day_name(tok[0].substr(0, tok[0].size() - 1));
  };
  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
  if (tok.size() == 6 && comma_day() && tok[5] == "GMT") {
    auto year = number(tok[3]);
    if (!year || tok[3].size() != 4 || tok[1].size() != 2)
      return std::nullopt;
    return make_time(*year, month_of(tok[2]), number(tok[1]),
                     time_of_day(tok[4]));
  }
  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
  if (tok.size() == 4 && comma_day() && tok[3] == "GMT") {
    auto date = tok[1];
    if (date.size() != 9 || date[2] != '-' || date[6] != '-')
      return std::nullopt;
    auto yy = number(date.substr(7, 2));
    if (!yy)
      return std::nullopt;
    // RFC 9110: a two-digit year that would lie more than 50 years in the
    // future means the most recent past year with those digits.
    auto this_year = static_cast<int>(
      std::chrono::year_month_day{std::chrono::floor<std::chrono::days>(now)}
        .year());
    auto year = this_year - this_year % 100 + *yy;
    if (year > this_year + 50)
      year -= 100;
    return make_time(year, month_of(date.substr(3, 3)),
                     number(date.substr(0, 2)), time_of_day(tok[2]));
  }
  // asctime: Sun Nov  6 08:49:37 1994
  if (tok.size() == 5 && is_day_name(tok[0])) {
    auto year = number(tok[4]);
    if (!year || tok[4].size() != 4 || tok[2].size() > 2)
      return std::nullopt;
    return make_time(*year, month_of(tok[1]), number(tok[2]),
                     time_of_day(tok[3]));
  }
  return std::nullopt;
}

constexpr std::chrono::milliseconds max_retry_after
  = std::chrono::hours{24 * 30};

// -- the exchange ----------------------------------------------------------------

using clock_type = std::chrono::steady_clock;

/// Resolves `host` in a detached thread, so that a resolver stuck in
/// getaddrinfo cannot hold the caller past its deadline (Asio's resolver
/// joins its worker thread on destruction, which would).
caf::expected<std::vector<tcp::endpoint>>
resolve(const parsed_url& url, clock_type::time_point deadline,
        std::chrono::milliseconds timeout) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(url.host, ec);
  if (!ec)
    return std::vector<tcp::endpoint>{tcp::endpoint{addr, url.port}};
  struct shared_state {
    std::mutex mtx;
    std::condition_variable cv;
    bool done = false;
    boost::system::error_code ec;
    std::vector<tcp::endpoint> endpoints;
  };
  auto st = std::make_shared<shared_state>();
  std::thread{[st, host = url.host, port = std::to_string(url.port)] {
    asio::io_context ioc;
    tcp::resolver resolver{ioc};
    boost::system::error_code ec;
    auto results = resolver.resolve(host, port, ec);
    std::vector<tcp::endpoint> endpoints;
    if (!ec)
      for (const auto& entry : results)
        endpoints.push_back(entry.endpoint());
    std::lock_guard guard{st->mtx};
    st->ec = ec;
    st->endpoints = std::move(endpoints);
    st->done = true;
    st->cv.notify_all();
  }}.detach();
  std::unique_lock guard{st->mtx};
  if (!st->cv.wait_until(guard, deadline, [&] { return st->done; }))
    return make_error(errc::timeout,
                      url.origin() + ": timed out after "
                        + std::to_string(timeout.count())
                        + " ms while resolving the host name");
  if (st->ec)
    return make_error(errc::unavailable,
                      url.origin() + ": cannot resolve the host name: "
                        + st->ec.message());
  if (st->endpoints.empty())
    return make_error(errc::unavailable,
                      url.origin() + ": the host name has no address");
  return std::move(st->endpoints);
}

/// One request/response over a fresh connection, as Asio callbacks in
/// do_x/on_x steps. Lives on the caller's stack while its io_context runs.
template <class Stream>
class exchange {
public:
  static constexpr bool with_tls
    = !std::is_same_v<Stream, beast::tcp_stream>;

  exchange(Stream& stream, http::request<http::string_body>& req,
           const outbound_http_options& opts)
    : stream_{stream}, req_{req} {
    parser_.body_limit(opts.body_limit);
    parser_.header_limit(static_cast<uint32_t>(
      std::min<size_t>(opts.header_limit, std::numeric_limits<uint32_t>::max())));
    if (req.method() == http::verb::head)
      parser_.skip(true);
  }

  void start(const std::vector<tcp::endpoint>& endpoints) {
    phase_ = "while connecting";
    beast::get_lowest_layer(stream_).async_connect(
      endpoints, [this](const beast::error_code& ec, const tcp::endpoint&) {
        on_connect(ec);
      });
  }

  /// Closes the socket: every pending step completes with an error.
  void abort() {
    if (!result_)
      result_ = beast::error::timeout;
    beast::get_lowest_layer(stream_).close();
  }

  [[nodiscard]] bool finished() const noexcept { return result_.has_value(); }
  [[nodiscard]] beast::error_code result() const { return *result_; }
  [[nodiscard]] const char* phase() const noexcept { return phase_; }
  [[nodiscard]] http::response_parser<http::string_body>& parser() {
    return parser_;
  }

private:
  void finish(const beast::error_code& ec) {
    if (!result_)
      result_ = ec;
  }

  void on_connect(const beast::error_code& ec) {
    if (ec)
      return finish(ec);
    if constexpr (with_tls) {
      phase_ = "during the TLS handshake";
      stream_.async_handshake(ssl::stream_base::client,
                              [this](const beast::error_code& ec) {
                                on_handshake(ec);
                              });
    } else {
      do_write();
    }
  }

  void on_handshake(const beast::error_code& ec) {
    if (ec)
      return finish(ec);
    do_write();
  }

  void do_write() {
    phase_ = "while sending the request";
    http::async_write(stream_, req_,
                      [this](const beast::error_code& ec, size_t) {
                        on_write(ec);
                      });
  }

  void on_write(const beast::error_code& ec) {
    if (ec)
      return finish(ec);
    phase_ = "while reading the response";
    http::async_read(stream_, buffer_, parser_,
                     [this](const beast::error_code& ec, size_t) {
                       on_read(ec);
                     });
  }

  void on_read(const beast::error_code& ec) {
    // A TLS peer that closes without close_notify after a complete
    // response is common and harmless.
    if (ec == ssl::error::stream_truncated && parser_.is_done())
      return finish({});
    finish(ec);
  }

  Stream& stream_;
  http::request<http::string_body>& req_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  std::optional<beast::error_code> result_;
  const char* phase_ = "while connecting";
};

bool is_http_parse_error(const beast::error_code& ec) {
  return ec.category() == beast::http::make_error_code(http::error::bad_version)
                            .category();
}

/// Turns a failed exchange into an errc with a message for the operator.
caf::error
transport_error(const parsed_url& url, const char* phase,
                const beast::error_code& ec, std::chrono::milliseconds timeout,
                const outbound_http_options& opts, SSL* ssl_handle) {
  auto where = url.origin() + ": ";
  if (ec == beast::error::timeout)
    return make_error(errc::timeout, where + "timed out after "
                                       + std::to_string(timeout.count())
                                       + " ms " + phase);
  if (ec == http::error::body_limit)
    return make_error(errc::too_large,
                      where + "the response body exceeds the limit of "
                        + std::to_string(opts.body_limit) + " bytes");
  if (ec == http::error::header_limit)
    return make_error(errc::too_large,
                      where + "the response header exceeds the limit of "
                        + std::to_string(opts.header_limit) + " bytes");
  if (ec == http::error::end_of_stream || ec == http::error::partial_message)
    return make_error(errc::unavailable,
                      where + "the server closed the connection " + phase);
  if (is_http_parse_error(ec))
    return make_error(errc::unspecified,
                      where + "malformed HTTP response: " + ec.message());
  if (ssl_handle != nullptr && ec.category() == asio::error::get_ssl_category()) {
    auto verify = SSL_get_verify_result(ssl_handle);
    if (verify != X509_V_OK)
      return make_error(errc::invalid_config,
                        where + "TLS certificate verification failed: "
                          + X509_verify_cert_error_string(verify));
    return make_error(errc::invalid_config,
                      where + "TLS handshake failed: " + ec.message());
  }
  if (std::string_view{phase} == "while connecting")
    return make_error(errc::unavailable,
                      where + "cannot connect: " + ec.message());
  return make_error(errc::unavailable,
                    where + "connection failed " + phase + ": "
                      + ec.message());
}

caf::expected<http::request<http::string_body>>
make_beast_request(const http_request& in, const parsed_url& url,
                   const outbound_http_options& opts) {
  auto verb = http::string_to_verb(in.method);
  if (verb == http::verb::unknown)
    return make_error(errc::invalid_argument,
                      "unsupported HTTP method '" + excerpt(in.method, 40) + "'");
  http::request<http::string_body> req{verb, url.target, 11};
  req.set(http::field::host, url.host_header());
  req.set(http::field::user_agent, opts.user_agent);
  req.set(http::field::connection, "close");
  for (const auto& [name, value] : in.headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_tchar))
      return make_error(errc::invalid_argument,
                        "invalid HTTP header name '" + excerpt(name, 40) + "'");
    if (value.find_first_of(std::string_view{"\r\n\0", 3}) != std::string::npos)
      return make_error(errc::invalid_argument,
                        "the value of HTTP header '" + name
                          + "' contains CR, LF or NUL");
    if (iequals(name, "host") || iequals(name, "content-length")
        || iequals(name, "transfer-encoding"))
      return make_error(errc::invalid_argument,
                        "HTTP header '" + name
                          + "' is set by the client and cannot be given");
  }
  // Replace defaults by name, then keep repeated caller headers in order.
  for (const auto& [name, value] : in.headers)
    req.erase(name);
  for (const auto& [name, value] : in.headers)
    req.insert(name, value);
  req.body() = in.body;
  req.prepare_payload();
  return req;
}

http_response to_response(http::response<http::string_body>&& res) {
  http_response result;
  result.status = res.result_int();
  for (const auto& field : res)
    result.headers.emplace_back(std::string{field.name_string()},
                                std::string{field.value()});
  result.body = std::move(res.body());
  return result;
}

} // namespace

// -- headers, URLs, Retry-After ------------------------------------------------

std::string find_header(const http_headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (iequals(k, name))
      return v;
  return {};
}

std::string http_response::header(std::string_view name) const {
  return find_header(headers, name);
}

std::string parsed_url::origin() const {
  auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return scheme + "://" + h + ":" + std::to_string(port);
}

std::string parsed_url::host_header() const {
  auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if ((tls() && port == 443) || (!tls() && port == 80))
    return h;
  return h + ":" + std::to_string(port);
}

caf::expected<parsed_url> parse_url(std::string_view url) {
  auto fail = [&](std::string why) {
    return make_error(errc::invalid_argument,
                      "invalid URL '" + excerpt(url, 100) + "': " + why);
  };
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return fail("whitespace or control character");
  auto sep = url.find("://");
  if (sep == std::string_view::npos)
    return fail("expected scheme://host");
  parsed_url result;
  result.scheme = ascii_lower(url.substr(0, sep));
  if (result.scheme != "http" && result.scheme != "https")
    return fail("unsupported scheme '" + result.scheme
                + "' (only http and https)");
  auto rest = url.substr(sep + 3);
  auto authority_end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, authority_end);
  auto tail = authority_end == std::string_view::npos
                ? std::string_view{}
                : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos)
    return fail("credentials in the URL are not supported (use a header)");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      return fail("unterminated IPv6 address");
    result.host = ascii_lower(authority.substr(1, close - 1));
    boost::system::error_code ec;
    asio::ip::make_address_v6(result.host, ec);
    if (ec)
      return fail("invalid IPv6 address");
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return fail("unexpected text after the IPv6 address");
      port_text = after.substr(1);
    }
  } else {
    auto colon = authority.find(':');
    result.host = ascii_lower(authority.substr(0, colon));
    if (colon != std::string_view::npos)
      port_text = authority.substr(colon + 1);
    auto host_char = [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-'
             || c == '.' || c == '_';
    };
    if (!std::all_of(result.host.begin(), result.host.end(), host_char))
      return fail("invalid character in the host name");
  }
  if (result.host.empty())
    return fail("missing host");
  if (port_text.empty()) {
    result.port = result.tls() ? 443 : 80;
  } else {
    if (!all_digits(port_text) || port_text.size() > 5)
      return fail("invalid port");
    auto port = std::stoul(std::string{port_text});
    if (port == 0 || port > 65535)
      return fail("port out of range");
    result.port = static_cast<uint16_t>(port);
  }
  if (auto hash = tail.find('#'); hash != std::string_view::npos)
    tail = tail.substr(0, hash);
  result.target = std::string{tail};
  if (result.target.empty() || result.target.front() != '/')
    result.target.insert(0, "/");
  return result;
}

std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value, wall_time now) {
  value = trim(value);
  if (value.empty())
    return std::nullopt;
  if (is_digit(value.front())) {
    auto dot = value.find('.');
    auto whole = value.substr(0, dot);
    auto frac = dot == std::string_view::npos ? std::string_view{}
                                              : value.substr(dot + 1);
    if (!all_digits(whole)
        || (dot != std::string_view::npos && !all_digits(frac)))
      return std::nullopt;
    constexpr auto limit = max_retry_after.count();
    int64_t ms = 0;
    for (char c : whole) {
      ms = ms * 10 + (c - '0');
      if (ms > limit)
        return max_retry_after;
    }
    ms *= 1000;
    int64_t scale = 100;
    for (size_t i = 0; i < frac.size() && scale > 0; ++i, scale /= 10)
      ms += (frac[i] - '0') * scale;
    return std::chrono::milliseconds{std::min(ms, limit)};
  }
  auto when = parse_http_date(value, now);
  if (!when)
    return std::nullopt;
  if (*when <= now)
    return std::chrono::milliseconds{0};
  auto delta = std::chrono::duration_cast<std::chrono::milliseconds>(*when - now);
  return std::min(delta, max_retry_after);
}

// -- outbound_http ---------------------------------------------------------------

struct outbound_http::impl {
  ssl::context tls{ssl::context::tls_client};
};

outbound_http::outbound_http(outbound_http_options opts,
                             std::unique_ptr<impl> pimpl)
  : opts_{std::move(opts)}, impl_{std::move(pimpl)} {
}

outbound_http::~outbound_http() = default;

caf::expected<std::shared_ptr<outbound_http>>
outbound_http::make(outbound_http_options opts) {
  try {
    auto pimpl = std::make_unique<impl>();
    auto& ctx = pimpl->tls;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                    | ssl::context::no_sslv3 | ssl::context::no_tlsv1
                    | ssl::context::no_tlsv1_1);
    ctx.set_default_verify_paths();
    if (!opts.ca_file.empty())
      ctx.load_verify_file(opts.ca_file);
    ctx.set_verify_mode(ssl::verify_peer);
    return std::shared_ptr<outbound_http>{
      new outbound_http{std::move(opts), std::move(pimpl)}};
  } catch (const std::exception& e) {
    return make_error(errc::invalid_config,
                      std::string{"cannot set up TLS for outbound HTTP: "}
                        + e.what());
  }
}

caf::expected<http_response>
outbound_http::send(const http_request& in) const {
  try {
    auto url = parse_url(in.url);
    if (!url)
      return std::move(url.error());
    auto req = make_beast_request(in, *url, opts_);
    if (!req)
      return std::move(req.error());
    auto timeout = std::max(in.timeout, std::chrono::milliseconds{1});
    auto deadline = clock_type::now() + timeout;
    auto endpoints = resolve(*url, deadline, timeout);
    if (!endpoints)
      return std::move(endpoints.error());
    asio::io_context ioc{1};
    auto run = [&](auto& stream, SSL* ssl_handle)
      -> caf::expected<http_response> {
      exchange<std::remove_reference_t<decltype(stream)>> x{stream, *req,
                                                           opts_};
      beast::get_lowest_layer(stream).expires_at(deadline);
      x.start(*endpoints);
      // The stream's own timer ends every step at the deadline; the bound
      // on run_for is a backstop should a step ever escape it.
      ioc.run_for(timeout + 1s);
      if (!x.finished()) {
        x.abort();
        ioc.restart();
        ioc.run();
      }
      if (auto ec = x.result())
        return transport_error(*url, x.phase(), ec, timeout, opts_,
                               ssl_handle);
      return to_response(x.parser().release());
    };
    if (!url->tls()) {
      beast::tcp_stream stream{ioc};
      return run(stream, nullptr);
    }
    beast::ssl_stream<beast::tcp_stream> stream{ioc, impl_->tls};
    auto* handle = stream.native_handle();
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(url->host, ec);
    if (ec) {
      // SNI, and the certificate must name this host.
      if (SSL_set_tlsext_host_name(handle, url->host.c_str()) != 1
          || SSL_set1_host(handle, url->host.c_str()) != 1)
        return make_error(errc::invalid_config,
                          url->origin() + ": cannot set the TLS host name");
      SSL_set_hostflags(handle, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    } else {
      // An IP literal: no SNI; the certificate must name the address.
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle),
                                        ip.to_string().c_str())
          != 1)
        return make_error(errc::invalid_config,
                          url->origin() + ": cannot set the TLS peer address");
    }
    return run(stream, handle);
  } catch (const std::exception& e) {
    return make_error(errc::unspecified,
                      std::string{"outbound HTTP request failed: "} + e.what());
  }
}

// -- retries ------------------------------------------------------------------

sleep_function blocking_sleep() {
  return [](std::chrono::milliseconds d) {
    std::this_thread::sleep_for(d);
    return true;
  };
}

bool is_retryable_status(unsigned status) noexcept {
  return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

std::chrono::milliseconds backoff_delay(const retry_options& opts,
                                        int attempt) noexcept {
  auto cap = std::max(opts.max_delay, std::chrono::milliseconds{0});
  auto d = std::clamp(opts.base_delay, std::chrono::milliseconds{0}, cap);
  for (int i = 1; i < attempt && d < cap; ++i)
    d = std::min(cap, d * 2);
  return d;
}

std::optional<std::chrono::milliseconds>
requested_delay(const http_response& res, const retry_options& opts,
                wall_time now) {
  std::optional<std::chrono::milliseconds> result;
  if (auto ms = trim(res.header("retry-after-ms")); all_digits(ms)) {
    int64_t value = 0;
    for (char c : ms)
      value = std::min<int64_t>(value * 10 + (c - '0'),
                                max_retry_after.count());
    result = std::chrono::milliseconds{value};
  }
  if (!result) {
    if (auto value = res.header("retry-after"); !value.empty())
      result = parse_retry_after(value, now);
  }
  if (result)
    result = std::min(*result, std::max(opts.max_delay,
                                        std::chrono::milliseconds{0}));
  return result;
}

caf::expected<http_response>
send_with_retries(const http_client& client, const http_request& req,
                  const retry_options& opts, const sleep_function& sleep,
                  const clock& clk) {
  auto attempts = std::max(opts.max_attempts, 1);
  std::string origin = "the server";
  if (auto url = parse_url(req.url))
    origin = url->origin();
  caf::error last;
  for (int attempt = 1;; ++attempt) {
    auto res = client.send(req);
    std::chrono::milliseconds delay;
    std::string why;
    if (res) {
      if (!is_retryable_status(res->status))
        return res;
      why = req.method + " " + origin + ": HTTP " + std::to_string(res->status)
            + " (attempt " + std::to_string(attempt) + " of "
            + std::to_string(attempts) + "): " + excerpt(res->body);
      last = make_error(errc::unavailable, why);
      delay = requested_delay(*res, opts, clk.now())
                .value_or(backoff_delay(opts, attempt));
    } else {
      if (!is_retryable(res.error()))
        return res;
      last = std::move(res.error());
      why = describe(last) + " (attempt " + std::to_string(attempt) + " of "
            + std::to_string(attempts) + ")";
      delay = backoff_delay(opts, attempt);
    }
    if (attempt >= attempts)
      return last;
    log::get("outbound")->warn("{}; retrying in {} ms", why, delay.count());
    if (sleep && !sleep(delay))
      return make_error(errc::shutting_down, "gave up retrying: " + why);
  }
}

} // namespace engram
