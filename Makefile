# The two commands: `make run` and `make test`. Everything else is a helper.
PRESET ?= release
TEST_PRESET ?= ci
JOBS ?= $(shell nproc)
VIGILD_ARGS ?=

.PHONY: all deps build run test test-asan bench clean format

all: build

deps:
	@bash scripts/install-deps

build: deps
	cmake --preset $(PRESET) >/dev/null
	cmake --build --preset $(PRESET) -j $(JOBS)

run: build
	./build/$(PRESET)/app/vigild --data-dir ./data $(VIGILD_ARGS)

test: deps
	cmake --preset $(TEST_PRESET) >/dev/null
	cmake --build --preset $(TEST_PRESET) -j $(JOBS)
	ctest --preset $(TEST_PRESET) -j $(JOBS)
	@if [ "$$CI" = "true" ]; then $(MAKE) --no-print-directory test-asan; fi

test-asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

bench: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)
	./build/release/bench/vigil_match_bench

format:
	find core match store ingest api app tests bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf build
