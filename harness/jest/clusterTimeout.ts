import { jest } from "@jest/globals";

// jest-circus reads testTimeout from the global config only; a lane sets its own in a setup
// file. Hooks here start and stop PostgreSQL clusters: tens of seconds on a loaded machine.
jest.setTimeout(300_000);
