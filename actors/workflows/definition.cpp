#include "actors/workflows/definition.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>

#include <boost/json/value.hpp>
#include <toml++/toml.h>

#include "messages/errc.hpp"
#include "runtime/config.hpp"
#include "runtime/toml_type_name.hpp"

namespace engram::workflows {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr milliseconds max_timeout{std::chrono::hours{24}};
constexpr int64_t max_retries = 100;
constexpr size_t max_name_length = 64;

/// [a-z0-9_-]{1,64}: workflow and step names.
bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > max_name_length)
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
           || c == '-';
  });
}

/// [A-Za-z_][A-Za-z0-9_]*: environment variable names.
bool valid_env_name(std::string_view name) {
  if (name.empty())
    return false;
  auto alpha = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  if (!alpha(name.front()))
    return false;
  return std::all_of(name.begin() + 1, name.end(), [&](char c) {
    return alpha(c) || (c >= '0' && c <= '9');
  });
}

/// `"text"` with quotes and backslashes escaped, for messages.
std::string in_quotes(std::string_view text) {
  std::string out = "\"";
  for (auto c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

/// The value as written, for messages: strings quoted.
std::string render(const toml::node& node) {
  if (auto s = node.as_string())
    return in_quotes(s->get());
  if (node.is_table())
    return "{...}";
  if (node.is_array())
    return "[...]";
  std::ostringstream out;
  node.visit([&](auto& x) { out << x; });
  return out.str();
}

std::string join(const std::vector<std::string_view>& xs) {
  std::string out;
  for (auto x : xs) {
    if (!out.empty())
      out += ", ";
    out += x;
  }
  return out;
}

/// One parse of one file; every refusal names the file and the key path.
class parser {
public:
  parser(const std::string& name, const fs::path& file)
    : name_(name), file_(file) {
    // Empty: the definition has no file (tests, a definition from elsewhere).
    prefix_ = file_.empty() ? std::string{"workflow " + in_quotes(name_)}
                            : file_.string();
  }

  caf::expected<workflow_definition> run(std::string_view text) {
    if (!valid_name(name_))
      return make_error(errc::invalid_config,
                        prefix_ + ": the workflow's name " + in_quotes(name_)
                          + " (the file's name without .toml) must match "
                            "[a-z0-9_-]{1,64}");
    toml::table root;
    try {
      root = toml::parse(text, file_.string());
    } catch (const toml::parse_error& e) {
      auto& where = e.source().begin;
      return make_error(errc::invalid_config,
                        prefix_ + ": line " + std::to_string(where.line)
                          + ", column " + std::to_string(where.column)
                          + ": malformed TOML: "
                          + std::string{e.description()});
    }
    workflow_definition def;
    def.name = name_;
    def.file = file_;
    if (!parse_root(root, def))
      return std::move(*error_);
    return def;
  }

private:
  // -- refusals ------------------------------------------------------------

  /// Records the refusal and returns false (for `return refuse(...)`).
  bool refuse(const std::string& key, const std::string& reason,
              const toml::node* node = nullptr) {
    auto text = prefix_ + ": " + key + ": " + reason;
    if (node && node->source().begin.line > 0)
      text += " (line " + std::to_string(node->source().begin.line) + ")";
    error_ = make_error(errc::invalid_config, std::move(text));
    return false;
  }

  bool refuse_type(const std::string& key, std::string_view expected,
                   const toml::node& node) {
    return refuse(key,
                  "expected " + std::string{expected} + ", got "
                    + std::string{toml_type_name(node.type())} + " ("
                    + render(node) + ")",
                  &node);
  }

  bool refuse_unknown(const std::string& key, const toml::node& node,
                      const std::vector<std::string_view>& known) {
    return refuse(key, "unknown key; known keys are " + join(known), &node);
  }

  // -- values --------------------------------------------------------------

  bool get_string(const std::string& key, const toml::node& node,
                  std::string& out) {
    auto s = node.as_string();
    if (!s)
      return refuse_type(key, "a string", node);
    out = s->get();
    return true;
  }

  /// A duration: "250ms", "5s", "2m", "1h" or an integer of milliseconds,
  /// at least `min` and at most 24h.
  bool get_duration(const std::string& key, const toml::node& node,
                    milliseconds min, milliseconds& out) {
    std::optional<milliseconds> value;
    if (auto n = node.as_integer())
      value = milliseconds{n->get()};
    else if (auto s = node.as_string())
      value = parse_duration(s->get());
    if (!value)
      return refuse(key,
                    "expected a duration such as \"30s\" (ms, s, m or h; a "
                    "bare integer is milliseconds), got "
                      + render(node),
                    &node);
    if (*value < min)
      return refuse(key,
                    min.count() == 0 ? "must not be negative, got "
                                         + render(node)
                                     : "must be greater than 0, got "
                                         + render(node),
                    &node);
    if (*value > max_timeout)
      return refuse(key, "must be at most 24h, got " + render(node), &node);
    out = *value;
    return true;
  }

  // -- the document ----------------------------------------------------------

  bool parse_root(const toml::table& root, workflow_definition& def) {
    static const std::vector<std::string_view> known{"description", "branch",
                                                     "steps"};
    for (auto&& [k, node] : root) {
      auto key = std::string{k.str()};
      if (key == "description") {
        if (!get_string(key, node, def.description))
          return false;
      } else if (key == "branch") {
        if (!get_string(key, node, def.branch_template))
          return false;
        if (auto reason = check_template(def.branch_template))
          return refuse(key, *reason + ", got " + render(node), &node);
      } else if (key != "steps") {
        return refuse_unknown(key, node, known);
      }
    }
    auto steps = root.get("steps");
    if (!steps)
      return refuse("steps",
                    "missing; a workflow needs at least one step ([[steps]] "
                    "with a name and a command)");
    auto arr = steps->as_array();
    if (!arr)
      return refuse_type("steps", "an array of tables ([[steps]])", *steps);
    if (arr->empty())
      return refuse("steps",
                    "empty; a workflow needs at least one step ([[steps]] "
                    "with a name and a command)",
                    steps);
    for (size_t i = 0; i < arr->size(); ++i) {
      auto key = "steps[" + std::to_string(i) + "]";
      auto& node = *arr->get(i);
      auto table = node.as_table();
      if (!table)
        return refuse_type(key, "a table ([[steps]])", node);
      step_definition step;
      if (!parse_step(key, *table, step))
        return false;
      for (size_t j = 0; j < def.steps.size(); ++j)
        if (def.steps[j].name == step.name)
          return refuse(key + ".name",
                        in_quotes(step.name) + " is already the name of steps["
                          + std::to_string(j) + "]; step names must be unique",
                        table->get("name"));
      def.steps.push_back(std::move(step));
    }
    return true;
  }

  bool parse_step(const std::string& prefix, const toml::table& table,
                  step_definition& step) {
    static const std::vector<std::string_view> known{
      "name",        "command", "timeout", "retries",
      "backoff",     "backoff_max", "requires_credentials", "env",
      "shell"};
    for (auto&& [k, node] : table) {
      auto key = std::string{k.str()};
      if (std::find(known.begin(), known.end(), key) == known.end())
        return refuse_unknown(prefix + "." + key, node, known);
    }
    // The name first: later messages are easier to read once it is known.
    auto name = table.get("name");
    if (!name)
      return refuse(prefix + ".name", "missing; every step needs a name",
                    &table);
    if (!get_string(prefix + ".name", *name, step.name))
      return false;
    if (!valid_name(step.name))
      return refuse(prefix + ".name",
                    "must match [a-z0-9_-]{1,64}, got " + render(*name), name);
    if (auto shell = table.get("shell")) {
      auto b = shell->as_boolean();
      if (!b)
        return refuse_type(prefix + ".shell", "a boolean", *shell);
      step.shell = b->get();
    }
    if (!parse_command(prefix + ".command", table.get("command"), table,
                       step))
      return false;
    if (auto node = table.get("timeout"))
      if (!get_duration(prefix + ".timeout", *node, milliseconds{1},
                        step.timeout))
        return false;
    if (auto node = table.get("retries")) {
      auto n = node->as_integer();
      if (!n)
        return refuse_type(prefix + ".retries", "an integer", *node);
      if (n->get() < 0 || n->get() > max_retries)
        return refuse(prefix + ".retries",
                      "must be between 0 and 100, got " + render(*node), node);
      step.retries = static_cast<int32_t>(n->get());
    }
    if (auto node = table.get("backoff"))
      if (!get_duration(prefix + ".backoff", *node, milliseconds{0},
                        step.backoff))
        return false;
    auto backoff_max = table.get("backoff_max");
    if (backoff_max
        && !get_duration(prefix + ".backoff_max", *backoff_max,
                         milliseconds{0}, step.backoff_max))
      return false;
    if (step.backoff_max < step.backoff)
      return refuse(prefix + ".backoff_max",
                    "must be at least backoff ("
                      + format_duration(step.backoff) + "), got "
                      + format_duration(step.backoff_max)
                      + (backoff_max ? "" : " (the default)"),
                    backoff_max ? backoff_max : table.get("backoff"));
    if (auto node = table.get("requires_credentials"))
      if (!parse_credentials(prefix + ".requires_credentials", *node, step))
        return false;
    if (auto node = table.get("env"))
      if (!parse_env(prefix + ".env", *node, step))
        return false;
    return true;
  }

  bool parse_command(const std::string& key, const toml::node* node,
                     const toml::table& step_table, step_definition& step) {
    if (!node)
      return refuse(key,
                    "missing; every step needs a command (an array of "
                    "strings: program and arguments)",
                    &step_table);
    auto arr = node->as_array();
    if (!arr)
      return refuse_type(key, "an array of strings (program and arguments)",
                         *node);
    if (arr->empty())
      return refuse(key, "empty; expected the program and its arguments",
                    node);
    std::vector<std::string> argv;
    for (size_t i = 0; i < arr->size(); ++i) {
      auto& element = *arr->get(i);
      auto s = element.as_string();
      if (!s)
        return refuse_type(key + "[" + std::to_string(i) + "]", "a string",
                           element);
      argv.push_back(s->get());
    }
    if (step.shell) {
      if (argv.size() != 1)
        return refuse(key,
                      "with shell = true, expected exactly one string (the "
                      "line /bin/sh -c runs), got "
                        + std::to_string(argv.size()),
                      node);
      if (argv.front().find_first_not_of(" \t\r\n") == std::string::npos)
        return refuse(key, "the shell line is empty", node);
      step.command = {"/bin/sh", "-c", std::move(argv.front())};
      return true;
    }
    if (argv.front().empty())
      return refuse(key + "[0]", "the program must not be empty", node);
    // A relative path with a '/' is relative to the definition's folder,
    // not to whatever directory the daemon was started from.
    auto& program = argv.front();
    if (program.find('/') != std::string::npos
        && !fs::path{program}.is_absolute()) {
      std::error_code ec;
      auto resolved = fs::absolute(file_.parent_path() / program, ec);
      if (ec)
        return refuse(key + "[0]",
                      "cannot resolve " + in_quotes(program) + ": "
                        + ec.message(),
                      node);
      program = resolved.lexically_normal().string();
    }
    step.command = std::move(argv);
    return true;
  }

  bool parse_credentials(const std::string& key, const toml::node& node,
                         step_definition& step) {
    auto arr = node.as_array();
    if (!arr)
      return refuse_type(key,
                         "an array of strings (\"ENV_NAME\" or "
                         "\"file:/absolute/path\")",
                         node);
    for (size_t i = 0; i < arr->size(); ++i) {
      auto element_key = key + "[" + std::to_string(i) + "]";
      auto& element = *arr->get(i);
      auto s = element.as_string();
      if (!s)
        return refuse_type(element_key,
                           "a string (\"ENV_NAME\" or \"file:/absolute/path\")",
                           element);
      credential_spec spec;
      spec.name = s->get();
      constexpr std::string_view file_prefix = "file:";
      if (spec.name.starts_with(file_prefix)) {
        spec.kind = "file";
        spec.target = spec.name.substr(file_prefix.size());
        if (spec.target.empty() || !fs::path{spec.target}.is_absolute())
          return refuse(element_key,
                        "a file credential needs an absolute path "
                        "(\"file:/etc/engram/key\"), got "
                          + render(element),
                        &element);
      } else {
        spec.kind = "env";
        spec.target = spec.name;
        if (!valid_env_name(spec.target))
          return refuse(element_key,
                        "expected an environment variable name "
                        "([A-Za-z_][A-Za-z0-9_]*) or \"file:/absolute/path\", "
                        "got "
                          + render(element),
                        &element);
      }
      for (auto& other : step.credentials)
        if (other.name == spec.name)
          return refuse(element_key,
                        render(element) + " is listed twice", &element);
      step.credentials.push_back(std::move(spec));
    }
    return true;
  }

  bool parse_env(const std::string& key, const toml::node& node,
                 step_definition& step) {
    auto table = node.as_table();
    if (!table)
      return refuse_type(key, "a table of strings ({ NAME = \"value\" })",
                         node);
    for (auto&& [k, value] : *table) {
      auto name = std::string{k.str()};
      auto entry_key = key + "." + name;
      if (!valid_env_name(name))
        return refuse(entry_key,
                      "not a valid environment variable name "
                      "([A-Za-z_][A-Za-z0-9_]*)",
                      &value);
      if (name.starts_with("ENGRAM_"))
        return refuse(entry_key,
                      "names starting with ENGRAM_ are reserved for the "
                      "variables the daemon sets (ENGRAM_RUN_ID, "
                      "ENGRAM_STEP, ...)",
                      &value);
      auto s = value.as_string();
      if (!s)
        return refuse_type(entry_key, "a string", value);
      step.env.emplace_back(std::move(name), s->get());
    }
    return true;
  }

  /// Why a branch template is malformed, or nothing.
  static std::optional<std::string> check_template(std::string_view text) {
    bool open = false;
    size_t start = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '{') {
        if (open)
          return "a '{' inside a placeholder at offset " + std::to_string(i);
        open = true;
        start = i;
      } else if (text[i] == '}') {
        if (!open)
          return "a '}' without a '{' at offset " + std::to_string(i);
        if (i == start + 1)
          return "an empty placeholder \"{}\" at offset "
                 + std::to_string(start);
        open = false;
      }
    }
    if (open)
      return "a '{' without a '}' at offset " + std::to_string(start);
    return std::nullopt;
  }

  std::string name_;
  fs::path file_;
  std::string prefix_;
  std::optional<caf::error> error_;
};

/// Reads a whole file, or the reason it cannot be read.
caf::expected<std::string> read_text(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  if (!in)
    return make_error(errc::invalid_config,
                      file.string() + ": cannot read the workflow definition: "
                        + std::strerror(errno));
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad())
    return make_error(errc::invalid_config,
                      file.string()
                        + ": cannot read the workflow definition: read error");
  return std::move(out).str();
}

/// A field's value made safe for a git ref: lower case, runs of anything but
/// [a-z0-9._-] become '-', runs of '.' become one ("..", not allowed in a
/// ref), trimmed of '-' and '.', at most 64 characters, no ".lock" suffix.
std::string slug(std::string_view value) {
  std::string out;
  bool pending_dash = false;
  for (char raw : value) {
    auto c = static_cast<char>(
      (raw >= 'A' && raw <= 'Z') ? raw - 'A' + 'a' : raw);
    bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.'
                || c == '_' || c == '-';
    if (!keep) {
      pending_dash = true;
      continue;
    }
    if (pending_dash) {
      out += '-';
      pending_dash = false;
    }
    if (c == '.' && !out.empty() && out.back() == '.')
      continue;
    out += c;
  }
  auto trim = [](std::string& s) {
    auto first = s.find_first_not_of("-.");
    if (first == std::string::npos) {
      s.clear();
      return;
    }
    auto last = s.find_last_not_of("-.");
    s = s.substr(first, last - first + 1);
  };
  trim(out);
  if (out.size() > max_name_length) {
    out.resize(max_name_length);
    trim(out);
  }
  if (out.ends_with(".lock"))
    out[out.size() - 5] = '-';
  return out;
}

} // namespace

const step_definition*
workflow_definition::find_step(std::string_view step) const {
  auto i = std::find_if(steps.begin(), steps.end(),
                        [&](const step_definition& x) { return x.name == step; });
  return i == steps.end() ? nullptr : &*i;
}

std::vector<std::string> workflow_definition::step_names() const {
  std::vector<std::string> names;
  names.reserve(steps.size());
  for (auto& step : steps)
    names.push_back(step.name);
  return names;
}

caf::expected<workflow_definition>
parse_workflow(std::string_view toml_text, const std::string& name,
               const std::filesystem::path& file) {
  return parser{name, file}.run(toml_text);
}

caf::expected<std::vector<workflow_definition>>
load_workflows(const std::filesystem::path& dir) {
  std::vector<workflow_definition> result;
  std::error_code ec;
  auto status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found)
    return result;
  if (ec)
    return make_error(errc::invalid_config,
                      dir.string() + ": cannot read the workflow directory: "
                        + ec.message());
  if (!fs::is_directory(status))
    return make_error(errc::invalid_config,
                      dir.string()
                        + ": the workflow definitions path is not a directory");
  std::vector<fs::path> files;
  for (fs::directory_iterator it{dir, ec}, end; !ec && it != end;
       it.increment(ec)) {
    std::error_code type_ec;
    if (it->path().extension() == ".toml" && it->is_regular_file(type_ec))
      files.push_back(it->path());
  }
  if (ec)
    return make_error(errc::invalid_config,
                      dir.string() + ": cannot list the workflow directory: "
                        + ec.message());
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
  for (auto& file : files) {
    auto text = read_text(file);
    if (!text)
      return std::move(text.error());
    auto def = parse_workflow(*text, file.stem().string(), file);
    if (!def)
      return std::move(def.error());
    result.push_back(std::move(*def));
  }
  return result;
}

caf::expected<std::string>
derive_branch(const workflow_definition& def,
              const boost::json::object& input) {
  const auto& tpl = def.branch_template;
  if (tpl.empty())
    return std::string{};
  auto context = " (branch = " + in_quotes(tpl) + ")";
  std::string out;
  size_t i = 0;
  while (i < tpl.size()) {
    auto open = tpl.find('{', i);
    auto close_stray = tpl.find('}', i);
    if (close_stray < open)
      return make_error(errc::invalid_argument,
                        "malformed branch template: a '}' without a '{'"
                          + context);
    if (open == std::string::npos) {
      out.append(tpl, i, std::string::npos);
      break;
    }
    out.append(tpl, i, open - i);
    auto close = tpl.find('}', open + 1);
    if (close == std::string::npos || close == open + 1
        || tpl.find('{', open + 1) < close)
      return make_error(errc::invalid_argument,
                        "malformed branch template" + context);
    auto field = tpl.substr(open + 1, close - open - 1);
    auto it = input.find(field);
    if (it == input.end() || it->value().is_null())
      return make_error(errc::invalid_argument,
                        "input." + field
                          + " is required to derive the branch name"
                          + context);
    std::string text;
    auto& value = it->value();
    if (value.is_string())
      text = std::string{value.get_string()};
    else if (value.is_int64())
      text = std::to_string(value.get_int64());
    else if (value.is_uint64())
      text = std::to_string(value.get_uint64());
    else
      return make_error(errc::invalid_argument,
                        "input." + field
                          + " must be a string or an integer to derive the "
                            "branch name"
                          + context);
    auto part = slug(text);
    if (part.empty())
      return make_error(errc::invalid_argument,
                        "input." + field + " = " + in_quotes(text)
                          + " gives an empty branch name (it needs a letter "
                            "or digit)"
                          + context);
    out += part;
    i = close + 1;
  }
  return out;
}

std::chrono::milliseconds retry_delay(const step_definition& step,
                                      int32_t next_try) {
  auto delay = step.backoff;
  // Doubling stops at the cap (or at 0), so large tries cannot overflow or
  // spin.
  for (int32_t t = 2;
       t < next_try && delay > milliseconds{0} && delay < step.backoff_max;
       ++t)
    delay *= 2;
  return std::min(delay, step.backoff_max);
}

} // namespace engram::workflows
