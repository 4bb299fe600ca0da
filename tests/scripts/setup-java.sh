#!/usr/bin/env bash
# Builds tests/java (pier.Scenarios, driving the official RocketMQ 5 Java client
# org.apache.rocketmq:rocketmq-client-java, pinned in tests/java/pom.xml) for
# tests/tests/e2e/official_java.rs, which runs this script once per test run.
#
# Layout (PIER_TOOLS_DIR defaults to ~/.cache/pier-tools; nothing is written
# inside the clone):
#   $PIER_TOOLS_DIR/m2                    Maven local repository
#   $PIER_TOOLS_DIR/java/build-<hash>/    build output of the sources whose
#                                         hash (pom.xml + src/) is <hash>
#   .../build-<hash>/classpath            the runnable classpath, one line
#   .../build-<hash>/.built               marker: the build finished
#
# Prints the classpath as its last line on stdout; logs go to stderr.
# Idempotent: when the marker of the current sources exists and every
# classpath entry is still there, it only hashes the sources (well under a
# second). Needs no stdin; fine under CI=true. Needs java (17+) and mvn; when
# they are missing and apt-get is usable, it installs Debian's packages.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
M2="$TOOLS_DIR/m2"
PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../java" && pwd)"

ensure_toolchain() {
  if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
    return 0
  fi
  log "java or mvn missing"
  apt_install openjdk-17-jdk-headless maven || true
  command -v java >/dev/null 2>&1 || die "java not found on PATH (Java 17+ needed)"
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (Maven 3.8+ needed)"
}

# Hash of everything the build depends on in the clone: file names and contents.
sources_hash() {
  (
    cd "$PROJECT"
    find pom.xml src -type f -print0 | LC_ALL=C sort -z | while IFS= read -r -d '' f; do
      printf '%s\n' "$f"
      sha256sum <"$f"
    done
  ) | sha256sum | cut -c1-16
}

# The marker exists and every classpath entry is still on disk.
built() {
  local dir=$1 entry
  [[ -f "$dir/.built" && -s "$dir/classpath" ]] || return 1
  IFS=':' read -r -a entries <"$dir/classpath"
  for entry in "${entries[@]}"; do
    [[ -e "$entry" ]] || return 1
  done
}

HASH=$(sources_hash)
BUILD="$TOOLS_DIR/java/build-$HASH"

built "$BUILD" && exec cat "$BUILD/classpath"

ensure_toolchain
mkdir -p "$TOOLS_DIR/java" "$M2"

# One build at a time per tools dir (several clones may share it).
lock "$TOOLS_DIR/java/.lock"
built "$BUILD" && exec cat "$BUILD/classpath"

rm -rf "$BUILD"
mkdir -p "$BUILD"
MVN_LOG="$TOOLS_DIR/java/mvn.log"
log "building $PROJECT into $BUILD (Maven repository $M2)"
: >"$MVN_LOG"
run_logged "$MVN_LOG" "mvn package" mvn -B -q -Dstyle.color=never \
  -Dmaven.repo.local="$M2" \
  -Dpier.buildDir="$BUILD/target" \
  -Dmdep.outputFile="$BUILD/deps.classpath" \
  -f "$PROJECT/pom.xml" \
  package dependency:build-classpath

JAR=$(ls "$BUILD"/target/pier-java-scenarios-*.jar 2>/dev/null | head -n 1)
[[ -n "$JAR" ]] || die "no pier-java-scenarios jar in $BUILD/target"
[[ -s "$BUILD/deps.classpath" ]] || die "mvn wrote no dependency classpath"
printf '%s:%s\n' "$JAR" "$(cat "$BUILD/deps.classpath")" >"$BUILD/classpath"

# Without arguments the main loads the client's service provider and exits 2
# with a usage error: proves the classpath is runnable.
set +e
probe=$(java -cp "$(cat "$BUILD/classpath")" pier.Scenarios </dev/null 2>&1)
rc=$?
set -e
[[ $rc -eq 2 && "$probe" == *"--case is required"* ]] ||
  die "built classes do not run (exit $rc): $probe"
touch "$BUILD/.built"
log "built in $(took)"
cat "$BUILD/classpath"
