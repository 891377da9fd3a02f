# The README's C example must compile (-Werror) and run.
TEST_SUITES += test-readme

.PHONY: test-readme
test-readme: lib
	./scripts/readme_example.sh
