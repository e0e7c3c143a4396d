# The two commands: `make run` and `make test`. Both install what is missing
# (Debian packages), then build with CMake + Ninja (ccache when present).

BUILD_DIR ?= build
BUILD_TYPE ?= Release
CONFIG ?= conf/engram.toml
# Tests run two at a time: the machine has two cores, and each integration or
# end-to-end test starts its own PostgreSQL.
TEST_JOBS ?= 2

.PHONY: all deps configure build run test bench clean

all: build

deps:
	./scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: configure
	cmake --build $(BUILD_DIR)

run: build
	./$(BUILD_DIR)/engram serve --config $(CONFIG)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(TEST_JOBS) --timeout 300

# ENGRAM_BENCH_SETS=1k,10k selects consolidation sets (default: all four
# and the kernel alone).
bench: build
	$(BUILD_DIR)/bench/engram_bench_tasks
	$(BUILD_DIR)/bench/engram_bench_consolidation
	$(BUILD_DIR)/bench/engram_bench_workflows

clean:
	rm -rf $(BUILD_DIR)
