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
