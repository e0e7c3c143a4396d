#include "storage/notification_listener.hpp"

#include <memory>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <pqxx/connection>
#include <pqxx/notification>

#include "messages/errc.hpp"
#include "runtime/log.hpp"
#include "storage/connection.hpp"

namespace engram {

namespace {

const std::shared_ptr<spdlog::logger>& logger() {
  static auto result = log::get("storage");
  return result;
}

class receiver final : public pqxx::notification_receiver {
public:
  receiver(pqxx::connection_base& conn, const std::string& channel,
           const notification_callback& callback)
    : pqxx::notification_receiver(conn, channel), callback_(callback) {}

  void operator()(const std::string& payload, int) override {
    callback_(channel(), payload);
  }

private:
  const notification_callback& callback_;
};

struct listener_state {
  listener_options options;
  notification_callback callback;
  std::unique_ptr<pqxx::connection> conn;
  /// Destroyed before the connection they are registered with.
  std::vector<std::unique_ptr<receiver>> receivers;
  std::chrono::milliseconds backoff{0};

  void disconnect() {
    receivers.clear();
    conn.reset();
  }

  ~listener_state() { disconnect(); }

  static inline const char* name = "notification_listener";
};

using self_ptr = notification_listener_actor::stateful_pointer<listener_state>;

/// Connects and subscribes; returns false (after logging) on failure.
bool connect(self_ptr self) {
  auto& st = self->state;
  try {
    st.conn = storage::open_connection(st.options.storage.conninfo,
                                       st.options.storage.connect_timeout,
                                       std::chrono::milliseconds{0});
    for (const auto& channel : st.options.channels)
      st.receivers.push_back(
        std::make_unique<receiver>(*st.conn, channel, st.callback));
    if (st.backoff.count() > 0)
      logger()->info("notification listener reconnected");
    st.backoff = std::chrono::milliseconds{0};
    // Anything sent while we were away is lost: tell consumers to look.
    for (const auto& channel : st.options.channels)
      st.callback(channel, "");
    return true;
  } catch (const std::exception& e) {
    st.disconnect();
    st.backoff = st.backoff.count() == 0
                   ? st.options.storage.backoff_initial
                   : std::min(st.backoff * 2, st.options.storage.backoff_max);
    logger()->warn("notification listener cannot connect: {}; retrying in {} ms",
                   message_of(storage::to_error(e)), st.backoff.count());
    return false;
  }
}

notification_listener_actor::behavior_type
listener(self_ptr self, listener_options options,
         notification_callback callback) {
  self->state.options = std::move(options);
  self->state.callback = std::move(callback);
  self->send(self, atom::tick_v);
  return {
    [self](atom::tick) {
      auto& st = self->state;
      if (!st.conn && !connect(self)) {
        self->delayed_send(self, st.backoff, atom::tick_v);
        return;
      }
      try {
        auto slice = st.options.wait_slice.count();
        st.conn->await_notification(slice / 1000, (slice % 1000) * 1000);
      } catch (const std::exception& e) {
        logger()->warn("notification listener lost its connection: {}",
                       message_of(storage::to_error(e)));
        st.disconnect();
      }
      self->send(self, atom::tick_v);
    },
  };
}

} // namespace

notification_listener_actor
spawn_notification_listener(caf::actor_system& sys, listener_options options,
                            notification_callback on_notify) {
  return sys.spawn<caf::detached>(listener, std::move(options),
                                  std::move(on_notify));
}

} // namespace engram
