#!/usr/bin/env bash
# Sourced by scripts/test.sh: installs the published GitHub example payloads the catalog
# tests validate (issue 11 §1) - `@octokit/webhooks-examples` at the version pinned in
# tests/data/github-examples/SOURCE.json - into the gitignored .cache/npm/, once per
# version, and exports HOOKLINE_TEST_GITHUB_EXAMPLES (its directory) for pytest.
# `npm pack` checks the tarball against the registry's integrity hash; it is unpacked
# beside the target and moved into place whole, so an interrupted run leaves no
# half-installed copy that a later run would take for the real one.
_hl_version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["examples_version"])' \
  tests/data/github-examples/SOURCE.json)
_hl_dir=".cache/npm/webhooks-examples-$_hl_version"
if ! grep -qs "\"version\": \"$_hl_version\"" "$_hl_dir/package.json"; then
  echo "== test data: @octokit/webhooks-examples@$_hl_version -> $_hl_dir"
  command -v npm >/dev/null || { echo "npm is needed to install the test data (Debian: apt-get install npm)" >&2; return 1; }
  mkdir -p .cache/npm
  _hl_tmp=$(mktemp -d .cache/npm/.install.XXXXXX)
  (cd "$_hl_tmp" && npm pack "@octokit/webhooks-examples@$_hl_version" --silent >/dev/null \
    && tar -xzf ./*.tgz) || { rm -rf "$_hl_tmp"; echo "npm pack failed" >&2; return 1; }
  rm -rf "$_hl_dir" && mv "$_hl_tmp/package" "$_hl_dir" && rm -rf "$_hl_tmp"
fi
export HOOKLINE_TEST_GITHUB_EXAMPLES="$PWD/$_hl_dir"
unset _hl_version _hl_dir _hl_tmp

# GitHub's REST API description (issue 12): `@octokit/openapi` at the version pinned in
# tests/data/github-openapi/SOURCE.json; only the two descriptions the fake GitHub API
# validates against (api.github.com and the newest GHES) are unpacked, the same
# all-or-nothing way. Exports HOOKLINE_TEST_GITHUB_OPENAPI (the package's directory).
_hl_version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["openapi_version"])' \
  tests/data/github-openapi/SOURCE.json)
_hl_dir=".cache/npm/openapi-$_hl_version"
if ! grep -qs "\"version\": \"$_hl_version\"" "$_hl_dir/package.json"; then
  echo "== test data: @octokit/openapi@$_hl_version -> $_hl_dir"
  command -v npm >/dev/null || { echo "npm is needed to install the test data (Debian: apt-get install npm)" >&2; return 1; }
  mkdir -p .cache/npm
  _hl_tmp=$(mktemp -d .cache/npm/.install.XXXXXX)
  (cd "$_hl_tmp" && npm pack "@octokit/openapi@$_hl_version" --silent >/dev/null \
    && tar -xzf ./*.tgz package/package.json package/generated/api.github.com.json \
      package/generated/ghes-3.19.json) || { rm -rf "$_hl_tmp"; echo "npm pack failed" >&2; return 1; }
  rm -rf "$_hl_dir" && mv "$_hl_tmp/package" "$_hl_dir" && rm -rf "$_hl_tmp"
fi
export HOOKLINE_TEST_GITHUB_OPENAPI="$PWD/$_hl_dir"
unset _hl_version _hl_dir _hl_tmp
