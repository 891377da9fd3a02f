# `make bench`: the comparison benchmark (benches/compare, docs/benchmarks.md).
# Runs rio next to std, tokio::fs and fio in one run and writes
# bench-results/{results.json,table.md,chart.svg}.
#   make bench BENCH_ARGS='--quick'
#   make bench BENCH_ARGS='--workloads direct,cached --duration 2s --reps 5'
#   make bench BENCH_ARGS='--dir /mnt/nvme/scratch'
# `bench-smoke` (part of `make test`) runs it tiny, so the tool cannot rot.

BENCH_ARGS ?=
# The Python row runs in the project's .venv (mk/python.mk), where aiofiles,
# one of its peers, is installed.
BENCH_CARGO = RIO_BENCH_PYTHON=$(VENV_PY) $(CARGO) bench --bench compare --quiet

.PHONY: bench-fio bench-aiofiles bench-smoke

# fio is the practical-limit peer. Install it where we can (root, apt); if
# that fails the run goes on and reports fio as absent, it never hides it.
bench-fio:
	@if ! command -v fio >/dev/null 2>&1; then \
		echo "bench: installing fio"; \
		if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 && \
			{ DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio; } >/dev/null 2>&1; then \
			echo "bench: $$(fio --version) installed"; \
		else \
			echo "bench: could not install fio (needs root and apt-get); fio will be reported as absent"; \
		fi; \
	fi

# aiofiles is the Python asyncio row's peer from PyPI; if it cannot be
# installed the run reports it as absent.
bench-aiofiles: $(VENV_PY)
	@$(VENV_PY) -c 'import aiofiles' 2>/dev/null || \
		$(VENV_PY) -m pip install -q --disable-pip-version-check aiofiles || \
		echo "bench: could not install aiofiles; it will be reported as absent"

bench: bench-fio bench-aiofiles lib
	$(BENCH_CARGO) -- $(BENCH_ARGS)

# Tiny sizes, one short repetition, its own output dir; fio used if present.
bench-smoke: bench-aiofiles lib
	$(BENCH_CARGO) -- --quick --reps 1 --duration 30ms --file-size 8M --cache-size 4M \
		--seed-mib 4 --wal-threads 1,4 --out bench-results/smoke --dir bench-results/smoke/scratch
	@test -s bench-results/smoke/results.json && test -s bench-results/smoke/chart.svg && \
		python3 -c 'import json,sys; d=json.load(open("bench-results/smoke/results.json")); sys.exit(1 if d["errors"] or not d["workloads"] else 0)' && \
		echo "bench-smoke: the benchmark tool ran every workload and wrote its report"

TEST_SUITES += bench-smoke
