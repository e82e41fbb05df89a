"""Builds the package with its gRPC stubs generated from ../../proto (protoc
and grpc_python_plugin, Debian's protobuf-compiler-grpc), as the CMake build
does for the build tree (CMakeLists.txt here)."""

import glob
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))


class BuildWithStubs(build_py):
    def run(self):
        out = os.path.join(HERE, "distillery", "v1")
        os.makedirs(out, exist_ok=True)
        plugin = shutil.which("grpc_python_plugin")
        if plugin is None:
            raise SystemExit("grpc_python_plugin not found: install "
                             "protobuf-compiler-grpc")
        protos = sorted(glob.glob(os.path.join(PROTO, "distillery", "v1",
                                               "*.proto")))
        subprocess.check_call(
            ["protoc", f"-I{PROTO}", f"--python_out={HERE}",
             f"--grpc_out={HERE}", f"--plugin=protoc-gen-grpc={plugin}"]
            + protos)
        open(os.path.join(out, "__init__.py"), "a").close()
        super().run()


setup(cmdclass={"build_py": BuildWithStubs})
