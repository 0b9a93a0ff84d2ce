#!/bin/sh
# Regenerates the lock files from pyproject.toml:
#   requirements/test-lock.txt  the runtime dependencies and the test extra
#   requirements/lock.txt       the runtime dependencies, at the versions of test-lock.txt
# Usage: sh requirements/compile.sh [uv pip compile options, e.g. --upgrade or --upgrade-package NAME]
# Needs uv on PATH (`pip install uv`, in any environment). Existing pins are kept unless told to upgrade.
#
# Why uv rather than pip-tools: uv reads no pip configuration, so a machine's pip.conf (extra file://
# indexes, a global constraints file, find-links) cannot leak into the lock, and it resolves for a
# target Python (3.11) and platform whatever interpreter runs it.
set -eu
cd "$(dirname "$0")/.."
# Only pyproject.toml decides the versions: no uv.toml (--no-config), no constraints from the environment.
unset UV_CONSTRAINT UV_OVERRIDE UV_BUILD_CONSTRAINT

compile() {
    out=$1 what=$2
    shift 2
    uv pip compile pyproject.toml --no-config --quiet --python-version 3.11 --python-platform linux \
        --custom-compile-command "sh requirements/compile.sh" --output-file "$out" "$@"
    {
        echo "# tenantgate's locked dependency set: $what, resolved for CPython 3.11 on Linux."
        echo "# Install with it as constraints (see README): pip install -c $out ..."
        echo "# Regenerate after changing pyproject.toml: sh requirements/compile.sh (uv; its header says why)."
        echo "# tests/test_lock.py fails while this file and pyproject.toml disagree."
        echo "#"
        grep -v '^# tenantgate.s locked\|^# Install with it\|^# Regenerate after\|^# tests/test_lock.py fails\|^#$' "$out"
    } >"$out.new"
    mv "$out.new" "$out"
}

# The whole set first, then the runtime set within it: users install the versions CI tested (resolved
# alone, the runtime set picks versions the test extra excludes, e.g. python-dateutil 4, which moto refuses).
compile requirements/test-lock.txt "the runtime dependencies and the test extra" --extra test "$@"
compile requirements/lock.txt "the runtime dependencies" --constraint requirements/test-lock.txt "$@"
