"""Generates the package's gRPC stubs from ../../proto (protoc and
grpc_python_plugin, Debian's protobuf-compiler-grpc) into distillery/v1,
as the CMake build does for the build tree (CMakeLists.txt here), then
builds the package. Run by `pip install ./clients/python`."""

import glob
import os
import shutil
import subprocess

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))


def generate_stubs() -> None:
    protos = sorted(glob.glob(os.path.join(PROTO, "distillery", "v1",
                                           "*.proto")))
    out = os.path.join(HERE, "distillery", "v1")
    if not protos:
        # A source distribution carries the stubs already.
        if not os.path.isdir(out):
            raise SystemExit(f"no proto files under {PROTO}, and no stubs")
        return
    plugin = shutil.which("grpc_python_plugin")
    if plugin is None or shutil.which("protoc") is None:
        raise SystemExit("protoc and grpc_python_plugin are needed: install "
                         "protobuf-compiler-grpc")
    os.makedirs(out, exist_ok=True)
    subprocess.check_call(
        ["protoc", f"-I{PROTO}", f"--python_out={HERE}", f"--grpc_out={HERE}",
         f"--plugin=protoc-gen-grpc={plugin}"] + protos)
    open(os.path.join(out, "__init__.py"), "a").close()


generate_stubs()
setup()
