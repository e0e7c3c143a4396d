#!/usr/bin/env bash
# speckit step 1/5, discovery: lists the *.md feature specs of the input's
# spec_dir (default: specs/ next to this script; a relative path is relative
# to this script's folder) with their SHA-256 and title (first heading), and
# derives the branch name. Writes discovery.json (the list).
#
# stdin:  {"feature": "<name>", "spec_dir": "<optional path>"}
# stdout: the input + {"branch", "spec_dir" (absolute), "specs": [{path, sha256, title}]}
set -euo pipefail

# stdout carries exactly one JSON value: keep it on fd 3 and send everything
# else (our diagnostics, any tool's chatter) to stderr.
exec 3>&1 1>&2

die() {
  local code=$1
  shift
  printf 'speckit discovery: %s\n' "$*" >&2
  exit "$code"
}

command -v jq >/dev/null || die 2 "jq is not installed (Debian: apt-get install jq)"
[[ -n "${ENGRAM_ARTIFACT_DIR:-}" && -d "$ENGRAM_ARTIFACT_DIR" ]] ||
  die 2 "ENGRAM_ARTIFACT_DIR is not set or not a directory (this script is a step of engram's speckit workflow)"

input=$(cat)
[[ -n "${input//[[:space:]]/}" ]] || input='{}'
jq -e -s 'length == 1 and (.[0] | type == "object")' <<<"$input" >/dev/null 2>&1 ||
  die 2 "stdin is not one JSON object (expected the run's input, e.g. {\"feature\": \"memory-export\"})"

# The branch name follows the daemon's rules for `branch = "speckit/{feature}"`
# (actors/workflows/definition.hpp): lower case, runs of other characters
# than [a-z0-9._-] become '-', no "..", trimmed of '-' and '.', at most 64
# characters, no ".lock" suffix.
jq -e '(.feature | type) as $t | ($t == "string" or $t == "number")' <<<"$input" >/dev/null ||
  die 2 "input.feature is required: a string naming the feature, e.g. {\"feature\": \"memory-export\"}"
slug=$(jq -r '
  .feature | tostring | ascii_downcase
  | gsub("[^a-z0-9._-]+"; "-") | gsub("\\.\\.+"; ".")
  | gsub("^[-.]+|[-.]+$"; "") | .[0:64] | gsub("^[-.]+|[-.]+$"; "")
  | if endswith(".lock") then .[0:-5] + "-lock" else . end' <<<"$input")
[[ -n "$slug" ]] || die 2 "input.feature gives an empty branch name: it needs a letter or a digit"
branch="speckit/$slug"

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
jq -e '.spec_dir == null or (.spec_dir | type == "string" and length > 0)' <<<"$input" >/dev/null ||
  die 2 "input.spec_dir must be a non-empty string (a folder of *.md specs) when given"
spec_dir=$(jq -r '.spec_dir // empty' <<<"$input")
[[ -n "$spec_dir" ]] || spec_dir="$script_dir/specs"
[[ "$spec_dir" == /* ]] || spec_dir="$script_dir/$spec_dir"
[[ -d "$spec_dir" ]] || die 2 "spec_dir $spec_dir is not a directory"
spec_dir=$(cd "$spec_dir" && pwd -P)

mapfile -d '' files < <(find "$spec_dir" -maxdepth 1 -type f -name '*.md' -print0 | LC_ALL=C sort -z)
((${#files[@]} > 0)) || die 2 "no *.md spec in $spec_dir"

for f in "${files[@]}"; do
  sha=$(sha256sum <"$f" | cut -d' ' -f1)
  title=$(grep -m1 -E '^#{1,6}[[:space:]]+[^[:space:]]' -- "$f" | tr -d '\r' |
    sed -E 's/^#+[[:space:]]+//; s/[[:space:]#]+$//' || true)
  [[ -n "$title" ]] || title=$(basename -- "$f" .md)
  jq -n --arg path "$f" --arg sha256 "$sha" --arg title "$title" \
    '{path: $path, sha256: $sha256, title: $title}'
  printf 'speckit discovery: %s (%s)\n' "$f" "$title" >&2
done | jq -s '.' >"$ENGRAM_ARTIFACT_DIR/discovery.json"

jq -c --arg branch "$branch" --arg spec_dir "$spec_dir" \
  --slurpfile specs "$ENGRAM_ARTIFACT_DIR/discovery.json" \
  '. + {branch: $branch, spec_dir: $spec_dir, specs: $specs[0]}' <<<"$input" >&3
