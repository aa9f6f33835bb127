# Everything runs inside .venv, created and filled from pyproject.toml on first use.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-dev
SIM     ?= icarus
WIDTH   ?= 64
SCENARIO ?= seed
PYTEST_ARGS ?=

.PHONY: all test sim verilog lint synth bench clean deps iverilog

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

deps: $(STAMP) iverilog

# Icarus Verilog is the one Debian package we need; install it when root.
iverilog:
	@command -v iverilog >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian package iverilog"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; \
	  else \
	    echo "error: iverilog is missing; run 'sudo apt-get install -y iverilog' (or run make as root)"; exit 1; \
	  fi; }

test: deps
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

verilog: $(STAMP)
	$(PY) -m hdl.build --out build/verilog

lint: deps verilog
	$(PY) -m hdl.build --out build/verilog --lint

# The NIC's reference configuration, small iCE40 build and ECP5 sweep (QUICK=1: the first two),
# into build/synth/report.json and report.md; `python -m tb.readme_tables` puts the table in
# the README. Configurations already synthesised from the same design are not run again;
# SYNTH_JOBS (default 2) run at once, each tool run stopped after SYNTH_TIMEOUT seconds
# (a row "timed out" keeps what the tool had measured: nextpnr's packing and placement).
SYNTH_JOBS ?= 2
SYNTH_TIMEOUT ?= 3600
synth: $(STAMP)
	$(PY) -m hdl.synth nic --jobs $(SYNTH_JOBS) --timeout $(SYNTH_TIMEOUT) $(if $(QUICK),--quick)

sim: deps
	$(PY) -m tb.sim --sim $(SIM) --width $(WIDTH) --scenario $(SCENARIO)

# Receive and transmit rates, latencies, simulation speed and the model's throughput, into
# build/bench/bench.json and bench.md (tb/bench_run.py); Verilator unless SIM is given,
# QUICK=1 for the smoke plan. `python -m tb.readme_tables` puts the table in the README.
BENCH_SIM := $(if $(filter file,$(origin SIM)),verilator,$(SIM))
bench: deps
	$(PY) -m tb.bench_run --sim $(BENCH_SIM) --width $(WIDTH) $(if $(QUICK),--quick) \
	  --command "make bench$(if $(filter-out file,$(origin SIM)), SIM=$(SIM))$(if $(filter-out file,$(origin WIDTH)), WIDTH=$(WIDTH))$(if $(QUICK), QUICK=1)"

clean:
	rm -rf build
