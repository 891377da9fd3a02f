# The rio command-line tool (cli/, package rio-cli, binary target/release/rio).
#   make cli        # builds target/$(PROFILE)/rio
#   make test-cli   # its tests: every subcommand on intact, torn and corrupted logs

TEST_SUITES += test-cli

.PHONY: cli test-cli

cli:
	$(CARGO) build --$(PROFILE) -p rio-cli

test-cli:
	$(CARGO) test --$(PROFILE) -p rio-cli
