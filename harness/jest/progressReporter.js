// @ts-check
/** Jest's default reporter without its summary, which harness/jest/countReporter.js prints. */
module.exports = require("@jest/reporters").DefaultReporter;
