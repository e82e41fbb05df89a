// ReturnLargeAllocationsToTheKernel against glibc's malloc itself: after a
// large block is freed, glibc's dynamic threshold serves the next large
// blocks from the heap (whose freed memory seldom goes back); with the
// threshold fixed, each has a mapping of its own again, unmapped when
// freed. mallinfo2().hblks counts the blocks mapped that way.
#include "common/app/startup.h"

#include <malloc.h>

#include <cstdlib>

#include "gtest/gtest.h"

#if defined(__SANITIZE_ADDRESS__)
#define DISTILLERY_OWN_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DISTILLERY_OWN_MALLOC 1
#endif
#endif

namespace distillery {
namespace {

constexpr size_t kLarge = 1 << 20;  // above the fixed 256 KB threshold

size_t MappedBlocks() { return mallinfo2().hblks; }

// Frees a 4 MB mapped block: glibc then raises its threshold to 4 MB.
void RaiseTheDynamicThreshold() {
  void* big = std::malloc(4 * kLarge);
  ASSERT_NE(big, nullptr);
  static_cast<volatile char*>(big)[0] = 1;
  std::free(big);
}

// In a process of its own (threadsafe death tests re-run the binary): the
// heap of a test before it would serve a large block from its free top.
// Returns whether a large block allocated after a larger one was freed
// came from the heap.
bool LargeBlockFromTheHeap() {
  RaiseTheDynamicThreshold();
  const size_t before = MappedBlocks();
  void* block = std::malloc(kLarge);
  static_cast<volatile char*>(block)[0] = 1;
  const bool from_heap = MappedBlocks() == before;
  std::free(block);
  return from_heap;
}

TEST(ReturnLargeAllocationsToTheKernelTest, LargeBlocksGetTheirOwnMappings) {
#ifdef DISTILLERY_OWN_MALLOC
  GTEST_SKIP() << "a sanitizer replaces glibc's malloc";
#endif
  ASSERT_EQ(std::getenv("MALLOC_MMAP_THRESHOLD_"), nullptr)
      << "the environment fixes the threshold itself";
  ReturnLargeAllocationsToTheKernel();
  RaiseTheDynamicThreshold();  // no longer moves it
  const size_t before = MappedBlocks();
  void* mapped = std::malloc(kLarge);
  ASSERT_NE(mapped, nullptr);
  EXPECT_EQ(MappedBlocks(), before + 1) << "a mapping of its own";
  std::free(mapped);
  EXPECT_EQ(MappedBlocks(), before) << "unmapped when freed";
  void* small = std::malloc(64 * 1024);  // below it: the heap, as before
  EXPECT_EQ(MappedBlocks(), before);
  std::free(small);
}

// What it mends: glibc's own dynamic threshold, once a large block was
// freed, serves the next large blocks from the heap.
TEST(ReturnLargeAllocationsToTheKernelDeathTest, WithoutItLargeBlocksGoToTheHeap) {
#ifdef DISTILLERY_OWN_MALLOC
  GTEST_SKIP() << "a sanitizer replaces glibc's malloc";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::exit(LargeBlockFromTheHeap() ? 0 : 1),
              ::testing::ExitedWithCode(0), "");
}

// A threshold set in the environment is the operator's: left as it is.
TEST(ReturnLargeAllocationsToTheKernelDeathTest, LeavesTheEnvironmentsSetting) {
#ifdef DISTILLERY_OWN_MALLOC
  GTEST_SKIP() << "a sanitizer replaces glibc's malloc";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        // glibc read the environment at start; the function reads it now.
        setenv("MALLOC_MMAP_THRESHOLD_", "33554432", 1);
        ReturnLargeAllocationsToTheKernel();
        std::exit(LargeBlockFromTheHeap() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace distillery
