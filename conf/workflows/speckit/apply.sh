#!/usr/bin/env bash
# speckit step 3/5, apply: creates a scratch git repository in
# $ENGRAM_WORKSPACE/repo (a fixed base commit with a README), creates the
# run's branch, applies submit's patch and commits it. Author, committer
# and dates are fixed, so the same patch gives the same commit; a retry
# starts the repository over. Git runs without the system's or the user's
# configuration.
#
# stdin:  submit's result
# stdout: stdin + {"repo", "commit", "branch"}
set -euo pipefail

# stdout carries exactly one JSON value: keep it on fd 3, the rest to stderr.
exec 3>&1 1>&2

die() {
  local code=$1
  shift
  printf 'speckit apply: %s\n' "$*" >&2
  exit "$code"
}

command -v jq >/dev/null || die 2 "jq is not installed (Debian: apt-get install jq)"
command -v git >/dev/null || die 2 "git is not installed (Debian: apt-get install git)"

input=$(cat)
jq -e -s 'length == 1 and (.[0] | type == "object")
  and (.[0].feature | type == "string" or type == "number")
  and (.[0].branch | type == "string" and length > 0)
  and (.[0].patch | type == "string" and startswith("/"))
  and (.[0].patch_sha256 | type == "string")' <<<"$input" >/dev/null 2>&1 ||
  die 2 "stdin is not submit's result (an object with feature, branch, patch and patch_sha256)"

workspace=${ENGRAM_WORKSPACE:-$PWD}
[[ -d "$workspace" ]] || die 2 "the workspace $workspace is not a directory"
workspace=$(cd "$workspace" && pwd -P)
branch=$(jq -r '.branch' <<<"$input")
patch=$(jq -r '.patch' <<<"$input")
expected=$(jq -r '.patch_sha256' <<<"$input")

[[ -f "$patch" ]] || die 4 "the patch $patch is gone; retry from submit with a new run"
actual=$(sha256sum <"$patch" | cut -d' ' -f1)
[[ "$actual" == "$expected" ]] ||
  die 4 "the patch $patch changed since submit (sha256 $actual, submitted $expected)"

# Hermetic git: no system or global configuration, fixed identity and dates.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="engram speckit" GIT_AUTHOR_EMAIL="speckit@engram.invalid"
export GIT_COMMITTER_NAME="engram speckit" GIT_COMMITTER_EMAIL="speckit@engram.invalid"
export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
git check-ref-format --branch "$branch" >/dev/null ||
  die 2 "branch $(jq -c '.branch' <<<"$input") is not a valid git branch name"

repo="$workspace/repo"
rm -rf -- "$repo"
git init -q -b main -- "$repo"
git -C "$repo" config user.name "$GIT_AUTHOR_NAME"
git -C "$repo" config user.email "$GIT_AUTHOR_EMAIL"
git -C "$repo" config commit.gpgsign false
printf '# speckit scratch repository\n\nPlans produced by the speckit workflow land in docs/specs/.\n' \
  >"$repo/README.md"
git -C "$repo" add README.md
git -C "$repo" commit -q -m "Base commit"

git -C "$repo" checkout -q -b "$branch"
git -C "$repo" apply --check -- "$patch" || die 4 "the patch $patch does not apply to the base commit"
git -C "$repo" apply --index -- "$patch"
git -C "$repo" commit -q -m "speckit: plan for $(jq -r '.feature | tostring' <<<"$input")"
commit=$(git -C "$repo" rev-parse --verify HEAD)
printf 'speckit apply: %s at %s in %s\n' "$branch" "$commit" "$repo" >&2

jq -c --arg repo "$repo" --arg commit "$commit" --arg branch "$branch" \
  '. + {repo: $repo, commit: $commit, branch: $branch}' <<<"$input" >&3
