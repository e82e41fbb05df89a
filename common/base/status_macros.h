// Status propagation macros. Debian 12's Abseil (20220623) predates
// ABSL_RETURN_IF_ERROR / ASSIGN_OR_RETURN, so Distillery keeps its own.
#ifndef DISTILLERY_COMMON_BASE_STATUS_MACROS_H_
#define DISTILLERY_COMMON_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DISTILLERY_CONCAT_INNER_(a, b) a##b
#define DISTILLERY_CONCAT_(a, b) DISTILLERY_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    ::absl::Status distillery_status_ = (expr);     \
    if (!distillery_status_.ok()) return distillery_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, StatusOrExpr())` declares x from the value, or
// returns the error status from the enclosing function.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(DISTILLERY_CONCAT_(statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()

#endif  // DISTILLERY_COMMON_BASE_STATUS_MACROS_H_
