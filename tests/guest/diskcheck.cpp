// diskcheck: the file-system workload and integrity check of a Linux test guest with a disk (scripts/linux-guest/init
// runs it on the ext4 file system of the guest's first virtio disk; docs/guest.md). Each round it changes the files
// of one directory (creates through a temporary file, fsync and rename; appends and fsyncs; renames; removes; every
// name change followed by an fsync of the directory), then drops the guest's clean page cache and reads every file
// back from the disk, comparing names, sizes and contents with the model it keeps in its own memory:
//
//   DISKCHECK round=R bad=B files=F bytes=N ops=O fsyncs=S boot=XXXXXXXX uptime=U.UU total_bad=T ms=M
//
// The model changes only once an operation has returned, and lives in the process's memory, so a guest restored
// from a checkpoint holds a model of the same instant as its disk: if ckptd restored memory and disk from different
// instants, files would be missing, extra, short, long or hold other bytes. Each wrong file is named on a line
// `DISKCHECK-BAD round=R file=NAME problem=...` (at most 8 a round) and then taken from the disk into the model, so
// one loss is reported once. boot is random per start: a restored guest continues with the same boot and the next
// round. A start wipes the directory. With --rounds N the exit status is 0 if total_bad is 0, else 1; 2 on errors.
//
// Contents are a pure function of (content id, offset), so the model is a few numbers per file.
// Static: it runs from a busybox initramfs that has no C library.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tests/guest/guest_common.h"

using ckpt::guest::mix64;
using ckpt::guest::monotonic_seconds;
using ckpt::guest::random_u64;
using ckpt::guest::read_uptime;

namespace {

constexpr int kExitBad = 1;
constexpr int kExitError = 2;
constexpr int kMaxBadLinesPerRound = 8;

struct Options {
  std::string dir = "/mnt/diskcheck";
  uint64_t rounds = 0;  // 0: forever
  uint64_t interval_ms = 1000;
  uint64_t files = 48;          // names in use at most
  uint64_t max_file_kib = 256;  // a file stops growing here
  uint64_t ops_per_round = 12;
  bool inject = false;  // negative control: damage one file behind the model's back in round 2
  bool drop_caches = true;
};

void usage(FILE* out) {
  std::fputs(
      "Usage: diskcheck [options]\n"
      "Changes files in DIR and checks them against a model in memory; prints one DISKCHECK line per round.\n"
      "  --dir DIR             directory to use, wiped at start (default /mnt/diskcheck)\n"
      "  --rounds N            stop after N rounds (default 0: run forever); exit 0 iff nothing bad was seen\n"
      "  --interval-ms N       minimum time from one round's start to the next (default 1000)\n"
      "  --files N             file names in use at most (default 48)\n"
      "  --max-file-kib N      a file grows to at most this size (default 256)\n"
      "  --ops N               operations a round (default 12)\n"
      "  --inject              negative control: append to a file behind the model's back in round 2\n"
      "  --keep-caches         do not drop the page cache before reading back (for runs on a shared host)\n",
      out);
}

[[noreturn]] void fail(const std::string& what, int err = 0) {
  std::fprintf(stderr, "diskcheck: error: %s%s%s\n", what.c_str(), err ? ": " : "", err ? std::strerror(err) : "");
  std::exit(kExitError);
}

uint64_t parse_number(const char* option, const char* text) {
  std::optional<uint64_t> value = ckpt::guest::parse_whole_number(text);
  if (!value) fail(std::string(option) + " needs a non-negative integer");
  return *value;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      std::exit(0);
    }
    if (arg == "--inject") {
      o.inject = true;
      continue;
    }
    if (arg == "--keep-caches") {
      o.drop_caches = false;
      continue;
    }
    if (i + 1 >= argc) fail(std::string(argv[i]) + ": unknown option, or its value is missing (see --help)");
    const char* value = argv[++i];
    if (arg == "--dir") o.dir = value;
    else if (arg == "--rounds") o.rounds = parse_number(argv[i - 1], value);
    else if (arg == "--interval-ms") o.interval_ms = parse_number(argv[i - 1], value);
    else if (arg == "--files") o.files = parse_number(argv[i - 1], value);
    else if (arg == "--max-file-kib") o.max_file_kib = parse_number(argv[i - 1], value);
    else if (arg == "--ops") o.ops_per_round = parse_number(argv[i - 1], value);
    else fail(std::string(argv[i - 1]) + ": unknown option (see --help)");
  }
  if (o.dir.empty() || o.dir == "/") fail("--dir must name a directory other than /");
  if (o.files < 2 || o.files > 100000) fail("--files must be 2 to 100000");
  if (o.max_file_kib == 0 || o.max_file_kib > (1u << 20)) fail("--max-file-kib must be 1 to 1048576");
  if (o.ops_per_round == 0) fail("--ops must be at least 1");
  return o;
}

// Byte `offset` of the content `id`: ids are unique per boot, so a file holding another file's bytes is caught too.
uint8_t content_byte(uint64_t id, uint64_t offset) {
  return static_cast<uint8_t>(mix64(id * 0x9e3779b97f4a7c15ull + offset / 8) >> (8 * (offset % 8)));
}

void fill(uint64_t id, uint64_t offset, std::vector<uint8_t>& out) {
  for (size_t i = 0; i < out.size(); ++i) out[i] = content_byte(id, offset + i);
}

struct FileModel {
  uint64_t content = 0;  // the content id
  uint64_t length = 0;
};

class Checker {
 public:
  Checker(const Options& o, uint64_t seed) : o_(o), rng_(seed), next_content_(mix64(seed) | 1) {}

  void start() {
    wipe();
    if (::mkdir(o_.dir.c_str(), 0755) != 0) fail("mkdir " + o_.dir, errno);
    fsync_path(parent_of(o_.dir));
  }

  // One round of changes; the model follows each operation once it has returned.
  void change(uint64_t round) {
    for (uint64_t i = 0; i < o_.ops_per_round; ++i) {
      const uint64_t pick = next() % 100;
      if (model_.empty() || (pick < 30 && model_.size() < o_.files)) create();
      else if (pick < 75) append();
      else if (pick < 90) rename_one();
      else remove_one();
    }
    if (o_.inject && round == 2 && !model_.empty()) {  // the model is not told
      const std::string path = path_of(model_.begin()->first);
      int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
      if (fd < 0 || ::write(fd, "x", 1) != 1) fail("inject into " + path, errno);
      ::close(fd);
      std::printf("DISKCHECK-INJECT round=%" PRIu64 " file=%s\n", round, model_.begin()->first.c_str());
    }
  }

  // Reads everything back from the disk; returns the number of wrong files (each then taken into the model).
  uint64_t verify(uint64_t round) {
    if (o_.drop_caches) drop_caches();
    uint64_t bad = 0;
    auto report = [&](const std::string& name, const std::string& problem) {
      if (++bad <= kMaxBadLinesPerRound) {
        std::printf("DISKCHECK-BAD round=%" PRIu64 " file=%s problem=%s\n", round, name.c_str(), problem.c_str());
      }
    };
    std::vector<std::string> on_disk = list_dir(), wrong;
    for (const std::string& name : on_disk) {
      if (!model_.count(name)) {
        report(name, "extra");
        wrong.push_back(name);
      }
    }
    for (const auto& [name, f] : model_) {
      std::string problem = std::binary_search(on_disk.begin(), on_disk.end(), name) ? compare(name, f) : "missing";
      if (!problem.empty()) {
        report(name, problem);
        wrong.push_back(name);
      }
    }
    for (const std::string& name : wrong) discard(name);
    return bad;
  }

  uint64_t files() const { return model_.size(); }
  uint64_t bytes() const {
    uint64_t n = 0;
    for (const auto& [name, f] : model_) n += f.length;
    return n;
  }
  uint64_t ops() const { return ops_; }
  uint64_t fsyncs() const { return fsyncs_; }

 private:
  uint64_t next() { return rng_ = mix64(rng_ + 0x9e3779b97f4a7c15ull); }
  std::string path_of(const std::string& name) const { return o_.dir + "/" + name; }
  static std::string parent_of(const std::string& path) {
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  }
  std::string unused_name() {
    for (;;) {
      std::string name = "f" + std::to_string(next() % (o_.files * 2));
      if (!model_.count(name)) return name;
    }
  }
  std::string some_name() {
    auto it = model_.begin();
    std::advance(it, static_cast<long>(next() % model_.size()));
    return it->first;
  }

  void fsync_fd(int fd, const std::string& what) {
    if (::fsync(fd) != 0) fail("fsync " + what, errno);
    ++fsyncs_;
  }
  void fsync_path(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) fail("open " + path, errno);
    fsync_fd(fd, path);
    ::close(fd);
  }
  void write_all(int fd, const std::vector<uint8_t>& data, const std::string& what) {
    for (size_t done = 0; done < data.size();) {
      ssize_t n = ::write(fd, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("write " + what, n < 0 ? errno : EIO);
      done += static_cast<size_t>(n);
    }
  }

  // The atomic-replace idiom: a temporary file, fsync, rename, fsync of the directory.
  void create() {
    const std::string name = unused_name(), tmp = path_of(".tmp-" + name);
    FileModel f{next_content_++, 1 + next() % (o_.max_file_kib * 1024 / 4)};
    std::vector<uint8_t> data(f.length);
    fill(f.content, 0, data);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) fail("create " + tmp, errno);
    write_all(fd, data, tmp);
    fsync_fd(fd, tmp);
    ::close(fd);
    if (::rename(tmp.c_str(), path_of(name).c_str()) != 0) fail("rename " + tmp, errno);
    fsync_path(o_.dir);
    model_[name] = f;
    ++ops_;
  }

  void append() {
    const std::string name = some_name();
    FileModel& f = model_[name];
    const uint64_t room = o_.max_file_kib * 1024 - std::min(f.length, o_.max_file_kib * 1024);
    if (room == 0) return remove_one(name);
    std::vector<uint8_t> data(1 + next() % std::min<uint64_t>(room, 64 * 1024));
    fill(f.content, f.length, data);
    int fd = ::open(path_of(name).c_str(), O_WRONLY | O_APPEND);
    if (fd < 0) fail("open " + path_of(name), errno);
    write_all(fd, data, path_of(name));
    if (next() % 2) fsync_fd(fd, path_of(name));  // half the appends stay in the page cache for a while
    ::close(fd);
    f.length += data.size();
    ++ops_;
  }

  void rename_one() {
    const std::string from = some_name();
    const std::string to = model_.size() < o_.files && next() % 2 ? unused_name() : some_name();  // may replace
    if (from == to) return;
    if (::rename(path_of(from).c_str(), path_of(to).c_str()) != 0) fail("rename " + path_of(from), errno);
    fsync_path(o_.dir);
    model_[to] = model_[from];
    model_.erase(from);
    ++ops_;
  }

  void remove_one(std::string name = {}) {
    if (name.empty()) name = some_name();
    if (::unlink(path_of(name).c_str()) != 0) fail("unlink " + path_of(name), errno);
    fsync_path(o_.dir);
    model_.erase(name);
    ++ops_;
  }

  // Clean pages of the page cache go, so the reads below come from the disk (a restored guest's page cache is
  // restored with its memory and would answer from there). Best effort: without /proc it is a plain read.
  static void drop_caches() {
    ::sync();
    int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0) return;
    if (::write(fd, "3", 1) != 1) {
      // not root, or no such knob: the check still runs, through the page cache
    }
    ::close(fd);
  }

  std::vector<std::string> list_dir() const {
    std::vector<std::string> names;
    DIR* d = ::opendir(o_.dir.c_str());
    if (!d) fail("opendir " + o_.dir, errno);
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n == "." || n == "..") continue;
      names.emplace_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string compare(const std::string& name, const FileModel& f) const {
    const std::string path = path_of(name);
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return std::string("unreadable(") + std::strerror(errno) + ")";
    struct stat st{};
    std::string problem;
    if (::fstat(fd, &st) != 0) problem = "unreadable";
    else if (static_cast<uint64_t>(st.st_size) != f.length) {
      problem = "size(" + std::to_string(st.st_size) + "!=" + std::to_string(f.length) + ")";
    }
    std::vector<uint8_t> got(64 * 1024), want(64 * 1024);
    for (uint64_t offset = 0; problem.empty() && offset < f.length;) {
      ssize_t n = ::pread(fd, got.data(), std::min<uint64_t>(got.size(), f.length - offset), static_cast<off_t>(offset));
      if (n <= 0) {
        problem = "short-read@" + std::to_string(offset);
        break;
      }
      want.resize(static_cast<size_t>(n));
      fill(f.content, offset, want);
      if (std::memcmp(got.data(), want.data(), static_cast<size_t>(n)) != 0) problem = "content@" + std::to_string(offset);
      want.resize(got.size());
      offset += static_cast<uint64_t>(n);
    }
    ::close(fd);
    return problem;
  }

  // A wrong file goes from the disk and the model, so that it is reported once.
  void discard(const std::string& name) {
    const std::string path = path_of(name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail("unlink " + path, errno);
    fsync_path(o_.dir);
    model_.erase(name);
  }

  void wipe() {
    DIR* d = ::opendir(o_.dir.c_str());
    if (!d) {
      if (errno == ENOENT) return;
      fail("opendir " + o_.dir, errno);
    }
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n == "." || n == "..") continue;
      std::string path = path_of(std::string(n));
      if (::unlink(path.c_str()) != 0) fail("unlink " + path + " (diskcheck's directory holds only its files)", errno);
    }
    ::closedir(d);
    if (::rmdir(o_.dir.c_str()) != 0) fail("rmdir " + o_.dir, errno);
  }

  const Options& o_;
  uint64_t rng_;
  uint64_t next_content_;
  std::map<std::string, FileModel> model_;
  uint64_t ops_ = 0;
  uint64_t fsyncs_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const uint64_t random = random_u64();
  const uint32_t boot = static_cast<uint32_t>(random);
  Checker checker(o, mix64(random));
  checker.start();
  char uptime[64];
  read_uptime(uptime, sizeof uptime);
  std::printf("DISKCHECK-START boot=%08" PRIx32 " dir=%s files=%" PRIu64 " max_file_kib=%" PRIu64 " uptime=%s\n",
              boot, o.dir.c_str(), o.files, o.max_file_kib, uptime);
  uint64_t total_bad = 0;
  for (uint64_t round = 1; o.rounds == 0 || round <= o.rounds; ++round) {
    const double start = monotonic_seconds();
    checker.change(round);
    const uint64_t bad = checker.verify(round);
    total_bad += bad;
    const double elapsed = monotonic_seconds() - start;
    read_uptime(uptime, sizeof uptime);
    std::printf("DISKCHECK round=%" PRIu64 " bad=%" PRIu64 " files=%" PRIu64 " bytes=%" PRIu64 " ops=%" PRIu64
                " fsyncs=%" PRIu64 " boot=%08" PRIx32 " uptime=%s total_bad=%" PRIu64 " ms=%.0f\n",
                round, bad, checker.files(), checker.bytes(), checker.ops(), checker.fsyncs(), boot, uptime, total_bad,
                elapsed * 1000);
    const double wait = static_cast<double>(o.interval_ms) / 1000.0 - elapsed;
    if (wait > 0 && (o.rounds == 0 || round < o.rounds)) {
      const timespec ts{static_cast<time_t>(wait), static_cast<long>((wait - static_cast<double>(static_cast<time_t>(wait))) * 1e9)};
      nanosleep(&ts, nullptr);
    }
  }
  return total_bad == 0 ? 0 : kExitBad;
}
