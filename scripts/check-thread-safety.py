#!/usr/bin/env python3
"""Checks ABSL_GUARDED_BY and friends with clang's -Wthread-safety.

Runs `clang++ -fsyntax-only -Wthread-safety` with each translation unit's own
flags (from the build's compile_commands.json) over every source file under
services/ and common/, and fails when a thread-safety warning points into a
file that is not listed in NOT_CONVERTED below.

NOT_CONVERTED lists the files that still guard state with std::mutex, which
libstdc++ does not annotate as a capability, so clang cannot check them: their
warnings are printed and counted, not fatal. A file leaves the list when it
moves to absl::Mutex; from then on (as for every new file) a warning in it
fails the check.

Run it after a build (`make check-thread-safety` builds first): the units
include generated protobuf and gRPC headers. A unit clang cannot compile
fails the check too.

Usage: check-thread-safety.py [--build DIR] [--jobs N] [--clang PATH]
"""
import argparse
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

# Repository-relative paths (headers included: a warning is placed where the
# guarded member is declared or used).
NOT_CONVERTED = {
    # Empty: every file under services/ and common/ guards its state with an
    # annotated absl::Mutex. Add a file here only while converting it.
}
CHECKED_DIRS = ("services/", "common/")
WARNING = re.compile(r"^(?P<path>[^:\s]+):\d+:\d+: (?:warning|error): .*"
                     r"\[-W(?:error=)?thread-safety[a-z-]*\]$")


def find_clang(explicit):
    for name in ([explicit] if explicit else []) + ["clang++-14", "clang++"]:
        path = shutil.which(name)
        if path:
            return path
    sys.exit("check-thread-safety: clang++ not found "
             "(scripts/install-deps.sh check installs it)")


def clang_args(entry, clang):
    args = entry.get("arguments") or shlex.split(entry["command"])
    out = [clang]
    skip = False
    for a in args[1:]:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a == "-c":
            continue
        out.append(a)
    return out + ["-fsyntax-only", "-Wthread-safety", "-Wno-unknown-warning-option"]


def check(entry, clang, root):
    start = time.monotonic()
    proc = subprocess.run(clang_args(entry, clang), cwd=entry["directory"],
                          capture_output=True, text=True)
    warnings = []
    for line in proc.stderr.splitlines():
        m = WARNING.match(line)
        if m:
            path = os.path.relpath(os.path.realpath(
                os.path.join(entry["directory"], m.group("path"))), root)
            warnings.append((path, line))
    failed_to_compile = proc.returncode != 0 and not warnings
    return entry["file"], warnings, failed_to_compile, proc.stderr, \
        time.monotonic() - start


def main():
    root = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(root, "build"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--clang")
    opts = parser.parse_args()
    clang = find_clang(opts.clang)
    db = os.path.join(opts.build, "compile_commands.json")
    if not os.path.exists(db):
        sys.exit(f"check-thread-safety: no {db} (configure the build first)")
    with open(db) as f:
        entries = [e for e in json.load(f)
                   if os.path.relpath(os.path.realpath(e["file"]), root)
                   .startswith(CHECKED_DIRS)]
    start = time.monotonic()
    fatal, tolerated, broken = [], 0, []
    with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
        for file, warnings, failed, stderr, _ in pool.map(
                lambda e: check(e, clang, root), entries):
            if failed:
                broken.append((file, stderr))
            for path, line in warnings:
                if path in NOT_CONVERTED:
                    tolerated += 1
                else:
                    fatal.append(line)
    # A header's warning repeats in every unit that includes it.
    fatal = sorted(set(fatal))
    for file, stderr in broken:
        print(f"check-thread-safety: clang cannot compile {file}:\n{stderr}",
              file=sys.stderr)
    for line in fatal:
        print(line, file=sys.stderr)
    print(f"check-thread-safety: {len(entries)} translation units in "
          f"{time.monotonic() - start:.0f} s; {len(fatal)} warnings in "
          f"converted files, {tolerated} in files not converted yet "
          f"(NOT_CONVERTED)")
    return 1 if fatal or broken else 0


if __name__ == "__main__":
    sys.exit(main())
