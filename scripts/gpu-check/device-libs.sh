#!/usr/bin/env bash
# Checks, on the GPU machine, that every shared library the CUDA allconv needs is found before
# anything runs, and names each one that is not:
#   bash scripts/gpu-check/device-libs.sh BINARY
# Linked at build time (ldd must resolve them): libcuda.so.1 (the driver), libcudart.so.13,
# libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13, libcudnn.so.9. cuDNN
# loads its sub-libraries (libcudnn_*.so.9) itself with dlopen, so ldd cannot see them: each
# must be in libcudnn.so.9's folder or on LD_LIBRARY_PATH. LIBS_REQUIRED and CUDNN_SUBLIBS
# replace the two lists (the CPU rehearsal checks its CPU build with the C library only).
# Prints one "NAME => PATH" line per library found and one "MISSING: ..." line per library not
# found; exits 1 if any is missing. `device-libs.sh --list` prints the first list (for
# scripts/prepare-gpu-check.sh, which checks it against what the binary it built links).
set -uo pipefail
required=${LIBS_REQUIRED-"libcuda.so.1 libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudnn.so.9"}
sublibs=${CUDNN_SUBLIBS-"libcudnn_graph.so.9 libcudnn_ops.so.9 libcudnn_cnn.so.9 libcudnn_adv.so.9 libcudnn_engines_precompiled.so.9 libcudnn_engines_runtime_compiled.so.9 libcudnn_heuristic.so.9"}
if [ "${1:-}" = --list ]; then
  echo "$required"
  exit 0
fi
bin=${1:?usage: device-libs.sh BINARY | --list}
[ -f "$bin" ] || { echo "MISSING: $bin (the binary to check)"; exit 1; }
if ! ldd_out=$(ldd "$bin" 2>&1); then
  echo "ldd $bin failed: $ldd_out"
  exit 1
fi
missing=0
# A library's path as ldd resolved it ("" if it did not list it, "not found" if it could not).
resolved() {
  awk -v lib="$1" '$1 == lib && $2 == "=>" { print ($3 == "not" ? "not found" : $3); exit }' <<< "$ldd_out"
}
# A library in LD_LIBRARY_PATH's folders or the linker cache ("" if nowhere).
findable() {
  local dir
  local IFS=:
  for dir in ${LD_LIBRARY_PATH:-}; do
    [ -n "$dir" ] && [ -e "$dir/$1" ] && { echo "$dir/$1"; return; }
  done
  ldconfig -p 2>/dev/null | awk -v lib="$1" '$1 == lib { print $NF; exit }'
}
for lib in $required; do
  path=$(resolved "$lib")
  [ -z "$path" ] && path=$(findable "$lib")
  case $path in
    "") echo "MISSING: $lib (not linked by $bin, and not on LD_LIBRARY_PATH or in ldconfig's cache)"; missing=1 ;;
    "not found") echo "MISSING: $lib (ldd: not found; LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-})"; missing=1 ;;
    *) echo "$lib => $path" ;;
  esac
done
# Anything else ldd could not resolve.
while read -r lib; do
  case " $required " in *" $lib "*) ;; *) echo "MISSING: $lib (ldd: not found)"; missing=1 ;; esac
done < <(awk '$2 == "=>" && $3 == "not" { print $1 }' <<< "$ldd_out")
if [ -n "$sublibs" ]; then
  cudnn=$(resolved libcudnn.so.9)
  cudnn_dir=""
  [ -n "$cudnn" ] && [ "$cudnn" != "not found" ] && cudnn_dir=$(dirname "$cudnn")
  where=${cudnn_dir:-"the folder of libcudnn.so.9"}
  for lib in $sublibs; do
    if [ -n "$cudnn_dir" ] && [ -e "$cudnn_dir/$lib" ]; then
      echo "$lib => $cudnn_dir/$lib"
    elif path=$(findable "$lib") && [ -n "$path" ]; then
      echo "$lib => $path"
    else
      echo "MISSING: $lib (a cuDNN sub-library, loaded with dlopen: not in $where nor on LD_LIBRARY_PATH)"
      missing=1
    fi
  done
fi
exit $missing
