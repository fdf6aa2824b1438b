import * as fs from "fs";
import * as path from "path";
import { tenantJsonSchema } from "../infra/manifest";
import { CommandArgs, EXIT, readCommandArgs } from "./lib/cli";

/**
 * `npm run schema`: writes tenants/tenant.schema.json from the manifest's zod schema, so editors
 * validate tenant files with exactly the rules the program applies. `--check` only compares.
 */
export const SCHEMA_PATH = path.join("tenants", "tenant.schema.json");

export function renderSchema(): string {
  return JSON.stringify(tenantJsonSchema(), null, 2) + "\n";
}

export function main(argv: string[]): number {
  let args: CommandArgs;
  try {
    args = readCommandArgs(argv, "schema");
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return EXIT.usage;
  }
  const file = path.resolve(SCHEMA_PATH);
  const text = renderSchema();
  if (args.flag("check")) {
    const current = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    if (current !== text) {
      console.error(`error: ${SCHEMA_PATH} is out of date: run npm run schema`);
      return 1;
    }
    console.log(`${SCHEMA_PATH} is up to date`);
    return 0;
  }
  fs.writeFileSync(file, text);
  console.log(`wrote ${SCHEMA_PATH}`);
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
