// The subcommands' command line parser (FlagSet over CLI11), in process: the accepted forms,
// positional arguments, short aliases, and the messages of every usage error.

#include "tuner/cli/flags.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace kiln::tuner {
namespace {

using Args = std::vector<std::string>;

FlagSet run_like_flags() {
  FlagSet flags("run", "Runs a kernel.", "Exit codes: 0 ok.");
  flags.add_required_string("workload", "W", "the workload");
  flags.add_string("target", "T", "the target", "llvm");
  flags.add_string("config", "JSON", "the config");
  flags.add_int("threads", "N", "threads", 4, 1, 64);
  flags.add_bool("json", "print JSON");
  return flags;
}

FlagSet compile_like_flags() {
  FlagSet flags("compile", "Compiles a model.");
  flags.add_positional("model", "MODEL.onnx", "the model to compile", true);
  flags.add_positional("weights", "WEIGHTS", "a weights file", false);
  flags.add_required_string("target", "T", "the target");
  flags.add_string("output", "MODULE", "the module to write", "model.kmod", 'o');
  flags.add_bool("json", "print JSON");
  return flags;
}

// The message of parsing `args` into `flags`, empty when it succeeds.
std::string error_of(FlagSet flags, const Args& args) {
  Status status = flags.parse(args);
  if (status.is_ok()) return "";
  EXPECT_TRUE(status.is_user_error()) << status.message();
  return status.message();
}

TEST(FlagSet, ReadsEveryAcceptedForm) {
  FlagSet flags = run_like_flags();
  ASSERT_TRUE(
      flags.parse({"--workload", "matmul:M=1,N=2,K=3", "--threads=8", "--json", "--config="})
          .is_ok());
  EXPECT_EQ(flags.get_string("workload"), "matmul:M=1,N=2,K=3");
  EXPECT_EQ(flags.get_int("threads"), 8);
  EXPECT_TRUE(flags.get_bool("json"));
  EXPECT_EQ(flags.get_string("target"), "llvm");
  EXPECT_FALSE(flags.is_set("target"));
  EXPECT_TRUE(flags.is_set("config"));
  EXPECT_EQ(flags.get_string("config"), "");
  EXPECT_FALSE(flags.help_requested());
}

TEST(FlagSet, ReadsIntegersAsDecimalAndBooleansAsTrueOrFalse) {
  FlagSet flags = run_like_flags();
  ASSERT_TRUE(flags.parse({"--workload", "w", "--threads", "010", "--json=false"}).is_ok());
  EXPECT_EQ(flags.get_int("threads"), 10);
  EXPECT_FALSE(flags.get_bool("json"));
  EXPECT_TRUE(flags.is_set("json"));
  FlagSet other = run_like_flags();
  ASSERT_TRUE(other.parse({"--workload", "w", "--json=1"}).is_ok());
  EXPECT_TRUE(other.get_bool("json"));
  EXPECT_EQ(other.get_int("threads"), 4);
}

TEST(FlagSet, ReportsUsageErrorsInKilnsWords) {
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--bogus"}),
            "unknown flag '--bogus' for 'kiln run'; run 'kiln run --help'");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--bogus=3"}),
            "unknown flag '--bogus' for 'kiln run'; run 'kiln run --help'");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "-x"}),
            "unknown flag '-x' for 'kiln run'; run 'kiln run --help'");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "stray"}),
            "unexpected argument 'stray' for 'kiln run'; flags take the form --name value");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--"}),
            "unknown flag '--' for 'kiln run'; run 'kiln run --help'");
  EXPECT_EQ(error_of(run_like_flags(), {"--target", "llvm"}),
            "missing required flag --workload for 'kiln run' (--workload W)");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "a", "--workload", "b"}),
            "--workload given more than once");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--json", "--json"}),
            "--json given more than once");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--threads"}),
            "--threads needs a value (--threads N)");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "--target", "llvm"}),
            "--workload needs a value (--workload W)");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--threads", "x"}),
            "--threads expects an integer, got 'x' (--threads N)");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--threads", "1.5"}),
            "--threads expects an integer, got '1.5' (--threads N)");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--threads", "0"}),
            "--threads must be an integer from 1 to 64, got 0");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--threads=-1"}),
            "--threads must be an integer from 1 to 64, got -1");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--threads", "99999999999999999999"}),
            "--threads must be an integer from 1 to 64, got 99999999999999999999");
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "w", "--json=maybe"}),
            "--json takes no value or one of true, false, got 'maybe'");
}

TEST(FlagSet, ReportsAnUnknownFlagBeforeTheMistakesItCauses) {
  // A misspelt required flag is reported as unknown, not as the required one missing.
  EXPECT_EQ(error_of(run_like_flags(), {"--wrkload", "w"}),
            "unknown flag '--wrkload' for 'kiln run'; run 'kiln run --help'");
  EXPECT_EQ(error_of(run_like_flags(), {"stray"}),
            "unexpected argument 'stray' for 'kiln run'; flags take the form --name value");
  // A stray argument left by a flag that took the next flag for its value comes second.
  EXPECT_EQ(error_of(run_like_flags(), {"--workload", "--target", "llvm"}),
            "--workload needs a value (--workload W)");
}

TEST(FlagSet, HelpWinsOverEveryMistake) {
  for (const Args& args : std::vector<Args>{{"--help"},
                                            {"-h"},
                                            {"--bogus", "--help"},
                                            {"--threads", "0", "-h"},
                                            {"--help", "--threads"},
                                            {"--config", "--help"}}) {
    FlagSet flags = run_like_flags();
    ASSERT_TRUE(flags.parse(args).is_ok()) << args.front();
    EXPECT_TRUE(flags.help_requested()) << args.front();
  }
}

TEST(FlagSet, HelpListsUsageFlagsDefaultsGlobalFlagsAndDetails) {
  const std::string help = run_like_flags().help();
  EXPECT_EQ(help.rfind("usage: kiln run --workload W [--target T] [--config JSON] [--threads N] "
                       "[--json]\n\nRuns a kernel.\n\nflags:\n",
                       0),
            0u)
      << help;
  EXPECT_NE(help.find("  --workload W   the workload (required)\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  --target T     the target (default: llvm)\n"), std::string::npos);
  EXPECT_NE(help.find("  --config JSON  the config\n"), std::string::npos);
  EXPECT_NE(help.find("  --threads N    threads (default: 4)\n"), std::string::npos);
  EXPECT_NE(help.find("  --json         print JSON\n"), std::string::npos);
  EXPECT_NE(help.find("\nglobal flags:\n" + std::string(kGlobalFlagsHelp)), std::string::npos);
  EXPECT_NE(help.find("\nExit codes: 0 ok.\n"), std::string::npos);
}

TEST(FlagSetPositional, TakesArgumentsInOrderAmongTheFlags) {
  FlagSet flags = compile_like_flags();
  ASSERT_TRUE(flags.parse({"--target", "llvm", "net.onnx", "--json", "w.npz"}).is_ok());
  EXPECT_EQ(flags.get_positional("model"), "net.onnx");
  EXPECT_EQ(flags.get_positional("weights"), "w.npz");
  EXPECT_TRUE(flags.is_set("model"));
  EXPECT_TRUE(flags.get_bool("json"));
  EXPECT_EQ(flags.get_string("target"), "llvm");

  FlagSet only_model = compile_like_flags();
  ASSERT_TRUE(only_model.parse({"net.onnx", "--target", "llvm"}).is_ok());
  EXPECT_EQ(only_model.get_positional("model"), "net.onnx");
  EXPECT_FALSE(only_model.is_set("weights"));
  EXPECT_EQ(only_model.get_positional("weights"), "");
}

TEST(FlagSetPositional, TakesArgumentsThatLookLikeFlagsAfterTheMark) {
  FlagSet flags = compile_like_flags();
  ASSERT_TRUE(flags.parse({"--target", "llvm", "--", "-net.onnx"}).is_ok());
  EXPECT_EQ(flags.get_positional("model"), "-net.onnx");
}

TEST(FlagSetPositional, ReportsMissingAndSurplusArguments) {
  EXPECT_EQ(error_of(compile_like_flags(), {"--target", "llvm"}),
            "missing MODEL.onnx for 'kiln compile'; run 'kiln compile --help'");
  EXPECT_EQ(error_of(compile_like_flags(), {"a.onnx", "b", "c", "--target", "llvm"}),
            "unexpected argument 'c' for 'kiln compile'; run 'kiln compile --help'");
  EXPECT_EQ(error_of(compile_like_flags(), {"a.onnx", "--target", "llvm", "--bogus"}),
            "unknown flag '--bogus' for 'kiln compile'; run 'kiln compile --help'");
  // Flags are still checked alongside: a missing --target is reported by name.
  EXPECT_EQ(error_of(compile_like_flags(), {"a.onnx"}),
            "missing required flag --target for 'kiln compile' (--target T)");
}

TEST(FlagSetPositional, HelpShowsArgumentsInUsageAndList) {
  const std::string help = compile_like_flags().help();
  EXPECT_EQ(help.rfind("usage: kiln compile MODEL.onnx [WEIGHTS] --target T [--output MODULE] "
                       "[--json]\n",
                       0),
            0u)
      << help;
  EXPECT_NE(help.find("\narguments:\n  MODEL.onnx           the model to compile\n"
                      "  WEIGHTS              a weights file (optional)\n\nflags:\n"),
            std::string::npos)
      << help;
  EXPECT_NE(help.find("  -o, --output MODULE  the module to write (default: model.kmod)\n"),
            std::string::npos)
      << help;
}

TEST(FlagSetShortAlias, SpellsTheLongFlagInEveryForm) {
  for (const Args& output : std::vector<Args>{
           {"-o", "out.kmod"}, {"-oout.kmod"}, {"-o=out.kmod"}, {"--output", "out.kmod"}}) {
    FlagSet flags = compile_like_flags();
    Args args = {"net.onnx", "--target", "llvm"};
    args.insert(args.end(), output.begin(), output.end());
    ASSERT_TRUE(flags.parse(args).is_ok()) << output.front();
    EXPECT_TRUE(flags.is_set("output")) << output.front();
    EXPECT_EQ(flags.get_string("output"), "out.kmod") << output.front();
  }
  FlagSet defaulted = compile_like_flags();
  ASSERT_TRUE(defaulted.parse({"net.onnx", "--target", "llvm"}).is_ok());
  EXPECT_EQ(defaulted.get_string("output"), "model.kmod");
}

TEST(FlagSetShortAlias, CountsAsTheLongFlagInErrors) {
  EXPECT_EQ(
      error_of(compile_like_flags(), {"a.onnx", "--target", "llvm", "-o", "x", "--output", "y"}),
      "--output given more than once");
  EXPECT_EQ(error_of(compile_like_flags(), {"a.onnx", "--target", "llvm", "-o"}),
            "--output needs a value (--output MODULE)");
  EXPECT_EQ(error_of(compile_like_flags(), {"a.onnx", "--target", "llvm", "-p", "x"}),
            "unknown flag '-p' for 'kiln compile'; run 'kiln compile --help'");
}

}  // namespace
}  // namespace kiln::tuner
