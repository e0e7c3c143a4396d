#include "http/handler.hpp"

#include <boost/beast/http/field.hpp>

namespace engram::http {

response json_response(status code, std::string body) {
  response res{code, 11};
  res.set(boost::beast::http::field::content_type, json_content_type);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

response error_response(status code, std::string_view error_code,
                        std::string_view message) {
  return json_response(code, error_body(error_code, message));
}

response error_response(errc code, std::string_view message) {
  return error_response(status_for(code), to_string(code), message);
}

} // namespace engram::http
