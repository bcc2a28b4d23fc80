#!/usr/bin/env bash
# Prints the version a build is stamped with: the release tag (v0.x.y) on
# the commit being built, else dev-<commit>; -dirty is added when the
# tree has uncommitted changes, and plain "dev" is printed outside git.
set -euo pipefail

if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo dev
  exit 0
fi
if v=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
  :
else
  v=dev-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
fi
if ! git diff --quiet HEAD -- 2>/dev/null; then
  v=$v-dirty
fi
echo "$v"
