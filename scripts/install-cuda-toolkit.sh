#!/usr/bin/env bash
# Makes sure the build has what it needs: a CUDA toolkit (nvcc and cuda.h) and libclang (for bindgen).
#
# - An existing toolkit is used as it is: $CUDA_HOME, $CUDA_PATH, nvcc on PATH, /usr/local/cuda
#   (what a DGX Spark or any CUDA host has). Nothing is installed then.
# - Otherwise the pinned CUDA 13.0 compiler and headers come from the Python package index into
#   .cuda-toolkit/ inside the repository (git ignores it). The four packages are pinned together:
#   left unpinned, nvidia-nvvm resolves to a newer release than nvcc and the compiler breaks.
# - libclang comes from apt (libclang-dev) when no libclang.so is found.
#
# Idempotent: a second run checks a stamp and returns in seconds. It writes .cuda-toolkit/env.sh with
# the variables the build needs and prints them; build.rs also finds .cuda-toolkit by itself, so
# sourcing env.sh is optional.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$repo/.cuda-toolkit"
pins=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96)
stamp="$dest/.stamp"
want_stamp="${pins[*]} $(uname -m)"

say() { printf 'install-cuda-toolkit: %s\n' "$*" >&2; }

find_existing_toolkit() {
  local c
  for c in "${CUDA_HOME:-}" "${CUDA_PATH:-}"; do
    if [ -n "$c" ] && [ -x "$c/bin/nvcc" ] && [ -f "$c/include/cuda.h" ]; then echo "$c"; return 0; fi
  done
  if command -v nvcc >/dev/null 2>&1; then
    c=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
    if [ -f "$c/include/cuda.h" ]; then echo "$c"; return 0; fi
  fi
  if [ -x /usr/local/cuda/bin/nvcc ] && [ -f /usr/local/cuda/include/cuda.h ]; then echo /usr/local/cuda; return 0; fi
  return 1
}

install_pip_toolkit() {
  local py
  py=$(command -v python3 || command -v python || true)
  if [ -z "$py" ]; then
    say "no CUDA toolkit found and no python3 to fetch one: install python3 (with pip) or a CUDA toolkit and set CUDA_HOME"
    exit 1
  fi
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] && [ -x "$dest/nvidia/cu13/bin/nvcc" ]; then
    return 0
  fi
  say "fetching the CUDA 13.0 compiler and headers from the Python package index into $dest"
  rm -rf "$dest"
  mkdir -p "$dest"
  PIP_ROOT_USER_ACTION=ignore "$py" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
    --target "$dest" "${pins[@]}"
  chmod +x "$dest"/nvidia/cu13/bin/* "$dest"/nvidia/cu13/nvvm/bin/* 2>/dev/null || true
  # nvcc looks for the runtime library next to the headers when it links host code; we only build
  # device code (fatbin) but keep the layout of a normal toolkit: lib64 -> lib.
  if [ -d "$dest/nvidia/cu13/lib" ] && [ ! -e "$dest/nvidia/cu13/lib64" ]; then
    ln -s lib "$dest/nvidia/cu13/lib64"
  fi
  echo "$want_stamp" >"$stamp"
}

find_libclang() {
  local d
  if [ -n "${LIBCLANG_PATH:-}" ] && ls "$LIBCLANG_PATH"/libclang*.so* >/dev/null 2>&1; then echo "$LIBCLANG_PATH"; return 0; fi
  for d in /usr/lib/llvm-*/lib /usr/lib64 /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib; do
    if ls "$d"/libclang.so* "$d"/libclang-[0-9]*.so* >/dev/null 2>&1; then echo "$d"; return 0; fi
  done 2>/dev/null
  return 1
}

if toolkit=$(find_existing_toolkit); then
  say "using the CUDA toolkit at $toolkit"
else
  install_pip_toolkit
  toolkit="$dest/nvidia/cu13"
  say "using the pinned CUDA 13.0 toolkit at $toolkit"
fi

if ! libclang=$(find_libclang); then
  say "libclang not found: installing libclang-dev with apt"
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get here: install libclang (the clang development library) and set LIBCLANG_PATH"
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libclang-dev >/dev/null
  libclang=$(find_libclang) || { say "libclang-dev installed but libclang.so still not found"; exit 1; }
fi
say "using libclang from $libclang"

mkdir -p "$dest"
cat >"$dest/env.sh" <<ENV
export CUDA_HOME="$toolkit"
export LIBCLANG_PATH="$libclang"
ENV
cat "$dest/env.sh"
