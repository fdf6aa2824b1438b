import tseslint from "typescript-eslint";
import pulumi from "@pulumi/eslint-plugin";

/** The pure core: the model's facts and pure functions, importable by the pack and the client. */
const CORE = [
  "infra/naming.ts",
  "infra/manifest.ts",
  "infra/model.ts",
  "infra/hba.ts",
  "infra/shards.ts",
  "infra/issues.ts",
  "infra/sql.ts",
  "infra/limits.ts",
  "infra/ssl.ts",
  "infra/changes.ts",
  "infra/pooler.ts",
  "infra/scram.ts",
  "infra/modelSql.ts",
  "infra/config.ts",
];
const pulumiRuntime = {
  group: ["@pulumi/*"],
  message:
    "Only the program (infra/program.ts, components, programConfig, options) loads the Pulumi runtime.",
};
/** Modules outside the core; their types may be named (erased at run time), their values not. */
const notCore = (where) => ({
  group: [
    `${where}programConfig`,
    `${where}program`,
    `${where}options`,
    `${where}index`,
    `${where}components/*`,
  ],
  allowTypeImports: true,
  message:
    "Import only the pure core here (naming, config, manifest, model, modelSql, hba, shards, issues, sql, limits, ssl, changes, pooler, scram); types of other modules are fine.",
});
const noTools = {
  group: ["**/tools/**", "**/harness/**", "**/test/**", "**/bench/**"],
  message: "The program, the pack and the client import no tools, harness, tests or benchmarks.",
};
const wall = (...patterns) => ({
  "@typescript-eslint/no-restricted-imports": ["error", { patterns }],
});

export default tseslint.config(
  {
    ignores: [
      "node_modules/",
      "dist/",
      ".local/",
      "policy/node_modules/",
      "**/*.js",
      "**/*.mjs",
      "**/*.cjs",
    ],
  },
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@pulumi": pulumi },
    rules: {
      "@pulumi/no-output-in-template-literal": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      eqeqeq: ["error", "always"],
    },
  },
  // Walls: what each room may import (see CORE above). No module of infra/ imports the tools,
  // the audit (tools/audit/) among them; for the core, its own wall below takes this one's place.
  { files: ["infra/**/*.ts"], rules: wall(noTools) },
  { files: CORE, rules: wall(pulumiRuntime, notCore("./"), noTools) },
  {
    files: ["policy/**/*.ts"],
    rules: wall(
      { ...pulumiRuntime, group: ["@pulumi/*", "!@pulumi/policy"] },
      notCore("**/infra/"),
      noTools,
      { group: ["**/client/**"], message: "The policy pack does not import the client." },
    ),
  },
  {
    files: ["client/**/*.ts"],
    rules: wall(pulumiRuntime, notCore("**/infra/"), noTools, {
      group: ["**/policy/**"],
      message: "The client does not import the policy pack.",
    }),
  },
  {
    files: ["bench/**/*.ts"],
    rules: wall({
      group: ["**/test/**"],
      message: "Benchmarks use the harness (harness/), never the tests.",
    }),
  },
);
