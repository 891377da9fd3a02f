# WAL extras for manual runs (the short crash tests already run inside
# `cargo test --release`, i.e. `make test`):
#   make wal-crash-long                 500 SIGKILL and 500 power-loss rounds per backend
#   make wal-crash-long WAL_CRASH_ROUNDS=2000
#   make wal-perf                       durable appends/s next to a write+fdatasync loop
#   make wal-perf RIO_WAL_PERF_DIR=/mnt/nvme/scratch
WAL_CRASH_ROUNDS ?= 500
RIO_WAL_PERF_DIR ?= $(CURDIR)

.PHONY: wal-crash-long wal-perf

wal-crash-long:
	RIO_WAL_CRASH_ROUNDS=$(WAL_CRASH_ROUNDS) $(CARGO) test --$(PROFILE) --test wal_crash -- --nocapture

wal-perf:
	RIO_WAL_PERF_DIR=$(RIO_WAL_PERF_DIR) $(CARGO) test --$(PROFILE) --test wal_perf -- --ignored --nocapture

# The asynchronous-acknowledgement crash test (append_async + wait), long
# mode: part of `make stress`.
.PHONY: wal-async-crash-long
wal-async-crash-long:
	RIO_WAL_CRASH_ROUNDS=$(WAL_CRASH_ROUNDS) $(CARGO) test --$(PROFILE) --test wal_async_crash -- --nocapture

stress: wal-async-crash-long
