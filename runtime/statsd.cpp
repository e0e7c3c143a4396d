#include "runtime/statsd.hpp"

#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "messages/errc.hpp"

namespace engram {

namespace {

std::string format_number(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15)
    return std::to_string(static_cast<int64_t>(v));
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

/// StatsD separators must not appear in names and tag values.
std::string clean(std::string_view text) {
  std::string out{text};
  for (auto& c : out)
    if (c == ':' || c == '|' || c == ',' || c == '#' || c == '\n' || c == ' ')
      c = '_';
  return out;
}

} // namespace

std::string statsd_line(const std::string& prefix, const std::string& name,
                        const metrics::labels& ls, double value, bool counter) {
  std::string line = prefix.empty() ? clean(name) : prefix + "." + clean(name);
  line += ':';
  line += format_number(value);
  line += counter ? "|c" : "|g";
  if (!ls.empty()) {
    line += "|#";
    for (size_t i = 0; i < ls.size(); ++i) {
      if (i > 0)
        line += ',';
      line += clean(ls[i].first);
      line += ':';
      line += clean(ls[i].second);
    }
  }
  return line;
}

caf::expected<std::unique_ptr<statsd_emitter>>
statsd_emitter::make(const metrics::registry& registry, statsd_options options) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  auto port = std::to_string(options.port);
  if (::getaddrinfo(options.host.c_str(), port.c_str(), &hints, &found) != 0
      || found == nullptr)
    return make_error(errc::invalid_config,
                      "statsd.host '" + options.host + "' cannot be resolved");
  int fd = ::socket(found->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
    auto reason = std::string{std::strerror(errno)};
    ::freeaddrinfo(found);
    if (fd >= 0)
      ::close(fd);
    return make_error(errc::invalid_config,
                      "cannot open a UDP socket to " + options.host + ":"
                        + port + ": " + reason);
  }
  ::freeaddrinfo(found);
  return std::unique_ptr<statsd_emitter>{
    new statsd_emitter(registry, std::move(options), fd)};
}

statsd_emitter::statsd_emitter(const metrics::registry& registry,
                               statsd_options options, int fd)
  : registry_(registry), options_(std::move(options)), fd_(fd) {}

statsd_emitter::~statsd_emitter() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  ::close(fd_);
}

void statsd_emitter::start() {
  thread_ = std::jthread([this](std::stop_token stop) {
    std::mutex mtx;
    std::condition_variable_any cv;
    std::unique_lock lock{mtx};
    while (!cv.wait_for(lock, stop, options_.interval, [] { return false; }))
      (void) flush();
  });
}

std::vector<std::string> statsd_emitter::flush() {
  std::vector<std::string> lines;
  for (const auto& s : registry_.collect()) {
    if (s.cumulative) {
      auto key = statsd_line("", s.name, s.ls, 0, true);
      auto& last = last_[key];
      auto delta = s.value - last;
      last = s.value;
      if (delta > 0)
        lines.push_back(statsd_line(options_.prefix, s.name, s.ls, delta, true));
    } else if (std::isfinite(s.value)) {
      lines.push_back(statsd_line(options_.prefix, s.name, s.ls, s.value, false));
    }
  }
  std::string datagram;
  auto send = [&] {
    if (!datagram.empty())
      (void) ::send(fd_, datagram.data(), datagram.size(), MSG_DONTWAIT);
    datagram.clear();
  };
  for (const auto& line : lines) {
    if (!datagram.empty() && datagram.size() + 1 + line.size() > 1400)
      send();
    if (!datagram.empty())
      datagram += '\n';
    datagram += line;
  }
  send();
  return lines;
}

} // namespace engram
