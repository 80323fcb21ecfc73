#!/usr/bin/env bash
# Build KenLM's lmplz and build_binary from the kenlm source distribution on PyPI into VENV/bin.
# Usage: scripts/build_kenlm.sh VENV
set -euo pipefail
venv=${1:?usage: build_kenlm.sh VENV}
py="$venv/bin/python"
[ -x "$venv/bin/lmplz" ] && [ -x "$venv/bin/build_binary" ] && exit 0

debs="cmake libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev"
missing=""
for d in $debs; do dpkg -s "$d" >/dev/null 2>&1 || missing="$missing $d"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build_kenlm: installing Debian packages:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "build_kenlm: KenLM needs these Debian packages; install them and re-run:" >&2
    echo "  sudo apt-get install$missing" >&2
    exit 1
  fi
fi

work="$venv/src/kenlm-build"
rm -rf "$work" && mkdir -p "$work"
"$py" -m pip download -q --no-binary :all: --no-deps --no-build-isolation kenlm==0.3.0 -d "$work"
tar -xzf "$work"/kenlm-*.tar.gz -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'kenlm-*' | head -n 1)
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCOMPILE_TESTS=OFF >"$work/cmake.log" 2>&1 \
  || { echo "build_kenlm: cmake failed, see $work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" --target lmplz build_binary -j "$(nproc)" >"$work/build.log" 2>&1 \
  || { echo "build_kenlm: build failed, see $work/build.log" >&2; exit 1; }
install -m 755 "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$venv/bin/"
rm -rf "$work"
echo "build_kenlm: installed lmplz and build_binary into $venv/bin"
