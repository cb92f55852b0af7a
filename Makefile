# The two commands: `make run` and `make test`. Everything else is a helper.
PRESET ?= release
TEST_PRESET ?= ci
JOBS ?= $(shell nproc)
VIGILD_ARGS ?=
FUZZ_SECONDS ?= 20
SHELL := /bin/bash

.PHONY: all deps build run test test-asan test-tsan soak fuzz bench clean format check-format image chart-test

all: build

deps:
	@bash scripts/install-deps

build: deps
	cmake --preset $(PRESET) >/dev/null
	cmake --build --preset $(PRESET) -j $(JOBS)

# The container image (Dockerfile) with podman, over a Debian 12 base made with debootstrap:
# localhost/vigil:<version>. scripts/image podman ... runs podman on the same storage.
image: deps
	bash scripts/image build

# The Helm chart's tests alone (also part of `make test`): helm lint, the rendered objects
# against the Kubernetes schemas, the values schema.
chart-test: deps
	cmake --preset $(TEST_PRESET) >/dev/null
	cmake --build --preset $(TEST_PRESET) -j $(JOBS) --target vigild
	bash tests/helm/chart_test.sh build/$(TEST_PRESET)/app/vigild

run: build
	./build/$(PRESET)/app/vigild --data-dir ./data $(VIGILD_ARGS)

test: deps
	@if [ "$$CI" = "true" ]; then $(MAKE) --no-print-directory check-format; fi
	cmake --preset $(TEST_PRESET) >/dev/null
	cmake --build --preset $(TEST_PRESET) -j $(JOBS)
	ctest --preset $(TEST_PRESET) -j $(JOBS)
	@if [ "$$CI" = "true" ]; then $(MAKE) --no-print-directory fuzz test-asan test-tsan; fi

# ASan + UBSan over every suite but the three-replica cluster e2e (ClusterTest, ClusterContentTest:
# three sanitized daemons on two cores, serial, about 5 of CI's minutes); the code they drive runs
# under ASan in alert_mirror_, content_sync_ and repartition_integration_test and the one-replica e2e.
# Nor the OTRF differential (the whole tree's reference matcher over 41,954 events): the scan memo
# and the deferred escapes it checks run under ASan in differential_test, match_test's ScanMemo
# tests and the event parser fuzz target.
test-asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

# ThreadSanitizer over the suites where threads meet: the HTTP server and API (I/O threads,
# slow and content pools), the shard workers, the store (retention, scrub), the consumer
# pipeline, rollouts and the publisher against the mock Kafka cluster, the alert outputs'
# delivery threads against their test destinations. Only their binaries
# are built; librdkafka's C11 threads are made visible to TSan by
# tests/support/tsan_c11_threads.cc.
TSAN_TARGETS = api_test ingest_test store_test pipeline_integration_test rollout_integration_test publisher_integration_test outputs_integration_test alert_mirror_integration_test content_sync_integration_test
test-tsan: deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan -j $(JOBS) --target $(TSAN_TARGETS)
	ctest --preset tsan -j $(JOBS)

# The soak (tests/e2e/soak_e2e_test.cc): SOAK_SECONDS at SOAK_RATE events/s with bundle swaps
# and restarts; exact alerts, no errors, a flat resident set after warm-up.
SOAK_SECONDS ?= 600
SOAK_RATE ?= 5000
soak: deps
	cmake --preset $(TEST_PRESET) >/dev/null
	cmake --build --preset $(TEST_PRESET) -j $(JOBS)
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_RATE=$(SOAK_RATE) ctest --preset soak

# Each libFuzzer target for FUZZ_SECONDS over its seed corpus; a crash, a hang (10 s per
# input) or 2 GB of memory fails the run. Only the fuzz targets are built (not vigild or vigil).
FUZZ_TARGETS = event_parser query sigma_parser mapping_parser bundle alert_document correlation_hit content_record
fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS) --target $(addsuffix _fuzz,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
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

# One style, enforced: .clang-format (Google, 100 columns) through clang-format 14, the
# version scripts/install-deps installs. CI runs check-format before it builds.
CLANG_FORMAT ?= clang-format-14
FORMAT_SOURCES = find core match store output ingest api app tests bench -name '*.h' -o -name '*.cc'
format: deps
	$(FORMAT_SOURCES) | xargs $(CLANG_FORMAT) -i

check-format: deps
	@$(FORMAT_SOURCES) | xargs $(CLANG_FORMAT) --dry-run --Werror \
	  || { echo "check-format: run 'make format' and commit the result" >&2; exit 1; }

clean:
	rm -rf build
