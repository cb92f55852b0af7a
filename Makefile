# The two commands: `make run` and `make test`. Everything else is a helper.
PRESET ?= release
TEST_PRESET ?= ci
JOBS ?= $(shell nproc)
VIGILD_ARGS ?=
FUZZ_SECONDS ?= 30
SHELL := /bin/bash

.PHONY: all deps build run test test-asan fuzz bench clean format

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
	@if [ "$$CI" = "true" ]; then $(MAKE) --no-print-directory fuzz test-asan; fi

test-asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

# Each libFuzzer target for FUZZ_SECONDS over its seed corpus; a crash, a hang (10 s per
# input) or 2 GB of memory fails the run.
fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)
	@for t in event_parser query sigma_parser bundle; do \
	  seeds=tests/fuzz/corpus/$${t%_parser}; work=build/fuzz/corpus/$$t; mkdir -p $$work; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  timeout $$(( $(FUZZ_SECONDS) + 120 )) ./build/fuzz/tests/fuzz/$${t}_fuzz $$work $$seeds \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build/fuzz/ 2>&1 | grep -E "^(stat::number_of_executed_units|==|SUMMARY|artifact)" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

bench: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)
	./build/release/bench/vigil_match_bench
	./build/release/bench/vigil_pipeline_bench
	./build/release/bench/vigil_store_bench
	bash bench/api_bench.sh

format:
	find core match store ingest api app tests bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf build
