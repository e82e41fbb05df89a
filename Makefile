# Distillery's entry points. `make demo` and `make test` install what is
# missing (Debian 12 packages, needs root or sudo), build, and run.
BUILD_DIR ?= build
JOBS ?= 2
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

.PHONY: deps build demo test test-deploy clean

deps:
	@bash scripts/install-deps.sh test

build: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@ninja -C $(BUILD_DIR) -j$(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 600

# The docker compose deployment for real (installs Docker's engine when
# absent; see scripts/test-deploy.sh).
test-deploy: build
	@bash scripts/test-deploy.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) out .distillery-demo
