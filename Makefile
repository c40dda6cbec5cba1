# labshare-agent — build, test, install.  `make check` and `make demo` are all a new machine needs.

VERSION   := 0.1.0
PREFIX    ?= /usr
DESTDIR   ?=
BUILD     ?= build
CC        ?= cc
CFLAGS    ?= -O2 -g
LDFLAGS   ?=

# pkg-config name:Debian package — `make deps` installs what pkg-config can't find.
DEPS_PC   := libmodbus:libmodbus-dev libcurl:libcurl4-openssl-dev sqlite3:libsqlite3-dev \
             libcjson:libcjson-dev cmocka:libcmocka-dev libcrypto:libssl-dev libssl:libssl-dev \
             zlib:zlib1g-dev libsystemd:libsystemd-dev libxml-2.0:libxml2-dev
DEPS_CMD  := pkg-config:pkg-config cc:gcc openssl:openssl sqlite3:sqlite3 \
             chromium:chromium fc-list:fontconfig
# fontconfig language:Debian package — a font for the HTML report's browser test (SPEC §4).
DEPS_FONT := zh:fonts-wqy-microhei
# Debian packages `make deb` builds with (SPEC §1: debhelper and lintian), checked with dpkg-query.
DEPS_DEB  := build-essential debhelper dpkg-dev fakeroot lintian pkg-config

PKGS      := libmodbus libcurl sqlite3 libcjson libcrypto zlib libsystemd libxml-2.0
WARN      := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wformat=2 -Wvla -Wwrite-strings
HARDEN    := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
HARDEN_LD := -pie -Wl,-z,relro,-z,now

# Recursively expanded on purpose: pkg-config runs only once `make deps` has had its turn.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lpthread -lm -lutil
ALL_CFLAGS = $(WARN) $(if $(WERROR),-Werror) -D_GNU_SOURCE -DLABSHARE_VERSION='"$(VERSION)"' \
             $(HARDEN) $(INC) -MMD -MP $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)

# The layers (README, Development): each folder compiles with -I only for what it may use, so
# an include that crosses a layer the wrong way does not compile. Writers below, readers above:
#   lib       log, clock, time, growable buffer, UTF-8, JSON writer, files — includes nothing else of ours
#   conf      the configuration (JSONC reader, checks)          lib
#   store     the SQLite file and the chain (alone may include <sqlite3.h>)   lib
#   contract  what a driver sees of the core (source.h)
#   core      observations in, records out                      lib conf store contract
#   drivers   a source in, observations out                     lib conf/part contract
#   sinks     uploads of sealed records (feed, NRII)            lib conf store
#   report    the auditors' report from sealed records          lib conf store core
#   app       command line, daemon, status                      everything
I_lib      := -Iagent/lib
I_conf     := $(I_lib) -Iagent/conf
I_store    := $(I_lib) -Iagent/store
I_core     := $(I_lib) -Iagent/conf -Iagent/store -Iagent/contract -Iagent/core
I_drivers  := $(I_lib) -Iagent/conf/part -Iagent/contract -Idrivers
I_sinks    := $(I_lib) -Iagent/conf -Iagent/store -Iagent/contract -Iagent/sinks
I_report   := $(I_lib) -Iagent/conf -Iagent/store -Iagent/contract -Iagent/report
I_app      := $(I_lib) -Iagent/conf -Iagent/conf/part -Iagent/store -Iagent/contract -Iagent/core -Idrivers \
              -Iagent/sinks -Iagent/report -Iagent/app
I_tests    := $(I_app) -Itests/lib
INC         = $(I_tests)
# Only the store may include <sqlite3.h>: every other layer finds this one first, an #error.
# The tests keep the real one (they may look into the file directly).
NO_SQLITE  := -Iagent/store/outside
LAYER_INC   = $(if $(filter store,$(1)),,$(NO_SQLITE)) $(I_$(1))
ALL_LDFLAGS = $(HARDEN_LD) $(LDFLAGS)

LAYERS    := lib conf store core sinks report app
CORE_SRC  := $(filter-out agent/app/main.c,$(foreach l,$(LAYERS),$(wildcard agent/$(l)/*.c))) $(wildcard drivers/*.c)
CORE_OBJ  := $(CORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/profiles.o
LIB       := $(BUILD)/liblabshare.a
AGENT     := $(BUILD)/labshare-agent

HARNESS_SRC := $(wildcard tests/lib/*.c)
HARNESS_OBJ := $(HARNESS_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SIM_SRC   := $(wildcard tests/sim/*.c)
SIM_BIN   := $(if $(SIM_SRC),$(BUILD)/modbus-sim)
REFPLAT_SRC := $(wildcard tests/refplat/*.c)
REFPLAT_BIN := $(if $(REFPLAT_SRC),$(BUILD)/refplat)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
# Fuzz targets are linked with a small file-reading main in the normal build, so they never rot.
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps check check-pkg test asan fuzz fuzz-build bench demo install deb clean
# Keep the objects of test programs between runs (they are intermediate to make).
.SECONDARY:
all: $(AGENT)

# `make V=1` shows the full command lines.
Q := $(if $(V),,@)

$(foreach l,$(LAYERS),$(eval $(BUILD)/agent/$(l)/%.o: INC = $$(call LAYER_INC,$(l))))
$(BUILD)/drivers/%.o: INC = $(NO_SQLITE) $(I_drivers)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The meter profiles (agent/conf/profiles/NAME.json) are compiled in as data: one .incbin per
# file and a table of {name, data, length} (profiles.c reads it). The list is kept in a file
# that changes only when a profile comes or goes, so adding or removing one rebuilds the table.
PROFILES  := $(sort $(wildcard agent/conf/profiles/*.json))
PROFILES_LIST := $(BUILD)/gen/profiles.list
$(shell mkdir -p $(BUILD)/gen && (echo '$(PROFILES)' | cmp -s - $(PROFILES_LIST) || echo '$(PROFILES)' > $(PROFILES_LIST)))
$(BUILD)/gen/profiles.S: $(PROFILES_LIST) $(PROFILES)
	@mkdir -p $(@D)
	$(Q){ i=0; printf '\t.section .rodata\n'; \
	  for f in $(PROFILES); do n=$$(basename $$f .json); \
	    printf 'p%d_name:\t.asciz "%s"\np%d_data:\t.incbin "%s"\np%d_end:\n' $$i $$n $$i $$f $$i; i=$$((i+1)); done; \
	  printf '\t.section .data.rel.ro,"aw"\n\t.balign 16\n\t.globl conf_profile_files\nconf_profile_files:\n'; \
	  i=0; for f in $(PROFILES); do printf '\t.dc.a p%d_name, p%d_data, p%d_end - p%d_data\n' $$i $$i $$i $$i; i=$$((i+1)); done; \
	  printf '\t.dc.a 0, 0, 0\n\t.section .note.GNU-stack,"",@progbits\n'; } > $@.tmp && mv $@.tmp $@
$(BUILD)/gen/profiles.o: $(BUILD)/gen/profiles.S
	$(if $(Q),@echo "  AS      $<")
	$(Q)$(CC) -c -o $@ $<

$(LIB): $(CORE_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(AGENT): $(BUILD)/agent/app/main.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(HARNESS_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs cmocka)

$(BUILD)/modbus-sim: $(SIM_SRC:%.c=$(BUILD)/%.o)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/refplat: $(REFPLAT_SRC:%.c=$(BUILD)/%.o)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs libssl)

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/standalone.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The benchmarks' shared part (tests/bench/benchlib.[ch]), compiled once and linked into each.
BENCHLIB_OBJ := $(BUILD)/tests/bench/benchlib.o
$(BUILD)/bench/%: $(BUILD)/tests/bench/%.o $(BENCHLIB_OBJ) $(HARNESS_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The benchmark's agent: the shipped one but for a clock that LABSHARE_CLOCK_OFFSET_S may
# shift (clock.c); its clock.o comes before the library, so the library's is not linked.
TESTCLOCK := $(BUILD)/bench/labshare-agent-testclock
$(BUILD)/testclock/clock.o: agent/lib/clock.c
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -DLABSHARE_TEST_CLOCK -c -o $@ $<
$(BUILD)/testclock/clock.o: INC = $(NO_SQLITE) $(I_lib)

$(TESTCLOCK): $(BUILD)/agent/app/main.o $(BUILD)/testclock/clock.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Everything the tests need, built before any runs.
test-bins: $(AGENT) $(UNIT_BIN) $(SIM_BIN) $(REFPLAT_BIN) $(FUZZ_BIN) $(BENCH_BIN) $(TESTCLOCK)

deps:
	@missing=""; \
	for pair in $(DEPS_PC); do pc=$${pair%%:*}; deb=$${pair#*:}; \
	  command -v pkg-config >/dev/null 2>&1 && pkg-config --exists $$pc 2>/dev/null || missing="$$missing $$deb"; \
	done; \
	for pair in $(DEPS_CMD); do cmd=$${pair%%:*}; deb=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$deb"; \
	done; \
	for pair in $(DEPS_FONT); do lang=$${pair%%:*}; deb=$${pair#*:}; \
	  [ -n "$$(fc-list :lang=$$lang family 2>/dev/null)" ] || missing="$$missing $$deb"; \
	done; \
	for deb in $(DEPS_DEB); do command -v dpkg-query >/dev/null 2>&1 || break; \
	  dpkg-query -W -f='$${db:Status-Status}\n' $$deb 2>/dev/null | grep -qx installed || missing="$$missing $$deb"; \
	done; \
	if [ -n "$$missing" ]; then \
	  missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	  echo "make deps: installing$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Each test program and each fuzz-corpus replay is its own target, check-NAME (tests/run-tests.sh
# one NAME: a time limit, output to $(BUILD)/test-logs/NAME.log, shown when it fails, one line with
# its time), so they run side by side; `test` runs them all (-k: every one, even after a failure),
# $(TEST_JOBS) at a time unless make was given -j, and prints the summary.
# The slowest first (the summary names them): with two at a time, the long ones start at once
# instead of finishing alone at the end.
TEST_SLOW   := test_upload_daemon test_report_browser test_upload test_modbus_loop test_daemon test_modbus test_modbus_gather test_flush_daemon test_nrii
UNIT_NAMES  := $(UNIT_SRC:tests/unit/%.c=%)
TEST_NAMES  := $(foreach n,$(TEST_SLOW),$(filter $(n),$(UNIT_NAMES))) $(filter-out $(TEST_SLOW),$(UNIT_NAMES)) \
               $(notdir $(wildcard $(FUZZ_SRC:tests/fuzz/%.c=tests/fuzz/corpus/%)))
TEST_CHECKS := $(TEST_NAMES:%=check-%)
TEST_JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
JOBS_FLAG    = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(TEST_JOBS))
.PHONY: test-bins test-run $(TEST_CHECKS)

check: deps
	$(MAKE) $(JOBS_FLAG) test-bins
	$(MAKE) test
	$(MAKE) check-pkg

# The Debian package installed, upgraded with records pending, removed and purged on this machine
# (tests/pkg/test-deb.sh; it skips, saying why, unless root with dpkg). It builds two packages,
# so it runs after the suite rather than beside it.
check-pkg: $(REFPLAT_BIN)
	@BUILD=$(BUILD) tests/pkg/test-deb.sh

test: test-bins
	@rm -f $(BUILD)/test-logs/*.result $(BUILD)/test-logs/*.failure
	@t0=$$(date +%s); $(MAKE) $(JOBS_FLAG) -k --no-print-directory -Otarget test-run; \
	  echo "=== the tests took $$(( $$(date +%s) - t0 )) s wall"; \
	  BUILD=$(BUILD) tests/run-tests.sh summary

test-run: $(TEST_CHECKS)

$(TEST_CHECKS): check-%: test-bins
	@BUILD=$(BUILD) tests/run-tests.sh one $*

asan: deps
	$(MAKE) BUILD=build-asan CC=$(CC) \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" test

# libFuzzer builds (clang): the agent compiled once with coverage and sanitizers, each target
# linked against it. The normal build links the same targets with tests/fuzz/standalone.c.
FUZZ_SECONDS ?= 60
FUZZ_DIR     := $(BUILD)/libfuzzer
FUZZ_CFLAGS   = $(filter-out -MMD -MP -D_FORTIFY_SOURCE=2 -fPIE,$(ALL_CFLAGS)) -O1 -g \
                -fno-omit-frame-pointer -fsanitize=address,undefined
FUZZ_OBJ     := $(CORE_SRC:%.c=$(FUZZ_DIR)/%.o)
FUZZ_TARGETS := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_DIR)/%)

$(foreach l,$(LAYERS),$(eval $(FUZZ_DIR)/agent/$(l)/%.o: INC = $$(call LAYER_INC,$(l))))
$(FUZZ_DIR)/drivers/%.o: INC = $(NO_SQLITE) $(I_drivers)

$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(@D)
	$(if $(Q),@echo "  FUZZCC  $<")
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS)

fuzz: deps
	$(MAKE) fuzz-build
	@for t in $(FUZZ_TARGETS); do n=$$(basename $$t); mkdir -p $(FUZZ_DIR)/corpus-$$n; \
	  cp tests/fuzz/corpus/$$n/* $(FUZZ_DIR)/corpus-$$n/ 2>/dev/null; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  $$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
	    $(FUZZ_DIR)/corpus-$$n 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==.*ERROR|SUMMARY)" \
	    || exit 1; \
	done

fuzz-build: $(FUZZ_TARGETS)

bench: deps
	$(MAKE) test-bins
	BUILD=$(BUILD) tests/bench/run-bench.sh

demo: deps
	$(MAKE) test-bins
	BUILD=$(BUILD) config/demo/run-demo.sh

# The Debian package (config/debian/, README "Install"): the tree copied to $(DEB_TREE) with
# config/debian/ as its debian/, the changelog written for $(VERSION) and dated by the last commit
# (a rebuild is the same package), Build-Depends from PKGS, built by dpkg-buildpackage and held
# to lintian (no error, no warning). `make deb VERSION=…` builds another version.
DEB_ARCH   = $(shell dpkg --print-architecture)
DEB_TREE   = $(BUILD)/deb/labshare-agent-$(VERSION)
DEB        = $(BUILD)/labshare-agent_$(VERSION)_$(DEB_ARCH).deb
DEB_LIBS   = $(sort $(foreach p,$(DEPS_PC),$(if $(filter $(firstword $(subst :, ,$(p))),$(PKGS)),$(lastword $(subst :, ,$(p))))))
DEB_DATE   = $(shell t=$$(git log -1 --format=%ct 2>/dev/null) && [ -n "$$t" ] && date -uR -d @$$t || date -uR)
DEB_MAINT  = $(shell sed -n 's/^Maintainer: //p' config/debian/control)
DEB_JOBS  ?= $(TEST_JOBS)
DEB_LINT  ?= lintian --fail-on error,warning

deb:
	@$(MAKE) --no-print-directory deps DEPS_CMD= DEPS_FONT=
	rm -rf $(BUILD)/deb
	mkdir -p $(DEB_TREE)
	tar -c --exclude-vcs --exclude=./build --exclude=./build-asan \
	  --exclude=./$(patsubst $(CURDIR)/%,%,$(abspath $(BUILD))) . | tar -x -C $(DEB_TREE)
	cp -R config/debian $(DEB_TREE)/debian
	sed -i 's/@LIBS_DEV@/$(shell echo $(DEB_LIBS) | sed 's/ /, /g')/' $(DEB_TREE)/debian/control
	printf '%s\n' 'labshare-agent ($(VERSION)) unstable; urgency=medium' '' \
	  '  * labshare-agent $(VERSION), built from its source tree by make deb.' '' \
	  ' -- $(DEB_MAINT)  $(DEB_DATE)' > $(DEB_TREE)/debian/changelog
	@# Not this make's flags and command-line variables (make exports them): the tree builds as is.
	cd $(DEB_TREE) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD -u VERSION -u DESTDIR -u PREFIX \
	  -u WERROR dpkg-buildpackage -us -uc -b -J$(DEB_JOBS)
	mv $(BUILD)/deb/$(notdir $(DEB)) $(DEB)
	rm -rf $(DEB_TREE)
	$(DEB_LINT) $(DEB)
	@echo "make deb: $(DEB)"

install: $(AGENT)
	install -Dm755 $(AGENT) $(DESTDIR)$(PREFIX)/bin/labshare-agent
	@mkdir -p $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|@BINDIR@|$(PREFIX)/bin|g' systemd/labshare-agent.service \
	  > $(DESTDIR)$(PREFIX)/lib/systemd/system/labshare-agent.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/labshare-agent.service
	install -Dm644 systemd/labshare-agent.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/labshare-agent.conf
	install -Dm644 systemd/labshare-agent.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/labshare-agent.conf
	install -Dm644 config/agent.example.json $(DESTDIR)$(PREFIX)/share/doc/labshare-agent/agent.example.json
	install -Dm644 config/labshare-agent.8 $(DESTDIR)$(PREFIX)/share/man/man8/labshare-agent.8

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)
