#!/usr/bin/env node
// @ts-check
/**
 * `pg-tenants <command>`: one entry point for every tool. The parser, `--help` and usage errors
 * need only commander and the command table (tools/commands.js); TypeScript (ts-node with the
 * swc transpiler, tsconfig.json) and a command's own modules load once that command runs.
 * Exit codes: 0 done, 1 failed or violations found, 2 bad usage or input.
 */
const path = require("path");
const { Command, CommanderError, Option } = require("commander");
const { COMMANDS, EXIT } = require("../tools/commands");

const ROOT = path.join(__dirname, "..");

/**
 * Colour only on a terminal, and never with NO_COLOR set (https://no-color.org).
 * @param {NodeJS.WriteStream} stream
 */
function colour(stream) {
  return stream.isTTY === true && (process.env.NO_COLOR ?? "") === "";
}
/** @param {string} text */
const red = (text) => (colour(process.stderr) ? `\x1b[31m${text}\x1b[39m` : text);

/**
 * Runs a command's module with the arguments after the command's name, as the tool reads them.
 * @param {import("../tools/commands").CommandSpec} spec
 * @param {string[]} argv
 * @returns {Promise<number>}
 */
async function run(spec, argv) {
  require("ts-node").register({ project: path.join(ROOT, "tsconfig.json") });
  const tool = require(path.join(ROOT, spec.module));
  return await tool.main(argv);
}

/**
 * @param {string[]} argv
 * @param {(code: number) => void} setCode
 */
function program(argv, setCode) {
  const cli = new Command("pg-tenants")
    .description("Per-tenant PostgreSQL databases, roles, grants, keys and credentials on Pulumi.")
    .usage("<command> [options]")
    .helpCommand(false)
    // A command that reads its own arguments takes what follows its first argument as it is.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => write(text.replace(/^error:/, red("error:"))),
    })
    .addHelpText(
      "after",
      "\nExit codes: 0 done, 1 failed or violations found, 2 bad usage or input.\n" +
        "Every command takes --help. Colour only on a terminal; NO_COLOR turns it off.",
    );
  for (const spec of COMMANDS) {
    const cmd = cli
      .command(spec.name)
      .description(spec.summary)
      .exitOverride()
      .configureOutput({
        outputError: (text, write) => write(text.replace(/^error:/, red("error:"))),
      })
      .showHelpAfterError(`(pg-tenants ${spec.name} --help lists every option)`);
    for (const a of spec.args) {
      cmd.argument(a.required ? `<${a.name}>` : `[${a.name}]`, a.description);
    }
    for (const [name, o] of Object.entries(spec.options)) {
      const flags = o.type === "boolean" ? `--${name}` : `--${name} ${o.value ?? "<value>"}`;
      const option = new Option(flags, o.description);
      if (o.default !== undefined && o.type === "string") option.default(o.default);
      if (o.required === true) option.makeOptionMandatory();
      if (o.multiple === true) {
        option.argParser((/** @type {string} */ v, /** @type {string[] | undefined} */ prev) => [
          ...(prev ?? []),
          v,
        ]);
      }
      cmd.addOption(option);
    }
    if (spec.rawArgs === true) {
      // `local pulumi <args...>`: the CLI's own options and arguments reach the tool untouched.
      cmd.passThroughOptions().allowUnknownOption().allowExcessArguments(true);
    }
    cmd.action(async () => {
      const at = argv.indexOf(spec.name);
      setCode(await run(spec, argv.slice(at + 1)));
    });
  }
  return cli;
}

/** @param {string[]} argv */
async function main(argv) {
  let code = EXIT.ok;
  if (argv.length === 0) {
    // No command is bad usage: the command list goes to stderr, exit 2.
    program(argv, () => undefined).outputHelp({ error: true });
    return EXIT.usage;
  }
  try {
    await program(argv, (c) => (code = c)).parseAsync(argv, { from: "user" });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    // Help and version are not errors; everything else commander refuses is bad usage.
    const done = ["commander.helpDisplayed", "commander.help", "commander.version"];
    code = done.includes(e.code) ? EXIT.ok : EXIT.usage;
  }
  return code;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e) => {
    process.stderr.write(`${red("error:")} ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = EXIT.failed;
  },
);
