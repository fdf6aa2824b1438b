import * as path from "path";

/**
 * Runs compiled JavaScript the way `pulumi up` runs a program whose `main` is JavaScript: the
 * SDK's runner (@pulumi/pulumi cmd/run/index.js) loads source-map-support first, whatever the
 * program. Usage: node runner.js <file.js> args...
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
require("source-map-support/register");
const [file, ...args] = process.argv.slice(2);
process.argv = [process.argv[0], path.resolve(file), ...args];
// eslint-disable-next-line @typescript-eslint/no-require-imports
require(path.resolve(file));
