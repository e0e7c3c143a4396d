#include "runtime/statsd.hpp"

#include "messages/errc.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

using namespace engram;

namespace {

/// A UDP socket on 127.0.0.1 that the emitter sends to.
struct udp_sink {
  udp_sink() {
    fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~udp_sink() { ::close(fd); }

  std::string receive() {
    char buf[2048];
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string{};
  }

  int fd;
  uint16_t port = 0;
};

} // namespace

TEST(statsd, lines_carry_labels_as_tags_and_separators_are_cleaned) {
  EXPECT_EQ(statsd_line("engram", "engram_tasks_total",
                        {{"name", "engram.noop"}, {"state", "succeeded"}}, 3,
                        true),
            "engram.engram_tasks_total:3|c|#name:engram.noop,state:succeeded");
  EXPECT_EQ(statsd_line("", "depth", {{"queue", "a:b|c"}}, 2.5, false),
            "depth:2.5|g|#queue:a_b_c");
}

TEST(statsd, counters_are_sent_as_increases_and_gauges_as_values) {
  metrics::registry registry;
  auto& tasks = registry.get_counter("tasks_total", "help", {{"state", "ok"}});
  auto& depth = registry.get_gauge("depth", "help");
  udp_sink sink;
  auto emitter = statsd_emitter::make(registry, {"127.0.0.1", sink.port, "e"});
  ASSERT_TRUE(emitter) << describe(emitter.error());
  tasks.inc(5);
  depth.set(7);
  (void) (*emitter)->flush();
  EXPECT_EQ(sink.receive(), "e.depth:7|g\ne.tasks_total:5|c|#state:ok");
  tasks.inc(2);
  (void) (*emitter)->flush();
  EXPECT_EQ(sink.receive(), "e.depth:7|g\ne.tasks_total:2|c|#state:ok")
    << "only the increase since the last flush";
  (void) (*emitter)->flush();
  EXPECT_EQ(sink.receive(), "e.depth:7|g") << "no increase, no counter line";
}

TEST(statsd, an_unresolvable_host_is_a_configuration_error) {
  metrics::registry registry;
  auto emitter = statsd_emitter::make(registry, {"no.such.host.invalid", 8125});
  ASSERT_FALSE(emitter);
  EXPECT_EQ(code_of(emitter.error()), errc::invalid_config);
}
