# Distillery's entry points. `make demo` and `make test` install what is
# missing (Debian 12 packages, needs root or sudo), build, and run.
BUILD_DIR ?= build
JOBS ?= 2
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

.PHONY: deps build demo test check-thread-safety bench test-deploy test-sanitize test-sanitize-unit test-tsan fuzz clean

deps:
	@bash scripts/install-deps.sh test

build: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@ninja -C $(BUILD_DIR) -j$(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 600

# clang's -Wthread-safety over every translation unit under services/ and
# common/, with the build's own flags (compile_commands.json): ABSL_GUARDED_BY
# is checked by the compiler. Fails on a warning in a file converted to
# absl::Mutex (see NOT_CONVERTED in the script). About 4 minutes on 2 busy
# cores (57 units).
check-thread-safety: build
	@bash scripts/install-deps.sh check
	@python3 scripts/check-thread-safety.py --build $(BUILD_DIR) --jobs $(JOBS)

# The benchmark (not a test: it prints figures and asserts nothing): builds
# the release binaries (RelWithDebInfo: -O2 with symbols, for perf), runs
# bench/run and writes the table to bench/results.md. Takes about 4 minutes.
bench: build
	@bash scripts/install-deps.sh bench
	@python3 bench/run --build $(BUILD_DIR)

# The docker compose deployment for real (installs Docker's engine when
# absent; see scripts/test-deploy.sh).
test-deploy: build
	@bash scripts/test-deploy.sh $(BUILD_DIR)

# ASan + UBSan over every unit and integration test, in build-asan.
SANITIZE_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
test-sanitize: deps
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_CXX_FLAGS="$(SANITIZE_FLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
	@ninja -C build-asan -j$(JOBS) $(SANITIZE_TARGETS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/sanitizers/lsan.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) --timeout 900 $(SANITIZE_CTEST_ARGS)

# The same for the unit tests only (what CI runs: see .ci/run).
test-sanitize-unit:
	@$(MAKE) --no-print-directory test-sanitize SANITIZE_TARGETS=unit_tests \
	  SANITIZE_CTEST_ARGS="-L unit"

# ThreadSanitizer over the libcurl-on-Asio client. Only our code is instrumented (Debian's gRPC,
# Abseil and RocksDB are not), so TSan is limited to these tests, which do not
# run gRPC, and scripts/sanitizers/tsan.supp silences reports inside the
# uninstrumented libraries. Code on absl::Mutex (the coordinator, the
# worker, the clock) is not here: Debian's Abseil is built without TSan's annotations, so TSan
# cannot see its locks and reports every guarded access as a race. Its
# locking is checked by the compiler instead (check-thread-safety).
TSAN_TESTS := curl_http_client_test
test-tsan: deps
	@cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_CXX_FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=thread" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
	@ninja -C build-tsan -j$(JOBS) $(TSAN_TESTS)
	@set -e; for t in $(TSAN_TESTS); do \
	  echo "== $$t"; \
	  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/scripts/sanitizers/tsan.supp" \
	    build-tsan/tests/$$t --gtest_brief=1; \
	done

# libFuzzer targets (clang, ASan + UBSan) in build-fuzz, each run for
# FUZZ_SECONDS on a corpus seeded from fuzz/corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := prompt_parser_fuzz openai_response_fuzz anthropic_response_fuzz teacher_http_fuzz sse_parser_fuzz
fuzz:
	@bash scripts/install-deps.sh fuzz
	@cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_CXX_COMPILER=clang++ -DDISTILLERY_TESTS=OFF -DDISTILLERY_FUZZ=ON \
	  -DCMAKE_CXX_FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" >/dev/null
	@ninja -C build-fuzz -j$(JOBS) $(FUZZ_TARGETS)
	@bash scripts/run-fuzzers.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan build-fuzz out .distillery-demo
