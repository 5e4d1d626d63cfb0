# lemgrid — every target installs into its own virtual environment first.
# The newest supported interpreter present: Python 3.12 (where mosaik 3.7.1 installs),
# else 3.11; each as python3.X on the PATH or in pyenv's versions. PYTHON=... overrides.
PYTHON ?= $(shell for v in 3.12 3.11; do \
	for p in python$$v $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v*/bin/python$$v; do \
	$$p -c "" 2>/dev/null && { echo $$p; exit 0; }; done; done; echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SCENARIO ?= faia2021
OUT ?= results/$(SCENARIO)

.PHONY: install run test bench bench-month bench-admm bench-clearance bench-scale bench-load fuzz lint schema docs compose clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/lemgrid run $(SCENARIO) --out $(OUT)

# pytest exits 5 when it collects no tests; make treats that as a failure too.
test: $(STAMP) browser
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/lemgrid bench $(SCENARIO) --out bench.json

# A month of the locality market (Mathematical Problems in Engineering 2023; 10 buildings,
# 30 days), distributed and in-process.
bench-month: $(STAMP)
	$(BIN)/lemgrid bench tems2023 --runs 3 --out bench_month.json

# The ADMM market of Antunes et al. 2024 distributed, with and without residual balancing.
bench-admm: $(STAMP)
	$(BIN)/lemgrid bench antunes2024 --runs 3 --out bench_admm.json

bench-clearance: $(STAMP)
	$(BIN)/lemgrid bench fernandes2024_cigre --runs 3 --out bench_clearance.json

bench-scale: $(STAMP)
	$(BIN)/lemgrid bench --scale 90 300 1000 --runs 3

# The coordinator under 1000 scripted agents for a day, then 200 agents for 30 days.
bench-load: $(STAMP)
	$(BIN)/lemgrid bench --load 1000
	$(BIN)/lemgrid bench --load 200 --load-days 30
	$(BIN)/lemgrid bench --load 100000

# 10,000 hostile frames at a running coordinator; fails on any crash.
fuzz: $(STAMP)
	$(BIN)/python -m tests.wire.fuzz --frames 10000

lint: $(STAMP)
	$(BIN)/ruff check lemgrid agents coordinator grid scenarios tests

# The community as containers (needs a Docker engine): coordinator, two agent hosts,
# grid simulator and runner; results in ./results/$(SCENARIO). Every service exits by
# itself when the day is done (the coordinator first), so no --abort-on-container-exit;
# the target fails when the runner did.
compose:
	mkdir -p results
	SCENARIO=$(SCENARIO) LEMGRID_UID=$$(id -u) LEMGRID_GID=$$(id -g) docker-compose up --build
	test "$$(docker wait $$(docker-compose ps -q runner))" = 0

schema: $(STAMP)
	$(BIN)/python -m lemgrid.scenarios.schema

# The documentation site into site/: the generated reference pages first (the CLI, the
# scenario schema, the mechanisms' parameters), then a build that fails on any warning.
docs: $(STAMP)
	$(BIN)/python -m lemgrid.scenarios.reference docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) results site bench.json bench_month.json bench_admm.json bench_clearance.json bench_scaling.json bench_scaling.png

# Headless Chromium for tests/test_browser.py (report.html in a real browser): installed
# with apt-get where missing, as root or through sudo.
.PHONY: browser
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	{ if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
