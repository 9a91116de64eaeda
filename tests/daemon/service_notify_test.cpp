// ServiceNotifier against a NotifyListener standing in for systemd: each call sends exactly its fields, in order;
// without NOTIFY_SOCKET nothing is sent; with nobody listening the caller never notices (one warn line says so).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "daemon/service/service_notify.h"
#include "tests/daemon/notify_listener.h"

namespace ckpt::daemon {
namespace {

using testing::NotifyListener;
using namespace std::chrono_literals;
using Keys = std::vector<std::string>;

constexpr auto kWait = 2000ms;      // a datagram to a local socket arrives at once; this only bounds a failure
constexpr auto kSilence = 200ms;    // how long "nothing arrives" is watched

uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000;
}

// Restores the NOTIFY_SOCKET this process started with, whatever a test set.
class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* old = std::getenv("NOTIFY_SOCKET");
    if (old != nullptr) saved_ = old;
    ::unsetenv("NOTIFY_SOCKET");
  }
  void TearDown() override {
    if (saved_) {
      ::setenv("NOTIFY_SOCKET", saved_->c_str(), 1);
    } else {
      ::unsetenv("NOTIFY_SOCKET");
    }
  }

  std::unique_ptr<NotifyListener> listen() {
    auto listener = NotifyListener::create();
    EXPECT_TRUE(listener.is_ok()) << listener.status().to_string();
    if (!listener.is_ok()) return nullptr;
    ::setenv("NOTIFY_SOCKET", (*listener)->path().c_str(), 1);
    return std::move(listener).value();
  }

  NotifyListener::Message receive(NotifyListener& listener) {
    std::optional<NotifyListener::Message> message = listener.next(kWait);
    EXPECT_TRUE(message.has_value()) << "no notification within " << kWait.count() << " ms";
    return message.value_or(NotifyListener::Message{});
  }

  std::optional<std::string> saved_;
};

TEST_F(ServiceNotifyTest, ReadySendsReadyStatusAndMainPid) {
  auto listener = listen();
  ASSERT_NE(listener, nullptr);
  ServiceNotifier notifier;
  EXPECT_TRUE(notifier.enabled());
  notifier.ready("store /var/lib/ckptd: 12 epochs");

  auto message = receive(*listener);
  EXPECT_EQ(message.keys(), (Keys{"READY", "STATUS", "MAINPID"}));
  EXPECT_EQ(message.get("READY"), "1");
  EXPECT_EQ(message.get("STATUS"), "store /var/lib/ckptd: 12 epochs");
  EXPECT_EQ(message.get("MAINPID"), std::to_string(::getpid()));
  EXPECT_EQ(message.sender_pid, ::getpid());
  EXPECT_FALSE(message.truncated);
}

TEST_F(ServiceNotifyTest, StatusSendsOnlyStatus) {
  auto listener = listen();
  ASSERT_NE(listener, nullptr);
  ServiceNotifier notifier;
  notifier.status("epoch 7 committed");

  auto message = receive(*listener);
  EXPECT_EQ(message.text, "STATUS=epoch 7 committed");
  EXPECT_EQ(message.keys(), (Keys{"STATUS"}));
}

TEST_F(ServiceNotifyTest, ReloadingSendsReloadingAndMonotonicNow) {
  auto listener = listen();
  ASSERT_NE(listener, nullptr);
  ServiceNotifier notifier;
  uint64_t before = monotonic_usec();
  notifier.reloading();
  uint64_t after = monotonic_usec();

  auto message = receive(*listener);
  ASSERT_EQ(message.keys(), (Keys{"RELOADING", "MONOTONIC_USEC"}));
  EXPECT_EQ(message.get("RELOADING"), "1");
  uint64_t usec = std::stoull(message.get("MONOTONIC_USEC").value_or("0"));
  EXPECT_GE(usec, before);
  EXPECT_LE(usec, after);
}

TEST_F(ServiceNotifyTest, ReloadedSendsReady) {
  auto listener = listen();
  ASSERT_NE(listener, nullptr);
  ServiceNotifier notifier;
  notifier.reloaded();
  EXPECT_EQ(receive(*listener).text, "READY=1");
}

TEST_F(ServiceNotifyTest, StoppingSendsStoppingAndStatus) {
  auto listener = listen();
  ASSERT_NE(listener, nullptr);
  ServiceNotifier notifier;
  notifier.stopping("taking the final epoch");

  auto message = receive(*listener);
  EXPECT_EQ(message.keys(), (Keys{"STOPPING", "STATUS"}));
  EXPECT_EQ(message.get("STOPPING"), "1");
  EXPECT_EQ(message.get("STATUS"), "taking the final epoch");
}

// The life of a daemon that reloads once, in the order systemd must see it.
TEST_F(ServiceNotifyTest, MessagesArriveInCallOrder) {
  auto listener = listen();
  ASSERT_NE(listener, nullptr);
  ServiceNotifier notifier;
  notifier.ready("running");
  notifier.status("epoch 1");
  notifier.reloading();
  notifier.reloaded();
  notifier.stopping("bye");

  std::vector<Keys> got;
  for (int i = 0; i < 5; ++i) got.push_back(receive(*listener).keys());
  EXPECT_EQ(got, (std::vector<Keys>{{"READY", "STATUS", "MAINPID"},
                                    {"STATUS"},
                                    {"RELOADING", "MONOTONIC_USEC"},
                                    {"READY"},
                                    {"STOPPING", "STATUS"}}));
  EXPECT_FALSE(listener->next(kSilence).has_value());
  EXPECT_EQ(listener->history().size(), 5u);
}

// A newline in a status text would smuggle in a field of its own (here: a second READY=1).
TEST_F(ServiceNotifyTest, StatusNewlinesCannotAddFields) {
  auto listener = listen();
  ASSERT_NE(listener, nullptr);
  ServiceNotifier notifier;
  notifier.stopping("line one\nREADY=1");

  auto message = receive(*listener);
  EXPECT_EQ(message.keys(), (Keys{"STOPPING", "STATUS"}));
  EXPECT_EQ(message.get("STATUS"), "line one READY=1");
}

// systemd drops a datagram over 4096 bytes whole, and a STATUS= that is not valid UTF-8.
TEST_F(ServiceNotifyTest, LongStatusIsCutAtACharacterBoundary) {
  auto listener = listen();
  ASSERT_NE(listener, nullptr);
  ServiceNotifier notifier;
  // "é" is two bytes; placed so that it straddles the limit, it must go entirely.
  std::string text(ServiceNotifier::kMaxStatusBytes - 1, 'x');
  text += "\xC3\xA9";
  text += std::string(10000, 'y');
  notifier.ready(text);

  auto message = receive(*listener);
  EXPECT_EQ(message.keys(), (Keys{"READY", "STATUS", "MAINPID"}));
  EXPECT_EQ(message.get("STATUS"), std::string(ServiceNotifier::kMaxStatusBytes - 1, 'x'));
  EXPECT_LE(message.text.size(), 4096u);

  // A status exactly at the limit is kept whole.
  notifier.status(std::string(ServiceNotifier::kMaxStatusBytes, 'z'));
  EXPECT_EQ(receive(*listener).get("STATUS"), std::string(ServiceNotifier::kMaxStatusBytes, 'z'));
}

TEST_F(ServiceNotifyTest, AbstractSocketWorks) {
  auto listener = NotifyListener::create_abstract("ckpt-notify-test-" + std::to_string(::getpid()));
  ASSERT_TRUE(listener.is_ok()) << listener.status().to_string();
  EXPECT_EQ((*listener)->path()[0], '@');
  ::setenv("NOTIFY_SOCKET", (*listener)->path().c_str(), 1);
  ServiceNotifier notifier;
  notifier.ready("abstract");

  EXPECT_TRUE((*listener)->wait_for("READY", "1", kWait));
  ASSERT_EQ((*listener)->history().size(), 1u);
  EXPECT_EQ((*listener)->history()[0].get("STATUS"), "abstract");
  EXPECT_EQ((*listener)->history()[0].sender_pid, ::getpid());
}

TEST_F(ServiceNotifyTest, WaitForSkipsOtherMessagesAndTimesOut) {
  auto listener = listen();
  ASSERT_NE(listener, nullptr);
  ServiceNotifier notifier;
  notifier.status("starting");
  notifier.status("still starting");
  notifier.ready("up");
  EXPECT_TRUE(listener->wait_for("READY", "1", kWait));
  EXPECT_EQ(listener->history().size(), 3u);
  EXPECT_FALSE(listener->wait_for("STOPPING", "1", kSilence));
}

// Outside systemd: nothing is sent, nothing is logged, nothing fails.
TEST_F(ServiceNotifyTest, UnsetNotifySocketSendsNothing) {
  auto listener = NotifyListener::create();
  ASSERT_TRUE(listener.is_ok()) << listener.status().to_string();
  ServiceNotifier notifier;
  EXPECT_FALSE(notifier.enabled());
  ::testing::internal::CaptureStderr();
  notifier.ready("x");
  notifier.status("x");
  notifier.reloading();
  notifier.reloaded();
  notifier.stopping("x");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_FALSE((*listener)->next(kSilence).has_value());
}

TEST_F(ServiceNotifyTest, EmptyNotifySocketCountsAsUnset) {
  ::setenv("NOTIFY_SOCKET", "", 1);
  ServiceNotifier notifier;
  EXPECT_FALSE(notifier.enabled());
  ::testing::internal::CaptureStderr();
  notifier.ready("x");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

// Counts the warn lines a run of every call produces; the calls themselves have nothing to fail with.
size_t warn_lines_for_every_call() {
  ServiceNotifier notifier;
  EXPECT_TRUE(notifier.enabled());
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 3; ++i) {
    notifier.ready("x");
    notifier.status("x");
    notifier.reloading();
    notifier.reloaded();
    notifier.stopping("x");
  }
  std::string err = ::testing::internal::GetCapturedStderr();
  size_t warns = 0;
  for (size_t at = err.find(" W "); at != std::string::npos; at = err.find(" W ", at + 1)) ++warns;
  EXPECT_NE(err.find("sd_notify"), std::string::npos) << err;
  return warns;
}

TEST_F(ServiceNotifyTest, NobodyListeningIsLoggedOnceAndNotFatal) {
  std::string gone;
  {
    auto listener = NotifyListener::create();  // its directory and socket vanish at the end of this block
    ASSERT_TRUE(listener.is_ok()) << listener.status().to_string();
    gone = (*listener)->path();
  }
  ::setenv("NOTIFY_SOCKET", gone.c_str(), 1);
  EXPECT_EQ(warn_lines_for_every_call(), 1u);
}

// A socket file left behind by a listener that died: connect is refused (ECONNREFUSED rather than ENOENT).
TEST_F(ServiceNotifyTest, StaleSocketFileIsLoggedOnceAndNotFatal) {
  auto listener = NotifyListener::create();
  ASSERT_TRUE(listener.is_ok()) << listener.status().to_string();
  std::string stale = (*listener)->path() + ".stale";
  {
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(fd.valid());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, stale.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  }
  ::setenv("NOTIFY_SOCKET", stale.c_str(), 1);
  EXPECT_EQ(warn_lines_for_every_call(), 1u);
  ::unlink(stale.c_str());
}

TEST_F(ServiceNotifyTest, AbstractNameNobodyListensOnIsNotFatal) {
  std::string name = "@ckpt-notify-nobody-" + std::to_string(::getpid());
  ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  EXPECT_EQ(warn_lines_for_every_call(), 1u);
}

}  // namespace
}  // namespace ckpt::daemon
