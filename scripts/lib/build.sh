# shellcheck shell=bash
# One build of the workspace serves every script: the tests, the binaries the
# e2e images are made of, the load generator and the benchmark smoke test.
# Source it; it defines functions and changes nothing by itself.
#
# Cargo resolves features for the packages a command names, so `-p storefront`
# and `-p swarm-agent` would each build their dependencies with other features
# (and `cargo build --bin x` without the dev-dependencies' features): every
# command here names the whole workspace and builds tests, so one set of
# artifacts serves them all. The profile is `ci` (Cargo.toml): optimised
# enough for the e2e load scenarios, quick to compile, with line tables for
# backtraces. CARGO_PROFILE=release builds what production ships instead.
# docs/decisions.md, "One build for every suite", has the measurements.

CARGO_PROFILE=${CARGO_PROFILE:-ci}

# Clippy rides on the same build: clippy-driver compiles the workspace's own
# crates (what `cargo clippy` runs, here with code generation too) and every
# warning, rustc's or clippy's, is an error; dependencies are compiled by
# rustc as usual (Cargo caps their lints). A separate `cargo clippy` would
# check every dependency again: minutes of CPU on two cores. Set
# BUILD_WITHOUT_CLIPPY=1 to build without it (the artifacts then differ).
if [ -z "${BUILD_WITHOUT_CLIPPY:-}" ]; then
  RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
  RUSTFLAGS="-D warnings"
  export RUSTC_WORKSPACE_WRAPPER RUSTFLAGS
fi
case $CARGO_PROFILE in
  dev) BIN_DIR=target/debug ;;
  *) BIN_DIR=target/$CARGO_PROFILE ;;
esac

# workspace_test ARGS…: `cargo test` over the whole workspace on the shared profile.
workspace_test() {
  cargo test --workspace --profile "$CARGO_PROFILE" "$@"
}

# Builds everything once (libraries, binaries, examples, test binaries); a
# no-op when nothing changed. The binaries land in $BIN_DIR.
build_workspace() {
  workspace_test --no-run --quiet || return 1
  local bin
  for bin in storefront swarm-agent examples/loadgen examples/hello; do
    [ -x "$BIN_DIR/$bin" ] || { echo "build_workspace: $BIN_DIR/$bin was not built" >&2; return 1; }
  done
}

# run_test_binaries NAME… [-- ARGS…]: runs the integration tests NAME of the
# one build, each in its package's folder as `cargo test` would, with ARGS
# for the test harness. `cargo test --test NAME` alone would select fewer
# units than the build did, and Cargo would compile some crates again in
# another variant (a proc macro's dependency built for the host only, and
# every crate above it: 38-52 s of swarm-agent's engine step). Fails if a
# binary is missing or a test fails; runs them all either way.
run_test_binaries() {
  local names=() status=0 dir exe found=0 listing
  while [ $# -gt 0 ] && [ "$1" != -- ]; do names+=("$1"); shift; done
  [ "${1:-}" != -- ] || shift
  listing=$(test_executables "${names[@]}") || return 1
  # The listing on fd 3: a test's children inherit stdin, not this loop's input.
  while IFS=$'\t' read -r -u 3 dir exe; do
    [ -n "$exe" ] || continue
    found=$((found + 1))
    echo "     Running ${exe#"$PWD"/} (in ${dir#"$PWD"/})"
    (cd "$dir" && "$exe" "$@") || status=1
  done 3<<<"$listing"
  if [ "$found" -ne ${#names[@]} ]; then
    echo "run_test_binaries: found $found of the test binaries ${names[*]}" >&2
    return 1
  fi
  return "$status"
}

# test_executables NAME…: "PACKAGE_DIR<TAB>EXECUTABLE" of each integration
# test named NAME, from the build's own listing (a no-op when built; when
# not, the compiler's messages go to stderr and a failed build fails).
test_executables() {
  local messages status=0
  messages=$(workspace_test --no-run --quiet --message-format=json-diagnostic-rendered-ansi) || status=$?
  python3 -c '
import json, os, sys
names = set(sys.argv[1:])
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("reason") == "compiler-message":
        sys.stderr.write(m["message"].get("rendered") or "")
    elif m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in t.get("kind", []) and t.get("name") in names:
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])' "$@" <<<"$messages"
  return "$status"
}
