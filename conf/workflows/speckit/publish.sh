#!/usr/bin/env bash
# speckit step 4/5, publish: a harmless local publish. Pushes the run's
# branch to the bare repository $ENGRAM_WORKSPACE/remote.git (created when
# missing) and writes publish.json. Requires SPECKIT_PUBLISH_TOKEN (any
# non-empty value; the daemon checks it first, this script again, exit 3
# when it is missing). The token is never printed.
#
# stdin:  apply's result
# stdout: stdin + {"remote", "ref", "published_commit"}
set -euo pipefail

# stdout carries exactly one JSON value: keep it on fd 3, the rest to stderr.
exec 3>&1 1>&2

die() {
  local code=$1
  shift
  printf 'speckit publish: %s\n' "$*" >&2
  exit "$code"
}

if [[ -z "${SPECKIT_PUBLISH_TOKEN:-}" ]]; then
  die 3 "SPECKIT_PUBLISH_TOKEN is not set or empty: set it in the daemon's environment (for this local publish any non-empty value will do), then retry the run"
fi
command -v jq >/dev/null || die 2 "jq is not installed (Debian: apt-get install jq)"
command -v git >/dev/null || die 2 "git is not installed (Debian: apt-get install git)"
[[ -n "${ENGRAM_ARTIFACT_DIR:-}" && -d "$ENGRAM_ARTIFACT_DIR" ]] ||
  die 2 "ENGRAM_ARTIFACT_DIR is not set or not a directory (this script is a step of engram's speckit workflow)"

input=$(cat)
jq -e -s 'length == 1 and (.[0] | type == "object")
  and (.[0].branch | type == "string" and length > 0)
  and (.[0].repo | type == "string" and startswith("/"))
  and (.[0].commit | type == "string" and length > 0)' <<<"$input" >/dev/null 2>&1 ||
  die 2 "stdin is not apply's result (an object with branch, repo and commit)"

workspace=${ENGRAM_WORKSPACE:-$PWD}
[[ -d "$workspace" ]] || die 2 "the workspace $workspace is not a directory"
workspace=$(cd "$workspace" && pwd -P)
branch=$(jq -r '.branch' <<<"$input")
repo=$(jq -r '.repo' <<<"$input")
commit=$(jq -r '.commit' <<<"$input")

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
ref="refs/heads/$branch"
[[ -d "$repo/.git" ]] || die 4 "the repository $repo is gone; retry from apply"
head=$(git -C "$repo" rev-parse --verify -q "$ref^{commit}") ||
  die 4 "the repository $repo has no branch $branch; retry from apply"
[[ "$head" == "$commit" ]] ||
  die 4 "branch $branch is at $head in $repo, not at apply's commit $commit"

remote="$workspace/remote.git"
if [[ ! -d "$remote" ]]; then
  git init -q --bare -b main -- "$remote"
fi
# No force: a branch that moved elsewhere in the remote is a conflict to
# look at, not to overwrite.
git -C "$repo" push -q -- "$remote" "$ref:$ref" || die 4 "pushing $branch to $remote failed"
published=$(git --git-dir="$remote" rev-parse --verify -q "$ref^{commit}") ||
  die 4 "$remote has no $ref after the push"
[[ "$published" == "$commit" ]] || die 4 "$remote has $ref at $published, expected $commit"
printf 'speckit publish: %s -> %s at %s\n' "$branch" "$remote" "$published" >&2

jq -n --arg remote "$remote" --arg ref "$ref" --arg commit "$published" \
  --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  '{remote: $remote, ref: $ref, published_commit: $commit, published_at: $at}' \
  >"$ENGRAM_ARTIFACT_DIR/publish.json"

jq -c --arg remote "$remote" --arg ref "$ref" --arg commit "$published" \
  '. + {remote: $remote, ref: $ref, published_commit: $commit}' <<<"$input" >&3
