/*
 * probe: the test binary of tests/kvm/harness_selftest.sh, run inside the nested-KVM harness.
 *
 * Opens /dev/kvm, requires KVM_GET_API_VERSION == 12, a dirty ring (KVM_CAP_DIRTY_LOG_RING_ACQ_REL or
 * KVM_CAP_DIRTY_LOG_RING) and KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, prints what it found on one line starting
 * "probe: ok", and exits with the status given as argv[1]. Any further arguments are echoed on a line starting
 * "probe: args" (the self-test checks that quoting survives the trip); with PROBE_FILE set, the first line of that
 * file is printed too (checks --env and --extra-file). If a check fails it prints "probe: FAIL ..." and exits 42,
 * whatever argv[1] says. PAGEMAP_SCAN (Linux 6.7+) is reported, not required.
 *
 * Build: gcc -O2 -static -Wall -Wextra -o probe probe.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/kvm.h>

/* Capability numbers from the kernel ABI, for headers that predate them. */
#ifndef KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
#define KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 168
#endif
#ifndef KVM_CAP_DIRTY_LOG_RING
#define KVM_CAP_DIRTY_LOG_RING 192
#endif
#ifndef KVM_CAP_DIRTY_LOG_RING_ACQ_REL
#define KVM_CAP_DIRTY_LOG_RING_ACQ_REL 223
#endif

/* PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg); the struct is twelve u64 (96 bytes). */
#define PROBE_PAGEMAP_SCAN _IOWR('f', 16, uint64_t[12])

static const char *pagemap_scan_support(void)
{
	uint64_t arg[12] = { 0 }; /* size 0: a kernel that knows the ioctl rejects it with EINVAL */
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return "unknown (no /proc/self/pagemap)";
	int r = ioctl(fd, PROBE_PAGEMAP_SCAN, arg);
	int err = errno;
	close(fd);
	if (r < 0 && err == ENOTTY)
		return "no";
	return r < 0 && err == EINVAL ? "yes" : "unknown";
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	int want_rc = argc > 1 ? atoi(argv[1]) : 0;
	struct utsname u;
	uname(&u);

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("probe: FAIL open /dev/kvm: %s\n", strerror(errno));
		return 42;
	}
	int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	int acq_rel = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
	int ring = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING);
	int protect2 = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	close(kvm);

	int ok = api == 12 && (acq_rel > 0 || ring > 0) && protect2 > 0;
	printf("probe: %s kernel=%s api=%d dirty_ring_acq_rel=%d dirty_ring=%d manual_protect2=%d pagemap_scan=%s\n",
	       ok ? "ok" : "FAIL", u.release, api, acq_rel, ring, protect2, pagemap_scan_support());
	if (argc > 2) {
		printf("probe: args");
		for (int i = 2; i < argc; i++)
			printf(" [%s]", argv[i]);
		printf("\n");
	}
	const char *file = getenv("PROBE_FILE");
	if (file) {
		char line[256] = "";
		FILE *f = fopen(file, "r");
		if (!f || !fgets(line, sizeof(line), f))
			snprintf(line, sizeof(line), "unreadable: %s\n", strerror(errno));
		if (f)
			fclose(f);
		printf("probe: file %s: %s", file, line);
	}
	fprintf(stderr, "probe: this line went to stderr\n");
	return ok ? want_rc : 42;
}
