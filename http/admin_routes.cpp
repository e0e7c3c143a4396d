#include "http/admin_routes.hpp"

#include <memory>
#include <stdexcept>

#include <boost/beast/http/field.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace engram::http {

namespace {

/// Content type of the Prometheus text exposition format.
constexpr std::string_view metrics_content_type
  = "text/plain; version=0.0.4; charset=utf-8";

} // namespace

void add_admin_routes(router& r, admin_deps deps) {
  if (!deps.check_ready)
    throw std::logic_error("admin routes need a readiness check");
  if (deps.metrics == nullptr)
    throw std::logic_error("admin routes need a metrics registry");
  auto shared = std::make_shared<const admin_deps>(std::move(deps));

  r.add(verb::get, "/healthz", [](request_context&, responder respond) {
    respond(json_response(status::ok, R"({"status":"ok"})"));
  });

  r.add(verb::get, "/readyz", [shared](request_context&, responder respond) {
    shared->check_ready([respond = std::move(respond)](readiness r) {
      if (r.ready)
        respond(json_response(status::ok, R"({"status":"ready"})"));
      else
        respond(error_response(status::service_unavailable, "not_ready",
                               r.reason));
    });
  });

  r.add(verb::get, "/metrics", [shared](request_context&, responder respond) {
    response res{status::ok, 11};
    res.set(boost::beast::http::field::content_type, metrics_content_type);
    res.body() = shared->metrics->render();
    res.prepare_payload();
    respond(std::move(res));
  });

  r.add(verb::get, "/api/version", [shared](request_context&, responder respond) {
    boost::json::object body;
    body["version"] = shared->version;
    body["git_commit"] = shared->git_commit;
    body["build_type"] = shared->build_type;
    body["node"] = shared->node_name;
    respond(json_response(status::ok, boost::json::serialize(body)));
  });
}

} // namespace engram::http
