#include "http/auth.hpp"

#include <boost/beast/http/field.hpp>

namespace engram::http {

bool constant_time_equal(std::string_view given,
                         std::string_view expected) noexcept {
  // Compare every byte of `expected` whatever the input, and fold in the
  // length difference instead of returning early.
  volatile unsigned char diff = given.size() != expected.size() ? 1 : 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    auto g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = diff | (g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

bool has_bearer_token(const request& req, std::string_view token) noexcept {
  auto i = req.find(boost::beast::http::field::authorization);
  if (i == req.end())
    return false;
  std::string_view value{i->value().data(), i->value().size()};
  constexpr std::string_view scheme = "bearer";
  if (value.size() <= scheme.size())
    return false;
  for (size_t j = 0; j < scheme.size(); ++j) {
    auto c = value[j];
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
    if (c != scheme[j])
      return false;
  }
  value.remove_prefix(scheme.size());
  if (value.front() != ' ')
    return false;
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
    value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
    value.remove_suffix(1);
  return !value.empty() && constant_time_equal(value, token);
}

bool is_public_path(std::string_view path) noexcept {
  return path == "/healthz" || path == "/readyz";
}

} // namespace engram::http
