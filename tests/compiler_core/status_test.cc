#include "compiler_core/support/status.h"

#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "compiler_core/support/check.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;

TEST(Status, DefaultIsOk) {
  Status status;
  EXPECT_TRUE(status.is_ok());
  EXPECT_EQ(status.code(), StatusCode::kOk);
  EXPECT_EQ(status.message(), "");
  EXPECT_EQ(status.to_string(), "ok");
  EXPECT_TRUE(Status::ok().is_ok());
}

TEST(Status, CarriesCodeAndMessage) {
  Status status = invalid_argument("unknown operator 'matmull'");
  EXPECT_FALSE(status.is_ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "unknown operator 'matmull'");
  EXPECT_EQ(status.to_string(), "invalid_argument: unknown operator 'matmull'");
}

TEST(Status, HelpersSetTheirCodes) {
  EXPECT_EQ(invalid_config("x").code(), StatusCode::kInvalidConfig);
  EXPECT_EQ(internal_error("x").code(), StatusCode::kInternal);
}

TEST(Status, UserErrorsAreTheCallersInput) {
  EXPECT_TRUE(Status(StatusCode::kInvalidArgument, "x").is_user_error());
  EXPECT_TRUE(Status(StatusCode::kInvalidConfig, "x").is_user_error());
  EXPECT_TRUE(Status(StatusCode::kOutOfRange, "x").is_user_error());
  EXPECT_TRUE(Status(StatusCode::kNotFound, "x").is_user_error());
  EXPECT_FALSE(Status(StatusCode::kInternal, "x").is_user_error());
  EXPECT_FALSE(Status(StatusCode::kUnavailable, "x").is_user_error());
  EXPECT_FALSE(Status().is_user_error());
}

TEST(Status, EveryCodeHasAName) {
  EXPECT_STREQ(status_code_name(StatusCode::kOk), "ok");
  EXPECT_STREQ(status_code_name(StatusCode::kInvalidConfig), "invalid_config");
  EXPECT_STREQ(status_code_name(StatusCode::kOutOfRange), "out_of_range");
  EXPECT_STREQ(status_code_name(StatusCode::kDataLoss), "data_loss");
  EXPECT_STREQ(status_code_name(StatusCode::kInternal), "internal");
}

TEST(Result, HoldsAValue) {
  Result<int> result = 42;
  ASSERT_TRUE(result.is_ok());
  EXPECT_TRUE(static_cast<bool>(result));
  EXPECT_EQ(*result, 42);
  EXPECT_EQ(result.value(), 42);
  EXPECT_TRUE(result.status().is_ok());
}

TEST(Result, HoldsAFailure) {
  Result<int> result = invalid_argument("bad size 'x'");
  EXPECT_FALSE(result.is_ok());
  EXPECT_FALSE(static_cast<bool>(result));
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "bad size 'x'");
}

TEST(Result, MovesOutMoveOnlyValues) {
  Result<std::unique_ptr<int>> result = std::make_unique<int>(7);
  ASSERT_TRUE(result.is_ok());
  std::unique_ptr<int> value = std::move(result).value();
  ASSERT_NE(value, nullptr);
  EXPECT_EQ(*value, 7);
}

TEST(Result, ArrowReachesMembers) {
  Result<std::string> result = std::string("kiln");
  EXPECT_EQ(result->size(), 4u);
}

Status fail_if_negative(int x) {
  if (x < 0) return invalid_argument("negative value " + std::to_string(x));
  return Status::ok();
}

Status check_both(int a, int b) {
  KILN_RETURN_IF_ERROR(fail_if_negative(a));
  KILN_RETURN_IF_ERROR(fail_if_negative(b));
  return Status::ok();
}

TEST(StatusMacros, ReturnIfErrorStopsAtTheFirstFailure) {
  EXPECT_TRUE(check_both(1, 2).is_ok());
  Status status = check_both(1, -2);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "negative value -2");
}

Result<int> half(int x) {
  if (x % 2 != 0) return invalid_argument("odd value " + std::to_string(x));
  return x / 2;
}

Result<int> quarter(int x) {
  KILN_ASSIGN_OR_RETURN(int h, half(x));
  KILN_ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

TEST(StatusMacros, AssignOrReturnUnwrapsOrPropagates) {
  Result<int> ok = quarter(8);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(*ok, 2);
  Result<int> failed = quarter(6);
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.status().message(), "odd value 3");
}

TEST(Check, PassingCheckDoesNothing) {
  EXPECT_NO_THROW({ KILN_CHECK(1 + 1 == 2) << "arithmetic"; });
}

TEST(Check, FailingCheckThrowsInternalErrorWithLocationAndMessage) {
  try {
    int extent = -3;
    KILN_CHECK(extent > 0) << "extent " << extent;
    FAIL() << "KILN_CHECK did not throw";
  } catch (const InternalError& error) {
    std::string what = error.what();
    EXPECT_THAT(what, HasSubstr("status_test.cc"));
    EXPECT_THAT(what, HasSubstr("extent > 0"));
    EXPECT_THAT(what, HasSubstr("extent -3"));
  }
}

TEST(Check, UnreachableThrows) {
  EXPECT_THROW({ KILN_UNREACHABLE() << "no such kind"; }, InternalError);
}

}  // namespace
}  // namespace kiln
