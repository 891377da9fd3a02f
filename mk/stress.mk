# make stress: the long modes of the stress, crash and fuzz suites, for
# manual runs (make test runs the same code in short modes).
STRESS_SECS ?= 120
# Forks per backend of the fork stress (c_tests/test_fork.c under ASan,
# tests/fork.rs), and runs of the conformance suite under completion faults.
FORK_ROUNDS ?= 300
FAULT_RUNS ?= 200

.PHONY: stress
stress: lib c_tests/build/asan/test_fork
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 RIO_FORK_ROUNDS=$(FORK_ROUNDS) ./c_tests/build/asan/test_fork
	RIO_FORK_ROUNDS=$(FORK_ROUNDS) $(CARGO) test --$(PROFILE) --test fork -- --nocapture
	RIO_FAULT_RUNS=$(FAULT_RUNS) $(CARGO) test --$(PROFILE) --test conformance completion_faults -- --nocapture
	RIO_WAL_CRASH_ROUNDS=200 $(CARGO) test --$(PROFILE) --test wal_crash completion_faults -- --nocapture
	RIO_STRESS_SECS=$(STRESS_SECS) $(CARGO) test --$(PROFILE) --test stress -- --nocapture
	RIO_FUZZ_CALLS=2000000 $(CARGO) test --$(PROFILE) --test ffi_fuzz -- --nocapture
	RIO_POWER_LOSS_UNITS=300 $(CARGO) test --$(PROFILE) --test wal_power_loss -- --nocapture
	RIO_FUZZ_CASES=1000000 $(CARGO) test --$(PROFILE) --test wal_fuzz -- --nocapture
