# segloss — the two commands a user needs are `make demo` and `make test`.
# Everything is built by CMake under build/; this file only sequences steps.
#
#   make          build build/segloss, libsegloss.a/.so and segloss.pc
#   make test     install missing Debian packages, build, run every test
#                 (unit, CLI, PyTorch/scipy references, fuzz corpora), then
#                 the same suite under AddressSanitizer + UBSan
#   make demo     install, build, run the quick loss benchmark (a few minutes)
#   make perf     speed benchmarks against PyTorch / scipy (perf/)
#   make fuzz     run each libFuzzer target for FUZZ_RUNS executions (default a
#                 million) or FUZZ_SECONDS (default 300), FUZZ_JOBS at a time
#   make clean    remove build outputs

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
DEMO_OUT ?= $(BUILD)/demo-bench

.PHONY: all build deps-build deps-test deps-demo deps-perf test test-fast test-asan demo perf fuzz clean

all: build

deps-build:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test
deps-demo:
	@scripts/deps.sh demo
deps-perf:
	@scripts/deps.sh perf

build: deps-build
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: deps-test build
	@t0=$$(date +%s); tests/run.sh $(BUILD) && $(MAKE) --no-print-directory test-asan; rc=$$?; \
	  t=$$(( $$(date +%s) - t0 )); echo "make test: $$((t / 60)) min $$((t % 60)) s (both passes)"; exit $$rc

# The suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps-test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@SL_SANITIZED=1 tests/run.sh $(ASAN_BUILD)

# Release suite only (no sanitizer pass): for quick iteration.
test-fast: deps-test build
	@tests/run.sh $(BUILD)

# The quick loss benchmark (presets/quick.json, docs/benchmark.md): 7 losses
# on the phantom and Colin27, trained, tested, compared and ranked; prints
# the ranking and the report's path. `segloss demo` is the one-slice demo.
demo: deps-demo build
	@$(BUILD)/segloss bench --preset quick --out $(DEMO_OUT) --force

perf: deps-perf
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DSL_NATIVE=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@perf/run.sh $(BUILD)

fuzz: deps-test
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DSL_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
