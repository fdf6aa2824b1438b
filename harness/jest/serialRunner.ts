import TestRunner from "jest-runner";
import type { Config, TestRunnerContext } from "jest-runner";

/**
 * Jest's own runner, one test file at a time in one worker. The lanes that start PostgreSQL
 * clusters use it: two cluster files at once on a two-core machine slow each other into their
 * timing margins. Jest runs each runner's files after the previous runner's, so the parallel
 * lanes finish first and this one gets the machine to itself. A worker (not jest's in-band mode)
 * keeps each file in its own process state, as the other lanes have it.
 */
export default class SerialRunner extends TestRunner {
  constructor(globalConfig: Config.GlobalConfig, context: TestRunnerContext) {
    super({ ...globalConfig, maxWorkers: 1 }, context);
  }
}
