#pragma once

// Asking actors from HTTP handlers without blocking an I/O thread: a
// short-lived actor makes the request and calls back with the reply; an
// error reply becomes the error response its errc maps to.

#include <chrono>
#include <functional>
#include <utility>

#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include "http/handler.hpp"
#include "messages/errc.hpp"
#include "messages/storage.hpp"

namespace engram::http {

/// Sends `req` to `dest` and calls `on_reply` with the reply (on an actor
/// thread); an error (or a timeout) is answered through `respond` with
/// error_response(code_of(err), message). `on_reply` owns the responder from
/// then on.
template <class Reply, class Handle, class Request>
void ask(caf::actor_system& sys, Handle dest, std::chrono::milliseconds timeout,
         Request req, std::function<void(Reply&)> on_reply,
         responder respond) {
  if (!dest) {
    respond(error_response(errc::shutting_down,
                           "the actor that serves this request is not running"));
    return;
  }
  sys.spawn([dest, timeout, req = std::move(req), on_reply = std::move(on_reply),
             respond = std::move(respond)](caf::event_based_actor* self) mutable {
    self->request(dest, timeout, std::move(req))
      .then([on_reply](Reply& reply) mutable { on_reply(reply); },
            [respond](caf::error& err) mutable {
              respond(error_response(code_of(err), message_of(err)));
            });
  });
}

/// The storage pool, or an invalid handle when it is not running.
[[nodiscard]] inline storage_actor storage_of(caf::actor_system& sys) {
  return sys.registry().get<storage_actor>(caf::atom(storage_pool_name));
}

/// ask() addressed to the storage pool.
template <class Reply, class Request>
void ask_storage(caf::actor_system& sys, std::chrono::milliseconds timeout,
                 Request req, std::function<void(Reply&)> on_reply,
                 responder respond) {
  ask<Reply>(sys, storage_of(sys), timeout, std::move(req), std::move(on_reply),
             std::move(respond));
}

} // namespace engram::http
