#!/usr/bin/env bash
# speckit step 5/5, finalize: writes the run's summary as result.json and
# result.md.
#
# stdin:  publish's result
# stdout: {"status": "complete", "run_id", "feature", "branch", "commit",
#          "patch_sha256", "published_ref", "published_commit", "remote", "specs"}
set -euo pipefail

# stdout carries exactly one JSON value: keep it on fd 3, the rest to stderr.
exec 3>&1 1>&2

die() {
  local code=$1
  shift
  printf 'speckit finalize: %s\n' "$*" >&2
  exit "$code"
}

command -v jq >/dev/null || die 2 "jq is not installed (Debian: apt-get install jq)"
[[ -n "${ENGRAM_ARTIFACT_DIR:-}" && -d "$ENGRAM_ARTIFACT_DIR" ]] ||
  die 2 "ENGRAM_ARTIFACT_DIR is not set or not a directory (this script is a step of engram's speckit workflow)"

input=$(cat)
jq -e -s 'length == 1 and (.[0] | type == "object")
  and (.[0].feature | type == "string" or type == "number")
  and all(.[0].branch, .[0].commit, .[0].patch_sha256, .[0].ref,
          .[0].published_commit, .[0].remote; type == "string")' <<<"$input" >/dev/null 2>&1 ||
  die 2 "stdin is not publish's result (an object with feature, branch, commit, patch_sha256, ref, published_commit and remote)"

jq --arg run_id "${ENGRAM_RUN_ID:-}" '{
    status: "complete",
    run_id: $run_id,
    feature: .feature,
    branch: .branch,
    commit: .commit,
    patch_sha256: .patch_sha256,
    published_ref: .ref,
    published_commit: .published_commit,
    remote: .remote,
    specs: [(.specs // [])[] | {title, sha256}]
  }' <<<"$input" >"$ENGRAM_ARTIFACT_DIR/result.json"

jq -r '
  "# speckit: \(.feature | tostring | gsub("[\r\n]+"; " "))",
  "",
  "- Run: \(if .run_id == "" then "(none)" else .run_id end)",
  "- Branch: `\(.branch)` at `\(.commit)`",
  "- Published: `\(.published_ref)` in `\(.remote)` at `\(.published_commit)`",
  "- Patch SHA-256: `\(.patch_sha256)`",
  "",
  "## Specs",
  "",
  (.specs[] | "- \(.title | gsub("[\r\n]+"; " ")) (sha256 `\(.sha256[0:12])`)")
' "$ENGRAM_ARTIFACT_DIR/result.json" >"$ENGRAM_ARTIFACT_DIR/result.md"

printf 'speckit finalize: %s complete\n' "$(jq -r '.branch' "$ENGRAM_ARTIFACT_DIR/result.json")" >&2
jq -c '.' "$ENGRAM_ARTIFACT_DIR/result.json" >&3
