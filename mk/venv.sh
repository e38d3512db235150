#!/usr/bin/env bash
# mk/venv.sh DIR PYSPARK REQUIREMENTS: the venv DIR (.venv/pyspark-<version>)
# with pyspark==PYSPARK and the pinned packages of REQUIREMENTS, made once.
#
# Worktrees may share one .venv (a symlink), so an install holds a lock per
# venv and ends by writing DIR/.installed with what it installed; a venv
# whose .installed already says so is left alone. Venvs are named by their
# pyspark version, so two versions never overwrite each other. The venv is
# made at its physical path, which its scripts record.
set -euo pipefail
dir=$1 pyspark=$2 req=$3
want="pyspark==$pyspark $(sha256sum "$req" | cut -c1-16)"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$want" ]; then
  touch "$dir/.installed"
  exit 0
fi
physical="$(cd "$(dirname "$dir")" && pwd -P)/$(basename "$dir")"
echo "mk/venv.sh: installing pyspark==$pyspark and $req into $dir"
rm -f "$dir/.installed"
[ -x "$physical/bin/python" ] || python3 -m venv "$physical"
"$physical/bin/python" -m pip install -q --disable-pip-version-check "pyspark==$pyspark" -r "$req"
echo "$want" > "$dir/.installed"
