// outbound_http and the openai provider against a real local server
// (tests/support/fake_http_server): real sockets, real Beast parsing, small
// timeouts, injected sleeps.

#include "runtime/outbound_http.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "messages/errc.hpp"
#include "runtime/llm_provider.hpp"
#include "tests/support/fake_http_server.hpp"

using namespace engram;
using namespace engram::test;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<outbound_http> client(outbound_http_options opts = {}) {
  auto c = outbound_http::make(std::move(opts));
  EXPECT_TRUE(c) << describe(c.error());
  return c ? *c : nullptr;
}

http_request request_to(const fake_http_server& server, std::string path,
                        std::chrono::milliseconds timeout = 2s) {
  http_request req;
  req.url = server.url() + path;
  req.timeout = timeout;
  return req;
}

/// Records the delays it is asked to wait, and waits none of them.
struct recorded_sleep {
  std::vector<std::chrono::milliseconds> delays;
  sleep_function fn() {
    return [this](std::chrono::milliseconds d) {
      delays.push_back(d);
      return true;
    };
  }
};

/// A port nothing listens on (a server bound it, then went away).
uint16_t closed_port() {
  fake_http_server server;
  auto port = server.port();
  server.stop();
  return port;
}

const char* const chat_completion_json = R"({
  "id": "chatcmpl-1", "object": "chat.completion", "model": "fake-model-1",
  "choices": [{"index": 0, "finish_reason": "stop",
               "message": {"role": "assistant", "content": "Paris."}}],
  "usage": {"prompt_tokens": 21, "completion_tokens": 2, "total_tokens": 23}
})";

llm_environment local_env(recorded_sleep* sleep = nullptr) {
  llm_environment env;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    if (name == "ENGRAM_TEST_KEY")
      return "sk-local-test";
    return std::nullopt;
  };
  if (sleep != nullptr)
    env.sleep = sleep->fn();
  return env;
}

llm_options local_llm(const fake_http_server& server) {
  llm_options opts;
  opts.provider = "openai";
  opts.base_url = server.url();
  opts.model = "fake-model";
  opts.api_key_env = "ENGRAM_TEST_KEY";
  opts.timeout = 2s;
  opts.max_attempts = 3;
  opts.retry_base_delay = 10ms;
  return opts;
}

// -- a TLS server with a throwaway certificate ----------------------------------

/// A self-signed certificate (its own CA) and its key, in PEM.
struct test_certificate {
  std::string cert_pem;
  std::string key_pem;
};

/// Creates a P-256 self-signed certificate whose subjectAltName is `san`
/// (OpenSSL syntax, e.g. "DNS:localhost" or "IP:127.0.0.1").
test_certificate make_certificate(const std::string& san) {
  test_certificate result;
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  if (key == nullptr || x == nullptr)
    throw std::runtime_error("cannot create a test key");
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(
    name, "CN", MBSTRING_ASC,
    reinterpret_cast<const unsigned char*>("engram test"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  const std::pair<int, std::string> extensions[] = {
    {NID_basic_constraints, "critical,CA:TRUE"},
    {NID_key_usage, "critical,digitalSignature,keyCertSign"},
    {NID_subject_alt_name, san}};
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    if (ext == nullptr)
      throw std::runtime_error("cannot create extension " + value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  auto to_pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    auto len = BIO_get_mem_data(bio, &data);
    std::string pem{data, static_cast<size_t>(len)};
    BIO_free(bio);
    return pem;
  };
  result.cert_pem = to_pem([&](BIO* bio) { PEM_write_bio_X509(bio, x); });
  result.key_pem = to_pem([&](BIO* bio) {
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
  X509_free(x);
  EVP_PKEY_free(key);
  return result;
}

/// A PEM file in the temp directory, removed on destruction.
struct temp_pem {
  std::filesystem::path path;
  explicit temp_pem(const std::string& pem) {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path()
           / ("engram-test-ca-" + std::to_string(::getpid()) + "-"
              + std::to_string(counter++) + ".pem");
    std::ofstream{path} << pem;
  }
  ~temp_pem() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
};

/// Serves one HTTPS connection on 127.0.0.1 with `cert` and answers 200
/// "tls ok" (if the handshake succeeds).
class tls_server {
public:
  explicit tls_server(const test_certificate& cert) {
    namespace asio = boost::asio;
    ctx_.use_certificate_chain(asio::buffer(cert.cert_pem));
    ctx_.use_private_key(asio::buffer(cert.key_pem), asio::ssl::context::pem);
    asio::ip::tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), 0};
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread{[this] { serve_one(); }};
  }

  ~tls_server() {
    finish();
  }

  /// Ends the server thread (waking its accept if nobody connected).
  void finish() {
    if (!thread_.joinable())
      return;
    if (!accepted_) {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket s{ioc_};
      s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    }
    thread_.join();
  }

  uint16_t port() const {
    return port_;
  }

  bool handshake_succeeded() {
    finish();
    return handshake_ok_;
  }

  /// The SNI the client sent (ends the server first).
  std::string server_name() {
    finish();
    return server_name_;
  }

private:
  void serve_one() {
    namespace http = boost::beast::http;
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket socket{ioc_};
    acceptor_.accept(socket, ec);
    accepted_ = true;
    if (ec)
      return;
    boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream{
      std::move(socket), ctx_};
    stream.handshake(boost::asio::ssl::stream_base::server, ec);
    if (ec)
      return;
    if (const char* sni = SSL_get_servername(stream.native_handle(),
                                             TLSEXT_NAMETYPE_host_name))
      server_name_ = sni;
    handshake_ok_ = true;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::read(stream, buffer, req, ec);
    if (ec)
      return;
    http::response<http::string_body> res{http::status::ok, 11};
    res.body() = "tls ok " + std::string{req.target()};
    res.keep_alive(false);
    res.prepare_payload();
    http::write(stream, res, ec);
    stream.shutdown(ec);
  }

  boost::asio::io_context ioc_;
  boost::asio::ssl::context ctx_{boost::asio::ssl::context::tls_server};
  boost::asio::ip::tcp::acceptor acceptor_{ioc_};
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> accepted_{false};
  std::atomic<bool> handshake_ok_{false};
  std::string server_name_;
};

caf::expected<http_response> get_over_tls(const std::string& url,
                                          const std::string& ca_file) {
  outbound_http_options opts;
  opts.ca_file = ca_file;
  auto c = outbound_http::make(opts);
  if (!c)
    return c.error();
  http_request req;
  req.method = "GET";
  req.url = url;
  req.timeout = 2s;
  return (*c)->send(req);
}

} // namespace

// -- TLS ---------------------------------------------------------------------------

TEST(outbound_http_tls, talks_to_a_server_whose_certificate_is_trusted) {
  auto cert = make_certificate("DNS:localhost");
  temp_pem ca{cert.cert_pem};
  tls_server server{cert};
  auto res = get_over_tls(
    "https://localhost:" + std::to_string(server.port()) + "/secure",
    ca.path.string());
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->status, 200u);
  EXPECT_EQ(res->body, "tls ok /secure");
  EXPECT_EQ(server.server_name(), "localhost");
}

TEST(outbound_http_tls, checks_an_ip_address_against_the_certificate) {
  auto cert = make_certificate("IP:127.0.0.1");
  temp_pem ca{cert.cert_pem};
  tls_server server{cert};
  auto res = get_over_tls(
    "https://127.0.0.1:" + std::to_string(server.port()) + "/ip",
    ca.path.string());
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->body, "tls ok /ip");
}

TEST(outbound_http_tls, refuses_an_untrusted_certificate) {
  auto cert = make_certificate("DNS:localhost");
  tls_server server{cert};
  auto res = get_over_tls(
    "https://localhost:" + std::to_string(server.port()) + "/", "");
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::invalid_config) << describe(res.error());
  EXPECT_FALSE(is_retryable(res.error()));
  EXPECT_NE(message_of(res.error()).find("certificate verification failed"),
            std::string::npos)
    << describe(res.error());
  EXPECT_FALSE(server.handshake_succeeded());
}

TEST(outbound_http_tls, refuses_a_certificate_for_another_host) {
  auto cert = make_certificate("DNS:other.example");
  temp_pem ca{cert.cert_pem};
  tls_server server{cert};
  auto res = get_over_tls(
    "https://localhost:" + std::to_string(server.port()) + "/",
    ca.path.string());
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::invalid_config) << describe(res.error());
  EXPECT_NE(message_of(res.error()).find("mismatch"), std::string::npos)
    << describe(res.error());
  EXPECT_FALSE(server.handshake_succeeded());
}

TEST(outbound_http_tls, refuses_a_host_certificate_for_an_ip_url) {
  auto cert = make_certificate("DNS:localhost");
  temp_pem ca{cert.cert_pem};
  tls_server server{cert};
  auto res = get_over_tls(
    "https://127.0.0.1:" + std::to_string(server.port()) + "/",
    ca.path.string());
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::invalid_config) << describe(res.error());
  EXPECT_FALSE(server.handshake_succeeded());
}

// -- the client ------------------------------------------------------------------

TEST(outbound_http_live, sends_the_request_and_returns_the_response) {
  fake_http_server server;
  canned_response answer;
  answer.status = 201;
  answer.headers = {{"X-Reply", "yes"}, {"Content-Type", "text/plain"}};
  answer.body = "created";
  server.enqueue(answer);
  auto http = client();
  ASSERT_NE(http, nullptr);
  auto req = request_to(server, "/hooks/a?x=1");
  req.headers = {{"Content-Type", "application/json"}, {"X-Signature", "abc"}};
  req.body = R"({"event":"done"})";
  auto res = http->send(req);
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->status, 201u);
  EXPECT_EQ(res->body, "created");
  EXPECT_EQ(res->header("x-reply"), "yes");
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/hooks/a?x=1");
  EXPECT_EQ(seen[0].body, R"({"event":"done"})");
  EXPECT_EQ(seen[0].header("content-type"), "application/json");
  EXPECT_EQ(seen[0].header("x-signature"), "abc");
  EXPECT_EQ(seen[0].header("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(seen[0].header("user-agent"), "engram");
  EXPECT_EQ(seen[0].header("content-length"), "16");
}

TEST(outbound_http_live, get_without_a_body_and_a_custom_user_agent) {
  fake_http_server server{[](const recorded_request& req) {
    canned_response r;
    r.body = req.method + " " + req.target + " " + req.header("user-agent");
    return r;
  }};
  auto http = client();
  ASSERT_NE(http, nullptr);
  auto req = request_to(server, "/status");
  req.method = "GET";
  req.headers = {{"User-Agent", "engram-test/1"}};
  auto res = http->send(req);
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->status, 200u);
  EXPECT_EQ(res->body, "GET /status engram-test/1");
  EXPECT_EQ(server.requests().at(0).header("content-length"), "");
}

TEST(outbound_http_live, a_slow_server_times_out_within_the_deadline) {
  fake_http_server server;
  canned_response slow;
  slow.delay = 3s;
  server.enqueue(slow);
  auto http = client();
  ASSERT_NE(http, nullptr);
  auto started = std::chrono::steady_clock::now();
  auto res = http->send(request_to(server, "/slow", 200ms));
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::timeout) << describe(res.error());
  EXPECT_TRUE(is_retryable(res.error()));
  EXPECT_NE(message_of(res.error()).find("200 ms"), std::string::npos);
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 1500ms);
}

TEST(outbound_http_live, connection_failures_are_retryable) {
  auto http = client();
  ASSERT_NE(http, nullptr);
  http_request req;
  req.url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/x";
  req.timeout = 1s;
  auto res = http->send(req);
  ASSERT_FALSE(res);
  EXPECT_TRUE(is_retryable(res.error())) << describe(res.error());
  EXPECT_NE(code_of(res.error()), errc::timeout) << describe(res.error());
}

TEST(outbound_http_live, a_dropped_connection_is_retryable) {
  fake_http_server server;
  canned_response drop;
  drop.drop_connection = true;
  server.enqueue(drop);
  auto http = client();
  ASSERT_NE(http, nullptr);
  auto res = http->send(request_to(server, "/drop"));
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::unavailable)
    << describe(res.error());
  EXPECT_TRUE(is_retryable(res.error()));
}

TEST(outbound_http_live, a_body_over_the_limit_is_refused) {
  fake_http_server server;
  server.enqueue({200, {}, std::string(4096, 'x')});
  server.enqueue({200, {}, std::string(1024, 'y')});
  outbound_http_options opts;
  opts.body_limit = 1024;
  auto http = client(opts);
  ASSERT_NE(http, nullptr);
  auto res = http->send(request_to(server, "/big"));
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::too_large) << describe(res.error());
  EXPECT_FALSE(is_retryable(res.error()));
  // Exactly at the limit is fine.
  auto ok = http->send(request_to(server, "/fits"));
  ASSERT_TRUE(ok) << describe(ok.error());
  EXPECT_EQ(ok->body.size(), 1024u);
}

TEST(outbound_http_live, the_default_limit_is_8_mib) {
  fake_http_server server;
  server.enqueue({200, {}, std::string(8 * 1024 * 1024 + 1, 'x')});
  auto http = client();
  ASSERT_NE(http, nullptr);
  auto res = http->send(request_to(server, "/huge", 5s));
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::too_large) << describe(res.error());
}

TEST(outbound_http_live, https_to_a_plain_server_fails_cleanly) {
  fake_http_server server;
  server.enqueue({200, {}, "plain"});
  auto http = client();
  ASSERT_NE(http, nullptr);
  http_request req;
  req.url = "https://127.0.0.1:" + std::to_string(server.port()) + "/";
  req.timeout = 1s;
  auto res = http->send(req);
  ASSERT_FALSE(res);
  EXPECT_NE(code_of(res.error()), errc::timeout) << describe(res.error());
}

TEST(outbound_http_live, several_threads_share_one_client) {
  fake_http_server server{[](const recorded_request& req) {
    return canned_response{200, {}, "echo " + req.target, 10ms};
  }};
  auto http = client();
  ASSERT_NE(http, nullptr);
  std::vector<std::thread> threads;
  std::vector<std::string> bodies(8);
  for (size_t i = 0; i < bodies.size(); ++i)
    threads.emplace_back([&, i] {
      auto res = http->send(request_to(server, "/t" + std::to_string(i)));
      bodies[i] = res ? res->body : describe(res.error());
    });
  for (auto& t : threads)
    t.join();
  for (size_t i = 0; i < bodies.size(); ++i)
    EXPECT_EQ(bodies[i], "echo /t" + std::to_string(i));
  EXPECT_EQ(server.request_count(), bodies.size());
}

// -- retries against the server ----------------------------------------------------

TEST(outbound_http_live, retries_429_with_retry_after_then_succeeds) {
  fake_http_server server;
  server.enqueue({429, {{"Retry-After", "1"}}, "slow down"});
  server.enqueue({200, {}, "ok"});
  auto http = client();
  ASSERT_NE(http, nullptr);
  recorded_sleep sleep;
  auto res = send_with_retries(*http, request_to(server, "/r"), {3, 10ms, 5s},
                               sleep.fn());
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->body, "ok");
  EXPECT_EQ(server.request_count(), 2u);
  EXPECT_EQ(sleep.delays, (std::vector<std::chrono::milliseconds>{1s}));
}

TEST(outbound_http_live, gives_up_after_max_attempts_of_500) {
  fake_http_server server{[](const recorded_request&) {
    return canned_response{500, {}, "still broken"};
  }};
  auto http = client();
  ASSERT_NE(http, nullptr);
  recorded_sleep sleep;
  auto res = send_with_retries(*http, request_to(server, "/r"), {4, 10ms, 1s},
                               sleep.fn());
  ASSERT_FALSE(res);
  EXPECT_TRUE(is_retryable(res.error()));
  EXPECT_NE(message_of(res.error()).find("HTTP 500"), std::string::npos);
  EXPECT_EQ(server.request_count(), 4u);
  EXPECT_EQ(sleep.delays, (std::vector<std::chrono::milliseconds>{10ms, 20ms,
                                                                  40ms}));
}

TEST(outbound_http_live, retries_a_timeout_then_succeeds) {
  fake_http_server server;
  server.enqueue({200, {}, "too late", 2s});
  server.enqueue({200, {}, "on time"});
  auto http = client();
  ASSERT_NE(http, nullptr);
  recorded_sleep sleep;
  auto res = send_with_retries(*http, request_to(server, "/r", 200ms),
                               {2, 10ms, 1s}, sleep.fn());
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->body, "on time");
  EXPECT_EQ(server.request_count(), 2u);
}

// -- the openai provider against the server ---------------------------------------------

TEST(openai_live, completes_against_an_openai_compatible_server) {
  fake_http_server server;
  server.enqueue(json_response(chat_completion_json));
  auto provider = make_llm_provider(local_llm(server), local_env());
  ASSERT_TRUE(provider) << describe(provider.error());
  auto c = (*provider)->complete(
    {{"system", "Answer in one word."}, {"user", "Capital of France?"}}, {});
  ASSERT_TRUE(c) << describe(c.error());
  EXPECT_EQ(c->content, "Paris.");
  EXPECT_EQ(c->prompt_tokens, 21);
  EXPECT_EQ(c->completion_tokens, 2);
  EXPECT_EQ(c->model, "fake-model-1");
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/v1/chat/completions");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer sk-local-test");
  auto body = boost::json::parse(seen[0].body).as_object();
  EXPECT_EQ(body.at("model").as_string(), "fake-model");
  ASSERT_EQ(body.at("messages").as_array().size(), 2u);
  EXPECT_EQ(body.at("messages").as_array()[1].at("content").as_string(),
            "Capital of France?");
}

TEST(openai_live, a_base_url_with_v1_and_no_key_on_localhost) {
  fake_http_server server;
  server.enqueue(json_response(chat_completion_json));
  auto opts = local_llm(server);
  opts.base_url = server.url() + "/v1/";
  opts.api_key_env = "ENGRAM_TEST_UNSET_KEY";
  auto provider = make_llm_provider(opts, local_env());
  ASSERT_TRUE(provider) << describe(provider.error());
  auto c = (*provider)->complete({{"user", "hi"}}, {});
  ASSERT_TRUE(c) << describe(c.error());
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/v1/chat/completions");
  EXPECT_EQ(seen[0].header("authorization"), "");
}

TEST(openai_live, retries_429_then_answers) {
  fake_http_server server;
  server.enqueue(json_response(
    R"({"error":{"message":"Rate limit reached","type":"requests"}})", 429));
  server.enqueue(json_response(chat_completion_json));
  recorded_sleep sleep;
  auto provider = make_llm_provider(local_llm(server), local_env(&sleep));
  ASSERT_TRUE(provider) << describe(provider.error());
  auto c = (*provider)->complete({{"user", "hi"}}, {});
  ASSERT_TRUE(c) << describe(c.error());
  EXPECT_EQ(c->content, "Paris.");
  EXPECT_EQ(server.request_count(), 2u);
  EXPECT_EQ(sleep.delays, (std::vector<std::chrono::milliseconds>{10ms}));
}

TEST(openai_live, malformed_json_is_a_non_retryable_error) {
  fake_http_server server{[](const recorded_request&) {
    return json_response(R"({"choices": [{"message": )");
  }};
  recorded_sleep sleep;
  auto provider = make_llm_provider(local_llm(server), local_env(&sleep));
  ASSERT_TRUE(provider) << describe(provider.error());
  auto c = (*provider)->complete({{"user", "hi"}}, {});
  ASSERT_FALSE(c);
  EXPECT_FALSE(is_retryable(c.error()));
  EXPECT_NE(message_of(c.error()).find("malformed response"), std::string::npos)
    << describe(c.error());
  EXPECT_EQ(server.request_count(), 1u);
  EXPECT_TRUE(sleep.delays.empty());
}

TEST(openai_live, a_server_that_keeps_failing_gives_a_retryable_error) {
  fake_http_server server{[](const recorded_request&) {
    return canned_response{503, {{"Retry-After", "0"}}, "overloaded"};
  }};
  recorded_sleep sleep;
  auto provider = make_llm_provider(local_llm(server), local_env(&sleep));
  ASSERT_TRUE(provider) << describe(provider.error());
  auto c = (*provider)->complete({{"user", "hi"}}, {});
  ASSERT_FALSE(c);
  EXPECT_TRUE(is_retryable(c.error()));
  EXPECT_EQ(server.request_count(), 3u);
  EXPECT_EQ(sleep.delays, (std::vector<std::chrono::milliseconds>{0ms, 0ms}));
}
