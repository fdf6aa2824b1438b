// @ts-check
const { SummaryReporter } = require("@jest/reporters");

/**
 * Jest's own summary, then one plain line, `tests: N passed, N failed, N skipped`, as the last
 * line of the run: the line CI reads to count the tests (jest's `Tests:` line ends in a total).
 * A file that fails to load counts as failed, so a broken file cannot pass as zero tests. Jest
 * always prints its summary after every other reporter, so this one takes the summary's place
 * (jest.config.js lists the default reporter's progress part and this, not "default").
 */
class CountReporter extends SummaryReporter {
  /**
   * @param {Set<import("@jest/reporters").TestContext>} contexts
   * @param {import("@jest/reporters").AggregatedResult} results
   */
  onRunComplete(contexts, results) {
    super.onRunComplete(contexts, results);
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const skipped = results.numPendingTests + results.numTodoTests;
    process.stdout.write(
      `tests: ${results.numPassedTests} passed, ${failed} failed, ${skipped} skipped\n`,
    );
  }
}
module.exports = CountReporter;
