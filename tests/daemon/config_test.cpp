// ckptd settings: defaults, the config file, command-line overrides, clear errors, and what SIGHUP may change.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "daemon/config.h"

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
  EXPECT_NE(bad.status().message().find("'fast' is not a number"), std::string::npos);
  ::unlink(path.c_str());
  EXPECT_FALSE(parse({"--memory-mib", "3"}).is_ok());   // odd
  EXPECT_FALSE(parse({"--workload", "mystery"}).is_ok());
  EXPECT_FALSE(parse({"--dirty-ring-entries", "1000"}).is_ok());  // not a power of two
  auto missing = parse({"--config", "/nonexistent/ckptd.conf"});
  EXPECT_NE(missing.status().message().find("/nonexistent/ckptd.conf"), std::string::npos);
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
