#!/usr/bin/env bash
# Re-lock the dependencies after a change to pyproject.toml (the one command to run).
#   scripts/lock.sh              re-resolve what pyproject.toml asks for, keeping locked versions that
#                                still fit, and re-export requirements/*.txt
#   scripts/lock.sh --upgrade    move everything to the newest versions pyproject.toml allows
# Then run scripts/test.sh (tests/test_setup.py checks the lock) and commit pyproject.toml, uv.lock and
# requirements/. uv: the one in .venv (dev profile), else any uv on PATH (`pip install uv`).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.venv/bin/uv
[ -x "$uv" ] || uv=$(command -v uv) || { echo "lock: uv not found: pip install uv" >&2; exit 2; }

"$uv" lock "$@"
"$uv" pip compile --quiet --generate-hashes --universal --python-version 3.10 --no-header \
  requirements/bootstrap.in -o requirements/bootstrap.txt
# One requirements file per profile of scripts/setup.sh, exported from uv.lock with hashes.
export_profile() {  # NAME EXTRA...
  local name=$1; shift
  local args=()
  for extra in "$@"; do args+=(--extra "$extra"); done
  "$uv" export --quiet --frozen --no-emit-project --no-header "${args[@]}" -o "requirements/$name.txt"
}
while read -r name extras; do
  # shellcheck disable=SC2086
  export_profile "$name" ${extras//,/ }
done < requirements/profiles
echo "lock: uv.lock and requirements/*.txt are up to date; run scripts/test.sh, then commit them"
