// The built-in workloads: the C++ model against its independent reference, the guest image builder, and the
// assembly guest (workloads.S) executed natively on the host against the C++ model.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <ucontext.h>

#include <cstring>
#include <setjmp.h>
#include <vector>

#include "vmm/guest/guest_image.h"
#include "vmm/guest/workload.h"

namespace ckpt::vmm::guest {
namespace {

WorkloadControl make_control(WorkloadKind kind, uint64_t seed, uint32_t vcpu, uint64_t pages, uint64_t writes,
                             uint64_t hot = 0, uint64_t max = 0) {
  return WorkloadControl{.kind = static_cast<uint32_t>(kind),
                         .vcpu_index = vcpu,
                         .seed = seed,
                         .region_gpa = kWorkloadGpa,
                         .region_pages = pages,
                         .writes_per_iteration = writes,
                         .hot_pages = hot,
                         .delay_loops = 0,
                         .max_iterations = max};
}

std::vector<uint8_t> reference(const WorkloadControl& c, uint64_t iterations) {
  std::vector<uint8_t> region(c.region_pages * kPageSize);
  reference_image(c, iterations, region);
  return region;
}

uint64_t page_value(const std::vector<uint8_t>& region, uint64_t page) {
  uint64_t v;
  std::memcpy(&v, region.data() + page * kPageSize, sizeof(v));
  return v;
}

// Every kind with parameters that exercise the modulo paths (region sizes that are not powers of two).
std::vector<WorkloadControl> sample_controls() {
  std::vector<WorkloadControl> out;
  for (uint64_t seed : {1ull, 42ull, 0xDEADBEEFull, ~0ull}) {
    for (uint32_t vcpu : {0u, 5u}) {
      out.push_back(make_control(WorkloadKind::kRandomWriter, seed, vcpu, 300, 7));
      out.push_back(make_control(WorkloadKind::kHotSet, seed, vcpu, 300, 7, 13));
      out.push_back(make_control(WorkloadKind::kSweep, seed, vcpu, 97, 5));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The C++ model

TEST(WorkloadModel, ReferenceImageEqualsSteppingTheCpu) {
  for (WorkloadControl c : sample_controls()) {
    c.delay_loops = 3;  // the delay must not change what is written
    WorkloadCpu cpu(c);
    std::vector<uint8_t> region(c.region_pages * kPageSize);
    uint64_t status = 0;
    for (uint64_t n : {1, 10, 250}) {
      while (cpu.state().iterations < n) cpu.step(region.data(), &status);
      EXPECT_EQ(status, n);
      EXPECT_EQ(cpu.state().writes_done_in_iteration, 0u);
      ASSERT_EQ(region, reference(c, n)) << "kind " << c.kind << " seed " << c.seed << " after " << n;
    }
  }
}

TEST(WorkloadModel, StateSurvivesEncodeDecodeMidIteration) {
  for (const WorkloadControl& c : sample_controls()) {
    WorkloadCpu original(c);
    std::vector<uint8_t> region_a(c.region_pages * kPageSize);
    original.run_iterations(region_a.data(), 20);
    for (int i = 0; i < 3; ++i) original.step(region_a.data());  // stop mid-iteration
    ASSERT_EQ(original.state().writes_done_in_iteration, 3u);

    const auto blob = original.state().encode();
    Result<WorkloadCpuState> decoded = WorkloadCpuState::decode(blob);
    ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
    ASSERT_EQ(*decoded, original.state());

    WorkloadCpu resumed(c);
    ASSERT_TRUE(resumed.restore(*decoded).is_ok());
    std::vector<uint8_t> region_b = region_a;  // the memory image saved with the registers
    original.run_iterations(region_a.data(), 30);
    resumed.run_iterations(region_b.data(), 30);
    EXPECT_EQ(resumed.state(), original.state());
    EXPECT_EQ(region_b, region_a);
    EXPECT_EQ(region_b, reference(c, 50));
  }
}

TEST(WorkloadModel, DecodeRejectsDamagedBlobs) {
  const WorkloadCpuState state{.iterations = 9, .prng = 0x1234, .sweep_position = 3, .writes_done_in_iteration = 1};
  auto blob = state.encode();
  ASSERT_EQ(blob.size(), WorkloadCpuState::kEncodedSize);
  EXPECT_TRUE(WorkloadCpuState::decode(blob).is_ok());
  EXPECT_FALSE(WorkloadCpuState::decode(std::span(blob).first(blob.size() - 1)).is_ok());
  for (size_t offset : {0, 4, 6}) {  // magic, version, payload size
    auto bad = blob;
    bad[offset] ^= 1;
    EXPECT_FALSE(WorkloadCpuState::decode(bad).is_ok()) << offset;
  }
  auto zero_prng = WorkloadCpuState{.prng = 0}.encode();
  EXPECT_EQ(WorkloadCpuState::decode(zero_prng).status().code(), StatusCode::kCorruption);
}

TEST(WorkloadModel, RestoreRejectsUnreachableStates) {
  WorkloadCpu cpu(make_control(WorkloadKind::kSweep, 1, 0, 10, 4, 0, 100));
  const WorkloadCpuState ok{.iterations = 5, .prng = 7, .sweep_position = 9, .writes_done_in_iteration = 3};
  EXPECT_TRUE(cpu.restore(ok).is_ok());
  auto bad = ok;
  bad.sweep_position = 10;
  EXPECT_FALSE(cpu.restore(bad).is_ok());
  bad = ok;
  bad.writes_done_in_iteration = 4;
  EXPECT_FALSE(cpu.restore(bad).is_ok());
  bad = ok;
  bad.iterations = 100;  // max reached but mid-iteration
  EXPECT_FALSE(cpu.restore(bad).is_ok());
  bad.writes_done_in_iteration = 0;
  EXPECT_TRUE(cpu.restore(bad).is_ok());
  EXPECT_TRUE(cpu.halted());
  EXPECT_EQ(cpu.state(), bad);  // a rejected restore leaves the state alone; an accepted one replaces it
}

TEST(WorkloadModel, HotSetPutsAboutFifteenSixteenthsInTheHotSet) {
  const uint64_t pages = 10000, hot = 100, writes = 160000;
  WorkloadCpu cpu(make_control(WorkloadKind::kHotSet, 99, 2, pages, 16, hot));
  std::vector<uint8_t> region(pages * kPageSize);
  uint64_t in_hot = 0;
  for (uint64_t i = 0; i < writes; ++i) {
    const uint64_t predicted = cpu.next_page();
    const WorkloadCpu::StepResult r = cpu.step(region.data());
    ASSERT_EQ(r.page, predicted);
    ASSERT_LT(r.page, pages);
    in_hot += r.page < hot;
  }
  // 15/16 chosen in the hot set, plus the cold writes that land there by chance.
  const double expected = 15.0 / 16 + (1.0 / 16) * hot / pages;
  EXPECT_NEAR(static_cast<double>(in_hot) / writes, expected, 0.005);
}

TEST(WorkloadModel, SweepWrapsAtTheRegionEnd) {
  WorkloadCpu cpu(make_control(WorkloadKind::kSweep, 5, 0, 7, 3));
  std::vector<uint8_t> region(7 * kPageSize);
  std::vector<uint64_t> pages;
  for (int i = 0; i < 16; ++i) pages.push_back(cpu.step(region.data()).page);
  EXPECT_EQ(pages, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1}));
  EXPECT_EQ(cpu.state().sweep_position, 2u);
  EXPECT_EQ(cpu.state().prng, initial_prng(cpu.control()));  // a sweep never draws random numbers
  // 16 writes = 5 complete iterations of 3 + the first write of iteration 6. Write w hits page w % 7 in
  // iteration w / 3 + 1, so a page holds at most status + 1.
  EXPECT_EQ(cpu.state().iterations, 5u);
  EXPECT_EQ(cpu.state().writes_done_in_iteration, 1u);
  EXPECT_EQ(page_value(region, 0), 5u);  // writes 0, 7, 14
  EXPECT_EQ(page_value(region, 1), 6u);  // writes 1, 8, 15: the partial iteration
  EXPECT_EQ(page_value(region, 2), 4u);  // writes 2, 9
  EXPECT_EQ(page_value(region, 6), 5u);  // writes 6, 13
}

TEST(WorkloadModel, MaxIterationsHalts) {
  const WorkloadControl c = make_control(WorkloadKind::kRandomWriter, 3, 1, 50, 4, 0, 12);
  WorkloadCpu cpu(c);
  std::vector<uint8_t> region(50 * kPageSize);
  uint64_t status = 0;
  EXPECT_EQ(cpu.run_iterations(region.data(), 100, &status), 12u);
  EXPECT_TRUE(cpu.halted());
  EXPECT_EQ(status, 12u);
  const WorkloadCpuState at_halt = cpu.state();
  const WorkloadCpu::StepResult r = cpu.step(region.data(), &status);
  EXPECT_FALSE(r.iteration_completed);
  EXPECT_EQ(cpu.state(), at_halt);
  EXPECT_EQ(region, reference(c, 12));
  EXPECT_EQ(region, reference(c, 1000));  // the reference stops where the guest halts
}

TEST(WorkloadModel, IdleAndInvalidControlsNeverWrite) {
  std::vector<WorkloadControl> controls = {
      make_control(WorkloadKind::kIdle, 1, 0, 10, 1),
      make_control(static_cast<WorkloadKind>(99), 1, 0, 10, 1),
      make_control(WorkloadKind::kRandomWriter, 1, 0, 0, 1),
      make_control(WorkloadKind::kRandomWriter, 1, 0, 10, 0),
      make_control(WorkloadKind::kHotSet, 1, 0, 10, 1, 0),
      make_control(WorkloadKind::kHotSet, 1, 0, 10, 1, 11),
  };
  for (const WorkloadControl& c : controls) {
    EXPECT_EQ(validate_control(c).is_ok(), c.kind == static_cast<uint32_t>(WorkloadKind::kIdle)) << c.kind;
    WorkloadCpu cpu(c);
    EXPECT_TRUE(cpu.halted());
    std::vector<uint8_t> region(10 * kPageSize);
    EXPECT_EQ(cpu.run_iterations(region.data(), 5), 0u);
    EXPECT_EQ(region, std::vector<uint8_t>(10 * kPageSize));
  }
}

// docs/workloads.md, "Worked example": random-writer, seed 1, vCPU 0, 1000 pages.
TEST(WorkloadModel, WorkedExampleFromDocs) {
  const WorkloadControl c = make_control(WorkloadKind::kRandomWriter, 1, 0, 1000, 3);
  EXPECT_EQ(initial_prng(c), 0x9E3779B97F4A7C15ull);
  WorkloadCpu cpu(c);
  std::vector<uint8_t> region(1000 * kPageSize);
  const uint64_t prng[] = {0xDC1B77AE0BF34DADull, 0x64F0EEB9026E6076ull, 0x7B07CE91E5906136ull};
  const uint64_t pages[] = {989, 574, 30};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(cpu.step(region.data()).page, pages[i]);
    EXPECT_EQ(cpu.state().prng, prng[i]);
  }
  EXPECT_EQ(cpu.state().iterations, 1u);
  for (uint64_t p : pages) EXPECT_EQ(page_value(region, p), 1u);
}

}  // namespace
}  // namespace ckpt::vmm::guest
