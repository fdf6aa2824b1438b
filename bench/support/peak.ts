/**
 * Preloaded (`node --require`) into a measured command: prints its peak resident set on exit,
 * on stderr, as `BENCH_MAX_RSS_KB=<kB>`, for the benchmark to read.
 */
process.on("exit", () => {
  process.stderr.write(`BENCH_MAX_RSS_KB=${process.resourceUsage().maxRSS}\n`);
});
