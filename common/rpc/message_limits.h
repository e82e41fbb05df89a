// The size of one gRPC message, the one fact every Distillery channel and
// every batched message (leases, reports, export chunks) must agree on. The
// coordinator takes its limit from --max-message-mb; the worker from its own
// flag of the same name; clients accept anything up to the ceiling. Header
// only and free of gRPC, so the coordinator's logic can size its batches.
#ifndef DISTILLERY_COMMON_RPC_MESSAGE_LIMITS_H_
#define DISTILLERY_COMMON_RPC_MESSAGE_LIMITS_H_

#include <cstddef>

namespace distillery {

// --max-message-mb's default and its largest value, in bytes.
inline constexpr int kDefaultMaxMessageBytes = 64 << 20;
inline constexpr int kMaxMessageBytesCeiling = 1024 << 20;

// What a batch's repeated entries may add up to in a message of
// `max_message_bytes`: the rest is room for the message's other fields
// (ids, counters), which are small and bounded.
inline constexpr size_t BatchBudgetBytes(int max_message_bytes) {
  constexpr size_t kRoom = 4096;
  const size_t max = static_cast<size_t>(max_message_bytes);
  return max > 2 * kRoom ? max - kRoom : max / 2;
}

// The bytes one entry of `entry_bytes` (its ByteSizeLong) adds to a
// repeated message field: a tag byte, its length as a varint, the entry.
inline constexpr size_t RepeatedEntryBytes(size_t entry_bytes) {
  size_t varint = 1;
  for (size_t v = entry_bytes; v >= 0x80; v >>= 7) ++varint;
  return 1 + varint + entry_bytes;
}

}  // namespace distillery

#endif  // DISTILLERY_COMMON_RPC_MESSAGE_LIMITS_H_
