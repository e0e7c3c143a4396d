#!/usr/bin/env bash
# speckit step 2/5, submit: assembles a plan from the discovered specs
# (titles, then each spec's text) and writes it as a unified diff that adds
# docs/specs/<feature>.md to a repository. Writes plan.md and change.patch.
# A spec whose content changed since discovery fails the step.
#
# stdin:  discovery's result
# stdout: stdin + {"patch": "<absolute path of change.patch>", "patch_sha256"}
set -euo pipefail

# stdout carries exactly one JSON value: keep it on fd 3, the rest to stderr.
exec 3>&1 1>&2

die() {
  local code=$1
  shift
  printf 'speckit submit: %s\n' "$*" >&2
  exit "$code"
}

command -v jq >/dev/null || die 2 "jq is not installed (Debian: apt-get install jq)"
[[ -n "${ENGRAM_ARTIFACT_DIR:-}" && -d "$ENGRAM_ARTIFACT_DIR" ]] ||
  die 2 "ENGRAM_ARTIFACT_DIR is not set or not a directory (this script is a step of engram's speckit workflow)"

input=$(cat)
jq -e -s 'length == 1 and (.[0] | type == "object")
  and (.[0].feature | type == "string" or type == "number")
  and (.[0].branch | type == "string" and length > 0)
  and (.[0].specs | type == "array" and length > 0
       and all(.[]; (.path | type == "string") and (.sha256 | type == "string")
                    and (.title | type == "string")))' <<<"$input" >/dev/null 2>&1 ||
  die 2 "stdin is not discovery's result (an object with feature, branch and a non-empty specs list)"

# The same name as the branch's last part (see discovery.sh).
slug=$(jq -r '
  .feature | tostring | ascii_downcase
  | gsub("[^a-z0-9._-]+"; "-") | gsub("\\.\\.+"; ".")
  | gsub("^[-.]+|[-.]+$"; "") | .[0:64] | gsub("^[-.]+|[-.]+$"; "")
  | if endswith(".lock") then .[0:-5] + "-lock" else . end' <<<"$input")
[[ -n "$slug" ]] || die 2 "input.feature gives an empty file name: it needs a letter or a digit"
target="docs/specs/$slug.md"

plan="$ENGRAM_ARTIFACT_DIR/plan.md"
count=$(jq '.specs | length' <<<"$input")
{
  # Only the specs' names and contents go into the plan, never local paths,
  # so the same specs give the same patch (and commit) on any machine.
  printf '# Plan: %s\n\n' "$(jq -r '.feature | tostring | gsub("[\r\n]+"; " ")' <<<"$input")"
  printf 'Assembled by the speckit workflow from %d spec(s).\n\n' "$count"
  for ((i = 0; i < count; i++)); do
    jq -r --argjson i "$i" \
      '.specs[$i] | "\($i + 1). \(.title | gsub("[\r\n]+"; " ")) (`\(.path | split("/") | last)`, sha256 \(.sha256[0:12]))"' \
      <<<"$input"
  done
  for ((i = 0; i < count; i++)); do
    path=$(jq -r --argjson i "$i" '.specs[$i].path' <<<"$input")
    expected=$(jq -r --argjson i "$i" '.specs[$i].sha256' <<<"$input")
    [[ -f "$path" ]] || die 4 "spec $path is gone since discovery; start a new run"
    actual=$(sha256sum <"$path" | cut -d' ' -f1)
    [[ "$actual" == "$expected" ]] ||
      die 4 "spec $path changed since discovery (sha256 $actual, discovered $expected); start a new run"
    printf '\n---\n\n'
    # The spec's text, with a final newline if it lacks one.
    cat -- "$path"
    [[ -z "$(tail -c 1 -- "$path")" ]] || printf '\n'
  done
} >"$plan"

lines=$(wc -l <"$plan")
patch="$ENGRAM_ARTIFACT_DIR/change.patch"
{
  printf 'diff --git a/%s b/%s\n' "$target" "$target"
  printf 'new file mode 100644\n'
  printf -- '--- /dev/null\n'
  printf '+++ b/%s\n' "$target"
  printf '@@ -0,0 +1,%d @@\n' "$lines"
  sed -e 's/^/+/' -- "$plan"
} >"$patch"
patch_sha=$(sha256sum <"$patch" | cut -d' ' -f1)
printf 'speckit submit: %s adds %s (%d lines, sha256 %s)\n' "$patch" "$target" "$lines" "$patch_sha" >&2

jq -c --arg patch "$patch" --arg sha "$patch_sha" \
  '. + {patch: $patch, patch_sha256: $sha}' <<<"$input" >&3
