# make stress: the long modes of the stress, crash and fuzz suites, for
# manual runs (make test runs the same code in short modes).
STRESS_SECS ?= 120

.PHONY: stress
stress: lib
	RIO_STRESS_SECS=$(STRESS_SECS) $(CARGO) test --$(PROFILE) --test stress -- --nocapture
	RIO_FUZZ_CALLS=2000000 $(CARGO) test --$(PROFILE) --test ffi_fuzz -- --nocapture
	RIO_POWER_LOSS_UNITS=300 $(CARGO) test --$(PROFILE) --test wal_power_loss -- --nocapture
	RIO_FUZZ_CASES=1000000 $(CARGO) test --$(PROFILE) --test wal_fuzz -- --nocapture
