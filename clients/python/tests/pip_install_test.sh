#!/usr/bin/env bash
# `pip install ./clients/python` into a temporary folder (no index: the
# build needs only setuptools, wheel, protoc and grpc_python_plugin from
# Debian), then the installed package, stubs included, imported from there.
# Usage: pip_install_test.sh PYTHON CLIENT_DIR
set -euo pipefail
python=$1
src=$2
target=$(mktemp -d)
trap 'rm -rf "$target"' EXIT
if ! "$python" -m pip install -q --no-deps --no-build-isolation \
    --disable-pip-version-check --root-user-action=ignore \
    --target "$target" "$src" >"$target.log" 2>&1; then
  cat "$target.log"
  rm -f "$target.log"
  echo "FAIL: pip install $src"
  exit 1
fi
rm -f "$target.log"
cd /
where=$(PYTHONPATH=$target "$python" -c '
import distillery
import distillery.v1.client_service_pb2 as pb
assert hasattr(distillery.Client, "export_to")
assert pb.ExportRequest().layout.format == ""
print(distillery.__file__)')
case "$where" in
  "$target"/*) echo "PASS: installed and imported from $where" ;;
  *) echo "FAIL: imported from $where, not from $target"; exit 1 ;;
esac
