.PHONY: bench

# Usage-metering benchmark against the local Postgres and Redis (see cmd/bench).
# Pass flags with BENCH_FLAGS, e.g. make bench BENCH_FLAGS=-skip-1m
bench:
	go run ./cmd/bench $(BENCH_FLAGS)

.PHONY: soak

# Fault and load harness: three Tollgate processes on a private Postgres and
# Redis (SOAK_FLAGS="-redis cluster": three Redis Cluster masters), through a
# Redis outage and a Postgres restart (see cmd/soak).
# Pass flags with SOAK_FLAGS, e.g. make soak SOAK_FLAGS="-duration 30s -lifecycles 200"
soak:
	go run ./cmd/soak $(SOAK_FLAGS)

.PHONY: screenshots

# The README's pictures of the billing page (docs/screenshots), taken by its
# browser test with a seeded organisation at desktop and phone width.
screenshots:
	go test ./internal/billingpage -run TestPageShowsWhatTheOrganisationUsed -count=1 -screenshots
