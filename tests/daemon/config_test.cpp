// ckptd settings: defaults, the config file, command-line overrides, clear errors, and what SIGHUP may change.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "daemon/config.h"
#include "vmm/guest/guest_abi.h"

namespace ckpt::daemon {
namespace {

struct Args {
  std::vector<std::string> items{"ckptd"};
  Args(std::initializer_list<std::string> rest) { items.insert(items.end(), rest); }
  std::vector<const char*> argv() const {
    std::vector<const char*> v;
    for (const std::string& s : items) v.push_back(s.c_str());
    return v;
  }
};

Result<LoadedConfig> parse(const Args& args) {
  int exit_code = -1;
  auto argv = args.argv();
  return load_config(static_cast<int>(argv.size()), argv.data(), &exit_code);
}

std::string write_file(const std::string& text) {
  char path[] = "/tmp/ckptd-config-XXXXXX";
  int fd = ::mkstemp(path);
  ::close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(Config, DefaultsAreDocumented) {
  auto c = parse({});
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->config.store_dir, "/var/lib/ckptd");
  EXPECT_EQ(c->config.epoch_ms, 100u);
  EXPECT_EQ(c->config.machine.memory_bytes, 256ull << 20);
  EXPECT_EQ(c->config.machine.vcpus, 2u);
  EXPECT_EQ(c->config.backend, vmm::Backend::kAuto);
  EXPECT_FALSE(c->config.resume);
  EXPECT_TRUE(c->config.metrics_listen.empty());
  std::string reference = config_reference();
  for (const auto& [key, value] : c->values) EXPECT_NE(reference.find("# " + key + " = "), std::string::npos) << key;
}

TEST(Config, FileValuesThenCommandLineOverrides) {
  std::string path = write_file(
      "# a comment\n\nmemory-mib = 1024\nworkload = \"sweep\"\nepoch-ms=250\nresume = yes\n"
      "socket-group = ckpt\nretention-keep-last = 10\n");
  auto c = parse({"--config", path, "--epoch-ms", "50", "--backend", "software"});
  ::unlink(path.c_str());
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->config.machine.memory_bytes, 1024ull << 20);
  EXPECT_EQ(c->config.machine.workload.kind, vmm::guest::WorkloadKind::kSweep);
  EXPECT_EQ(c->config.epoch_ms, 50u);  // the command line wins
  EXPECT_TRUE(c->config.resume);
  EXPECT_EQ(c->config.socket_group, "ckpt");
  EXPECT_EQ(c->config.retention_keep_last, 10u);
  EXPECT_EQ(c->config.backend, vmm::Backend::kSoftware);
}

TEST(Config, ErrorsNameTheFileLineAndSetting) {
  std::string path = write_file("vcpus = 2\nmemroy-mib = 64\n");
  auto unknown = parse({"--config", path});
  EXPECT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find(path + ":2: unknown setting 'memroy-mib'"), std::string::npos)
      << unknown.status().to_string();
  std::ofstream(path) << "epoch-ms = fast\n";
  auto bad = parse({"--config", path});
  EXPECT_NE(bad.status().message().find("epoch-ms"), std::string::npos) << bad.status().to_string();
  EXPECT_NE(bad.status().message().find(path + ":1: epoch-ms = fast: 'fast' is not a whole number in 1..86400000"),
            std::string::npos)
      << bad.status().to_string();
  ::unlink(path.c_str());
  EXPECT_FALSE(parse({"--memory-mib", "3"}).is_ok());   // odd
  EXPECT_FALSE(parse({"--workload", "mystery"}).is_ok());
  EXPECT_FALSE(parse({"--dirty-ring-entries", "1000"}).is_ok());  // not a power of two
  auto missing = parse({"--config", "/nonexistent/ckptd.conf"});
  EXPECT_NE(missing.status().message().find("/nonexistent/ckptd.conf"), std::string::npos);
}

// A bad value is reported where it was given: the file and line, or the command-line option.
TEST(Config, BadValuesNameTheirFileLineOrOption) {
  std::string path = write_file("# settings\nepoch-ms = 100\n\nvcpus = 64  # too many\n");
  auto from_file = parse({"--config", path});
  ASSERT_FALSE(from_file.is_ok());
  EXPECT_NE(from_file.status().message().find(path + ":4: vcpus = 64: 64 is outside 1..32"), std::string::npos)
      << from_file.status().to_string();
  auto from_cli = parse({"--config", path, "--vcpus", "40"});  // the command line overrides, and is named
  ASSERT_FALSE(from_cli.is_ok());
  EXPECT_NE(from_cli.status().message().find("--vcpus 40: 40 is outside 1..32"), std::string::npos)
      << from_cli.status().to_string();
  ::unlink(path.c_str());
}

// '#' at a line's start or after whitespace starts a comment; inside a word or a quoted value it is kept.
TEST(Config, InlineCommentsFollowTheDocumentedRule) {
  std::string path = write_file(
      "epoch-ms = 250  # a quarter second\n"
      "   # an indented comment line\n"
      "socket-group = ops#1\t# the '#' in the word stays\n"
      "store = \"/srv/a #b\"  # quoted: kept whole\n"
      "log-level = warn#not-a-comment\n");
  auto c = parse({"--config", path});
  ASSERT_FALSE(c.is_ok());  // warn#not-a-comment is not a log level: '#' without a space before it is no comment
  EXPECT_NE(c.status().message().find(path + ":5: log-level = warn#not-a-comment"), std::string::npos)
      << c.status().to_string();
  std::ofstream(path) << "epoch-ms = 250  # a quarter second\n   # indented\nsocket-group = ops#1\t# c\n"
                         "store = \"/srv/a #b\"  # quoted\n# store = \"/old path, commented out\n";
  c = parse({"--config", path});
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->config.epoch_ms, 250u);
  EXPECT_EQ(c->config.socket_group, "ops#1");
  EXPECT_EQ(c->config.store_dir, "/srv/a #b");
  std::ofstream(path) << "store = \"/srv/a\n";
  c = parse({"--config", path});
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find(path + ":1: unterminated quote"), std::string::npos) << c.status().to_string();
  ::unlink(path.c_str());
}

TEST(Config, AConfigPathThatIsNoFileIsAnError) {
  char dir[] = "/tmp/ckptd-config-dir-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  auto directory = parse({"--config", dir});
  ASSERT_FALSE(directory.is_ok());
  EXPECT_NE(directory.status().message().find(std::string("config file ") + dir + " is a directory"),
            std::string::npos)
      << directory.status().to_string();
  ::rmdir(dir);
  auto missing = parse({"--config", std::string(dir) + "/none.conf"});
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(std::string(dir) + "/none.conf"), std::string::npos);
}

// The VM's limits (vmm/guest/guest_abi.h) are the settings' limits: nothing the VM would refuse gets past config.
TEST(Config, LimitsAreTheVmsLimits) {
  auto most = parse({"--vcpus", std::to_string(vmm::guest::kMaxVcpus), "--memory-mib",
                     std::to_string(vmm::guest::kMaxMemoryBytes >> 20)});
  EXPECT_TRUE(most.is_ok()) << most.status().to_string();
  auto vcpus = parse({"--vcpus", std::to_string(vmm::guest::kMaxVcpus + 1)});
  ASSERT_FALSE(vcpus.is_ok());
  EXPECT_NE(vcpus.status().message().find("--vcpus 33: 33 is outside 1..32"), std::string::npos)
      << vcpus.status().to_string();
  auto memory = parse({"--memory-mib", std::to_string((vmm::guest::kMaxMemoryBytes >> 20) + 2)});
  ASSERT_FALSE(memory.is_ok());
  EXPECT_NE(memory.status().message().find("--memory-mib 65538: 65538 is outside 2..65536"), std::string::npos)
      << memory.status().to_string();
  for (const char* negative : {"--vcpus", "--memory-mib", "--epoch-ms", "--workload-seed", "--staging-mib"}) {
    auto r = parse({negative, "-1"});
    ASSERT_FALSE(r.is_ok()) << negative;
    EXPECT_NE(r.status().message().find(std::string(negative) + " -1: '-1' is not a whole number"),
              std::string::npos)
        << r.status().to_string();
  }
  EXPECT_FALSE(parse({"--workload-seed", "18446744073709551616"}).is_ok());  // one past 2^64 - 1
}

// The hot set's default (1024 pages) shrinks to a small memory; a value the user gave is refused, with the range.
TEST(Config, HotPagesDefaultAdaptsButAGivenValueMustFit) {
  auto small = parse({"--memory-mib", "8"});  // (8 - 1) MiB / 4 KiB / 2 vCPUs = 896 pages each
  ASSERT_TRUE(small.is_ok()) << small.status().to_string();
  EXPECT_EQ(small->config.machine.workload.hot_pages, 896u);
  auto large = parse({"--memory-mib", "1024"});
  ASSERT_TRUE(large.is_ok());
  EXPECT_EQ(large->config.machine.workload.hot_pages, 1024u);  // fits: unchanged
  auto given = parse({"--memory-mib", "8", "--workload-hot-pages", "1000"});
  ASSERT_FALSE(given.is_ok());
  EXPECT_NE(given.status().message().find("--workload-hot-pages 1000: "), std::string::npos)
      << given.status().to_string();
  EXPECT_NE(given.status().message().find("allowed 1..896"), std::string::npos) << given.status().to_string();
  EXPECT_TRUE(parse({"--memory-mib", "8", "--workload-hot-pages", "896"}).is_ok());
  // Other workloads do not use the hot set: a given value does not stop them.
  EXPECT_TRUE(parse({"--memory-mib", "8", "--workload-hot-pages", "1000", "--workload", "sweep"}).is_ok());
}

// ckptd's usage errors exit 2 (daemon/config.h DaemonExitCode), not CLI11's 105..114; help and version exit 0.
TEST(Config, CommandLineRefusalsExitWithTheUsageCode) {
  for (const Args& args : {Args{"--bogus"}, Args{"--vcpus"}, Args{"stray"}, Args{"--config"}}) {
    int exit_code = -1;
    auto argv = args.argv();
    testing::internal::CaptureStderr();
    auto r = load_config(static_cast<int>(argv.size()), argv.data(), &exit_code);
    testing::internal::GetCapturedStderr();
    EXPECT_FALSE(r.is_ok());
    EXPECT_EQ(exit_code, kExitUsage) << args.items.back();
  }
  for (const char* flag : {"--help", "--version"}) {
    int exit_code = -1;
    Args args{flag};
    auto argv = args.argv();
    testing::internal::CaptureStdout();
    (void)load_config(static_cast<int>(argv.size()), argv.data(), &exit_code);
    testing::internal::GetCapturedStdout();
    EXPECT_EQ(exit_code, kExitClean) << flag;
  }
}

TEST(Config, AKernelMakesALinuxGuestAndTheBuiltinGuestStaysTheDefault) {
  auto builtin = parse({});
  ASSERT_TRUE(builtin.is_ok()) << builtin.status().to_string();
  EXPECT_EQ(builtin->config.machine.guest, vmm::GuestKind::kBuiltin);

  std::string kernel = write_file("not really a kernel: read only when the VM is made");
  auto linux_guest = parse({"--kernel", kernel, "--cmdline", "console=ttyS0 quiet"});
  ASSERT_TRUE(linux_guest.is_ok()) << linux_guest.status().to_string();
  EXPECT_EQ(linux_guest->config.machine.guest, vmm::GuestKind::kLinux);
  EXPECT_EQ(linux_guest->config.machine.linux_guest.kernel, kernel);
  EXPECT_EQ(linux_guest->config.machine.linux_guest.cmdline, "console=ttyS0 quiet");

  std::string file = write_file("kernel = " + kernel + "\ninitrd = " + kernel + "\n");
  auto from_file = parse({"--config", file});
  ASSERT_TRUE(from_file.is_ok()) << from_file.status().to_string();
  EXPECT_EQ(from_file->config.machine.guest, vmm::GuestKind::kLinux);
  EXPECT_EQ(from_file->config.machine.linux_guest.initrd, kernel);
  ::unlink(file.c_str());
  ::unlink(kernel.c_str());
}

TEST(Config, LinuxGuestSettingsThatCannotWorkAreRefused) {
  std::string kernel = write_file("x");
  auto expect_error = [](const Args& args, const std::string& needle) {
    auto c = parse(args);
    ASSERT_FALSE(c.is_ok()) << needle;
    EXPECT_NE(c.status().message().find(needle), std::string::npos) << c.status().to_string();
  };
  expect_error({"--guest", "linux"}, "guest = linux needs a kernel");
  expect_error({"--guest", "builtin", "--kernel", kernel}, "guest = builtin");
  expect_error({"--guest", "dos"}, "unknown guest 'dos'");
  expect_error({"--kernel", "/nonexistent/vmlinuz"}, "--kernel /nonexistent/vmlinuz");
  expect_error({"--kernel", "/tmp"}, "not a regular file");
  expect_error({"--kernel", kernel, "--initrd", "/nonexistent/initrd"}, "No such file");
  expect_error({"--kernel", kernel, "--backend", "software"}, "needs the KVM backend");
  expect_error({"--kernel", kernel, "--memory-mib", "4096"}, "at most 3072 MiB");
  expect_error({"--kernel", kernel, "--workload", "sweep"}, "workload is a setting of the built-in guest");
  auto fits = parse({"--kernel", kernel, "--memory-mib", "3072"});
  EXPECT_TRUE(fits.is_ok()) << fits.status().to_string();
  ::unlink(kernel.c_str());
}

// A disk image of `bytes` bytes (sparse).
std::string disk_file(off_t bytes) {
  std::string path = write_file("");
  EXPECT_EQ(::truncate(path.c_str(), bytes), 0);
  return path;
}

TEST(Config, DisksRepeatOnTheCommandLineAndInTheFileWithAReadOnlyFlag) {
  std::string kernel = write_file("x"), a = disk_file(1 << 20), b = disk_file(8192);
  auto cli = parse({"--kernel", kernel, "--disk", a, "--disk", b + ",ro"});
  ASSERT_TRUE(cli.is_ok()) << cli.status().to_string();
  ASSERT_EQ(cli->config.disks.size(), 2u);
  EXPECT_EQ(cli->config.disks[0].path, a);
  EXPECT_FALSE(cli->config.disks[0].read_only);
  EXPECT_EQ(cli->config.disks[1].path, b);
  EXPECT_TRUE(cli->config.disks[1].read_only);

  std::string file = write_file("kernel = " + kernel + "\ndisk = " + a + ",rw\ndisk = " + b + ",ro\n");
  auto from_file = parse({"--config", file});
  ASSERT_TRUE(from_file.is_ok()) << from_file.status().to_string();
  ASSERT_EQ(from_file->config.disks.size(), 2u);
  EXPECT_FALSE(from_file->config.disks[0].read_only);
  EXPECT_TRUE(from_file->config.disks[1].read_only);
  // The command line's disks replace the file's.
  auto replaced = parse({"--config", file, "--disk", b});
  ASSERT_TRUE(replaced.is_ok()) << replaced.status().to_string();
  ASSERT_EQ(replaced->config.disks.size(), 1u);
  EXPECT_EQ(replaced->config.disks[0].path, b);
  auto none = parse({"--config", file, "--disk", ""});  // an empty --disk takes the file's disks away
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_TRUE(none->config.disks.empty());
  EXPECT_TRUE(parse({"--kernel", kernel})->config.disks.empty());
  for (const std::string& f : {kernel, a, b, file}) ::unlink(f.c_str());
}

TEST(Config, DisksThatCannotWorkAreRefused) {
  std::string kernel = write_file("x"), odd = disk_file(5000), empty = disk_file(0), good = disk_file(4096);
  auto expect_error = [](const Args& args, const std::string& needle) {
    auto c = parse(args);
    ASSERT_FALSE(c.is_ok()) << needle;
    EXPECT_NE(c.status().message().find(needle), std::string::npos) << c.status().to_string();
  };
  expect_error({"--disk", good}, "guest = builtin");
  expect_error({"--kernel", kernel, "--disk", "/nonexistent/disk.img"}, "/nonexistent/disk.img");
  expect_error({"--kernel", kernel, "--disk", odd}, "positive multiple of 4096");
  expect_error({"--kernel", kernel, "--disk", empty}, "positive multiple of 4096");
  expect_error({"--kernel", kernel, "--disk", "/tmp"}, "not a regular file");
  expect_error({"--kernel", kernel, "--disk", ",ro"}, "names no image file");
  Args nine({"--kernel", kernel});
  for (int i = 0; i < 9; ++i) nine.items.insert(nine.items.end(), {"--disk", good});
  expect_error(nine, "at most 8");
  // On resume the disks are the store's: the files are not read (the store checks their number).
  auto resume = parse({"--kernel", kernel, "--resume", "--disk", "/nonexistent/disk.img"});
  EXPECT_TRUE(resume.is_ok()) << resume.status().to_string();
  for (const std::string& f : {kernel, odd, empty, good}) ::unlink(f.c_str());
}

TEST(Config, DiffSaysWhatSighupMayApply) {
  auto before = parse({"--epoch-ms", "100", "--memory-mib", "64"});
  auto after = parse({"--epoch-ms", "20", "--memory-mib", "128", "--log-level", "debug"});
  ASSERT_TRUE(before.is_ok() && after.is_ok());
  ConfigChanges changes = diff_config(*before, *after);
  EXPECT_EQ(changes.reloadable, (std::vector<std::string>{"epoch-ms", "log-level"}));
  EXPECT_EQ(changes.need_restart, (std::vector<std::string>{"memory-mib"}));
}

}  // namespace
}  // namespace ckpt::daemon

namespace ckpt::daemon {
namespace {

TEST(Config, ThePackagedConfigParses) {
  auto c = parse({"--config", CKPT_SOURCE_DIR "/packaging/ckptd.conf"});
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_TRUE(c->config.resume) << "a service that restarts must resume its store";
  EXPECT_EQ(c->config.socket_path, "/run/ckptd/ckptd.sock");
  EXPECT_EQ(c->config.socket_group, "ckpt");
  EXPECT_EQ(c->config.store_dir, "/var/lib/ckptd");
}

}  // namespace
}  // namespace ckpt::daemon
