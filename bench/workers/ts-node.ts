import * as path from "path";

/**
 * Runs a TypeScript file the way `pulumi up` runs a program whose Pulumi.yaml says
 * `typescript: true`: the SDK's runner loads source-map-support, then registers ts-node (the
 * project's, else the SDK's vendored 7.0.1) with the project's tsconfig and source maps on.
 * Mirrors @pulumi/pulumi cmd/run (index.js and run.js). Usage: node ts-node.js <file.ts> args...
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
require("source-map-support/register");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tsutils = require("@pulumi/pulumi/tsutils") as {
  typeScriptRequireStrings(): { tsnodeRequire: string; typescriptRequire: string };
  loadTypeScriptCompilerOptions(file: string): Record<string, unknown>;
};

const tsConfigPath = "tsconfig.json";
const { tsnodeRequire, typescriptRequire } = tsutils.typeScriptRequireStrings();
const compilerOptions = tsutils.loadTypeScriptCompilerOptions(tsConfigPath);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tsn = require(tsnodeRequire) as { register(options: Record<string, unknown>): void };
tsn.register({
  compiler: typescriptRequire,
  transpileOnly: compilerOptions.noCheck,
  project: tsConfigPath,
  skipProject: false,
  compilerOptions: {
    target: "ES2020",
    module: "nodenext",
    moduleResolution: "nodenext",
    sourceMap: "true",
    ...compilerOptions,
  },
});

const [file, ...args] = process.argv.slice(2);
process.argv = [process.argv[0], path.resolve(file), ...args];
// eslint-disable-next-line @typescript-eslint/no-require-imports
require(path.resolve(file));
