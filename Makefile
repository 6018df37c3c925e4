# SkinMap book. `make book` builds the whole book on the embedded synthetic atlas (demo profile);
# `make test` runs the default test suite (everything except tests marked slow).
PYTHON  ?= python3
PROFILE ?= demo
PYTEST  ?= $(PYTHON) -m pytest
STAMP   := .make/install-$(shell cat pyproject.toml | sha256sum | cut -c1-12).stamp

.PHONY: install book render test test-all bench bench-quality bench-scale clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m pip install -e '.[cpu,test]'
	@mkdir -p .make && rm -f .make/install-*.stamp && touch $@

book: install
	$(PYTHON) -m skinmap book --profile $(PROFILE)

render: install
	$(PYTHON) -m skinmap render --profile $(PROFILE)

test: install
	$(PYTEST) -m "not slow"

test-all: install
	$(PYTEST)

bench: install
	@for f in $(filter-out tests/benchmarks/bench_scale.py,$(wildcard tests/benchmarks/bench_*.py)); do echo "== $$f"; $(PYTHON) $$f || exit 1; done

# Our copy and off-topic detectors against cleanvision, SelfClean and the critique's cosine rule
# (needs `pip install -e '.[peers]'` and, for the demo set, a built demo book).
bench-quality: install
	$(PYTHON) -m pip install -q -e '.[peers]'
	$(PYTHON) tests/benchmarks/bench_quality.py --run-dir runs/$(PROFILE) --out runs/bench/quality_comparison.csv

# Paper scale (issue 19): the analysis chapters' library calls on a synthetic 1.1M x 1,024 memmap atlas,
# each step in its own process (time, peak RSS), with the error table against exact computations.
# N_ROWS=100000,300000,1135082 writes the cost curve runs/bench/scale_cost_curve.csv.
N_ROWS  ?= 1135082
BENCH_OUT ?= runs/bench
bench-scale: install
	$(PYTHON) tests/benchmarks/bench_scale.py --n-rows $(N_ROWS) --out-dir $(BENCH_OUT) $(if $(STEPS),--steps $(STEPS))

clean:
	rm -rf runs/ _book/ figures/*/ .make/
