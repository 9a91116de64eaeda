# The two commands a newcomer needs: `make run` (the main job) and `make test` (every test). Both install what is
# missing first (scripts/install-deps.sh, Debian packages only).
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
# After the suite, `make test` runs a subset of it again under ASan+UBSan (scripts/sanitize.sh --ci, its own build
# in $(BUILD_DIR)/sanitize-asan; docs/testing.md, "Sanitizers"). SANITIZE= skips that step.
SANITIZE ?= asan

.PHONY: all deps build test test-linux run run-linux bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# `make test-linux` runs only the Linux guest tests (label linux-guest: the three tracking modes and the disk; about
# 12 minutes, more with the emulator's repeats), which `make test` runs with the rest.
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)
	$(if $(SANITIZE),JOBS=$(JOBS) scripts/sanitize.sh --ci $(SANITIZE) $(BUILD_DIR)/sanitize-$(SANITIZE))

test-linux: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L linux-guest

# The main job: a Linux guest where /dev/kvm works, else the software backend's demo (built-in workload).
run: build
	@if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then scripts/run-linux-demo.sh $(BUILD_DIR); \
	else scripts/run-demo.sh $(BUILD_DIR); fi

# A Linux guest under ckptd: here where /dev/kvm works, else inside the nested KVM (scripts/kvm-harness).
run-linux: build
	@scripts/run-linux-demo.sh $(BUILD_DIR)

bench: build
	@bench/run.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
