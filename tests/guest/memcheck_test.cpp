// memcheck, the Linux test guest's program: its pattern against a brute-force model, the verdicts for every kind of
// damaged page, and the real (static) binary run on the host for a few rounds, clean and with each injected fault.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "tests/guest/memcheck_pattern.h"

namespace ckpt::guest {
namespace {

std::vector<uint64_t> page_buffer() { return std::vector<uint64_t>(kPageWords); }

// The generation of every page after every round, by replaying the writes one round at a time.
TEST(MemcheckPattern, ExpectedGenerationMatchesReplayedWrites) {
  for (const uint64_t pages : {1u, 5u, 37u, 1000u}) {
    for (const uint32_t per_mille : {0u, 62u, 500u}) {
      const Pattern pattern({.seed = 7, .pages = pages, .sweep_rounds = 16, .random_per_mille = per_mille});
      std::vector<uint64_t> generation(pages, 0);
      for (uint64_t round = 1; round <= 100; ++round) {
        for (uint64_t p = 0; p < pages; ++p) {
          if (pattern.written_in(round, p)) generation[p] = round;
        }
        for (uint64_t p = 0; p < pages; ++p) {
          ASSERT_EQ(pattern.expected_generation(p, round), generation[p])
              << "pages " << pages << " per mille " << per_mille << " round " << round << " page " << p;
          // The sweep reaches every page at least once every sweep_rounds rounds.
          ASSERT_LT(round - generation[p], 16u);
        }
      }
    }
  }
}

TEST(MemcheckPattern, DirtySetIsASweepPlusARandomSubset) {
  const uint64_t pages = 16384;
  const Pattern pattern({.seed = 3, .pages = pages, .sweep_rounds = 16, .random_per_mille = 62});
  for (uint64_t round = 1; round <= 32; ++round) {
    uint64_t written = 0;
    for (uint64_t p = 0; p < pages; ++p) written += pattern.written_in(round, p);
    // 1/16 by the sweep, about 6.2% of the rest at random.
    EXPECT_GT(written, pages / 16 + pages * 45 / 1000) << round;
    EXPECT_LT(written, pages / 16 + pages * 80 / 1000) << round;
    // The sweep's run: contiguous pages starting at its slot.
    const uint64_t first = (round - 1) % 16 * pages / 16;
    for (uint64_t p = first; p < first + pages / 16; ++p) ASSERT_TRUE(pattern.written_in(round, p));
  }
}

TEST(MemcheckPattern, TellsEveryKindOfDamagedPageApart) {
  const Pattern pattern({.seed = 11, .pages = 64});
  auto page = page_buffer();
  uint64_t found = 0;

  pattern.fill(page.data(), 5, 9);
  EXPECT_EQ(pattern.check(page.data(), 5, 9, &found), Pattern::Verdict::kGood);
  EXPECT_EQ(found, 9u);
  EXPECT_EQ(pattern.check(page.data(), 5, 10, &found), Pattern::Verdict::kStale);
  EXPECT_EQ(pattern.check(page.data(), 5, 8, &found), Pattern::Verdict::kFuture);
  EXPECT_EQ(pattern.check(page.data(), 6, 9, &found), Pattern::Verdict::kForeign);  // page 5's contents at 6

  const Pattern other_run({.seed = 12, .pages = 64});
  EXPECT_EQ(other_run.check(page.data(), 5, 9, &found), Pattern::Verdict::kForeign);

  page[100] ^= 1ull << 40;
  EXPECT_EQ(pattern.check(page.data(), 5, 9, &found), Pattern::Verdict::kCorrupt);
  pattern.fill(page.data(), 5, 9);
  page[1] = 10;  // the generation word alone says 10: the body still is generation 9's
  EXPECT_EQ(pattern.check(page.data(), 5, 10, &found), Pattern::Verdict::kCorrupt);

  std::fill(page.begin(), page.end(), 0);
  EXPECT_EQ(pattern.check(page.data(), 0, 0, &found), Pattern::Verdict::kZero);
  EXPECT_EQ(pattern.check(page.data(), 5, 0, &found), Pattern::Verdict::kZero);
}

// ---- the binary ----------------------------------------------------------------------------------------------

struct MemcheckRun {
  int exit_status = -1;
  std::vector<std::string> lines;
};

MemcheckRun run_memcheck(const std::string& args) {
  MemcheckRun run;
  const std::string command = std::string(MEMCHECK_PATH) + " " + args + " 2>&1";
  FILE* out = popen(command.c_str(), "r");
  if (!out) return run;
  char buf[1024];
  while (std::fgets(buf, sizeof buf, out)) {
    std::string line = buf;
    if (!line.empty() && line.back() == '\n') line.pop_back();
    run.lines.push_back(line);
  }
  const int status = pclose(out);
  run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

std::string dump(const MemcheckRun& run) {
  std::string text = "exit " + std::to_string(run.exit_status) + "\n";
  for (const auto& line : run.lines) text += line + "\n";
  return text;
}

// The key=value fields of the MEMCHECK round lines, in order.
std::vector<std::map<std::string, std::string>> round_lines(const MemcheckRun& run) {
  std::vector<std::map<std::string, std::string>> rounds;
  const std::regex field("([a-z_]+)=([^ ]+)");
  for (const auto& line : run.lines) {
    if (line.rfind("MEMCHECK round=", 0) != 0) continue;
    auto& fields = rounds.emplace_back();
    for (std::sregex_iterator it(line.begin(), line.end(), field), end; it != end; ++it) {
      fields[(*it)[1]] = (*it)[2];
    }
  }
  return rounds;
}

TEST(MemcheckBinary, CleanRunsReportNoBadPage) {
  const MemcheckRun run = run_memcheck("--mib 4 --rounds 6 --interval-ms 0 --sweep-rounds 4");
  ASSERT_EQ(run.exit_status, 0) << dump(run);
  ASSERT_TRUE(!run.lines.empty() && run.lines[0].rfind("MEMCHECK-START boot=", 0) == 0) << dump(run);
  const auto rounds = round_lines(run);
  ASSERT_EQ(rounds.size(), 6u) << dump(run);
  for (size_t i = 0; i < rounds.size(); ++i) {
    EXPECT_EQ(rounds[i].at("round"), std::to_string(i + 1));
    EXPECT_EQ(rounds[i].at("bad"), "0");
    EXPECT_EQ(rounds[i].at("total_bad"), "0");
    EXPECT_EQ(rounds[i].at("pages"), "1024");
    EXPECT_EQ(rounds[i].at("boot"), rounds[0].at("boot"));
    EXPECT_GE(std::stoul(rounds[i].at("dirty")), 1024u / 4);
    EXPECT_TRUE(std::regex_match(rounds[i].at("uptime"), std::regex("[0-9]+\\.[0-9]+"))) << rounds[i].at("uptime");
  }
  // A new start is a new boot id (32 random bits).
  const auto again = round_lines(run_memcheck("--mib 1 --rounds 1 --interval-ms 0"));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_NE(again[0].at("boot"), rounds[0].at("boot"));
}

// The negative controls: one page damaged in round 3 is reported by that round's verify, named, and counted once.
TEST(MemcheckBinary, InjectedDamageIsReported) {
  const std::map<std::string, std::string> verdict_of = {
      {"stale", "stale"}, {"zero", "zero"}, {"foreign", "foreign"}, {"flip", "corrupt"}};
  for (const auto& [kind, verdict] : verdict_of) {
    SCOPED_TRACE(kind);
    const MemcheckRun run = run_memcheck("--mib 2 --rounds 5 --interval-ms 0 --sweep-rounds 4 --inject " + kind +
                                 " --inject-round 3");
    EXPECT_EQ(run.exit_status, 1) << dump(run);
    const auto rounds = round_lines(run);
    ASSERT_EQ(rounds.size(), 5u) << dump(run);
    EXPECT_EQ(rounds[1].at("bad"), "0");
    EXPECT_EQ(rounds[2].at("bad"), "1") << dump(run);
    EXPECT_EQ(rounds[3].at("bad"), "0") << dump(run);
    EXPECT_EQ(rounds[4].at("total_bad"), "1");
    bool named = false;
    for (const auto& line : run.lines) {
      named |= line.rfind("MEMCHECK-BAD round=3 ", 0) == 0 && line.find(" verdict=" + verdict + " ") != std::string::npos;
    }
    EXPECT_TRUE(named) << dump(run);
  }
}

TEST(MemcheckBinary, RejectsBadOptions) {
  for (const char* args : {"--mib 0", "--mib x", "--rounds", "--bogus 1", "--inject nothing", "--sweep-rounds 0"}) {
    const MemcheckRun run = run_memcheck(args);
    EXPECT_EQ(run.exit_status, 2) << args << "\n" << dump(run);
    ASSERT_FALSE(run.lines.empty()) << args;
    EXPECT_EQ(run.lines[0].rfind("memcheck: error: ", 0), 0u) << run.lines[0];
  }
}

}  // namespace
}  // namespace ckpt::guest
