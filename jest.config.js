// @ts-check
/**
 * One jest configuration, one project per lane. `npm test` runs every lane, two files at a time;
 * the lanes marked serial run after the others, one file at a time (harness/jest/serialRunner.ts).
 * `npm run test:unit` / `test:integration` select one lane (`jest --selectProjects <lane>`).
 */

/**
 * TypeScript through @swc/jest, file by file without a type check (`npm run typecheck` does
 * that); measured faster than ts-jest in isolatedModules mode on this suite.
 */
const transform = {
  "^.+\\.ts$": [
    "@swc/jest",
    {
      jsc: { parser: { syntax: "typescript" }, target: "es2022" },
      module: { type: "commonjs" },
      sourceMaps: "inline",
    },
  ],
  // node-pg-migrate 9 ships ES modules only: node loads it through require(esm), jest's
  // module registry does not before Node 24.9, so its bundle is compiled to CommonJS here.
  "node_modules/node-pg-migrate/.+\\.js$": [
    "@swc/jest",
    { jsc: { target: "es2022" }, module: { type: "commonjs" } },
  ],
};

/** @param {string} name @param {Partial<import("jest").Config>} lane @returns {import("jest").Config} */
const project = (name, lane) => ({
  displayName: name,
  testEnvironment: "node",
  transform,
  moduleFileExtensions: ["ts", "js", "json"],
  testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
  transformIgnorePatterns: ["/node_modules/(?!node-pg-migrate/)"],
  ...lane,
});

/** For lanes whose files must not share the machine with another file. */
const SERIAL = "<rootDir>/harness/jest/serialRunner.ts";
/** The per-test and per-hook limit of the lanes that start clusters. */
const CLUSTER_TIMEOUT = "<rootDir>/harness/jest/clusterTimeout.ts";

/** @type {import("jest").Config} */
module.exports = {
  // Unit and policy tests that evaluate the program under the mock runtime take seconds each.
  testTimeout: 60_000,
  maxWorkers: 2,
  reporters: [
    "<rootDir>/harness/jest/progressReporter.js",
    "<rootDir>/harness/jest/countReporter.js",
  ],
  projects: [
    project("unit", {}),
    project("policy", {}),
    // Each file starts its own clusters on free ports, so two run side by side as before; hooks
    // that start three clusters on a loaded machine take tens of seconds.
    project("integration", { setupFilesAfterEnv: [CLUSTER_TIMEOUT] }),
    // The real Pulumi engine and plugins against fresh clusters, one file at a time; the setup
    // finds (or builds) the engine, or skips the lane with one line (harness/jest/engineSetup.ts).
    project("engine", {
      runner: SERIAL,
      setupFilesAfterEnv: [CLUSTER_TIMEOUT],
      globalSetup: "<rootDir>/harness/jest/engineSetup.ts",
      // Drops the two rejections an inline Pulumi program leaves unobserved by design (see it).
      testEnvironment: "<rootDir>/harness/jest/engineEnvironment.ts",
    }),
  ],
};
