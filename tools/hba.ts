import * as fs from "fs";
import * as path from "path";
import type { StackConfig } from "../infra/config";
import { renderFleetHba } from "../infra/hba";
import type { Tenant } from "../infra/manifest";
import { buildFleetModel } from "../infra/model";
import { CommandIo, EXIT, loadContext, readCommandArgs, processIo, runCommand } from "./lib/cli";

/**
 * `npm run hba -- --stack <name> --out <dir>`: writes `<dir>/pg_hba.<tier>.conf` for every
 * cluster of a stack, rendered from the tenants manifest by the program's own renderer, without
 * Pulumi. The files equal the stack output `pgHba` of the same manifest.
 */

/** Each cluster's pg_hba.conf, from the whole manifest: every tenant on the tier, moves included. */
export function renderStackHba(
  cfg: StackConfig,
  tenants: readonly Tenant[],
): Record<string, string> {
  return renderFleetHba(cfg, buildFleetModel(tenants, cfg));
}

/** The file a tier's pg_hba.conf is written to. */
export function hbaFileName(tier: string): string {
  return `pg_hba.${tier}.conf`;
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "hba");
    const ctx = loadContext(args.value("stack"), io.root);
    const out = path.resolve(io.root, args.value("out"));
    fs.mkdirSync(out, { recursive: true });
    for (const [tier, text] of Object.entries(renderStackHba(ctx.cfg, ctx.tenants))) {
      const file = path.join(out, hbaFileName(tier));
      fs.writeFileSync(file, text);
      const tenants = text.split("\n").filter((l) => / \+\S+ /.test(l)).length;
      const rel = path.relative(io.root, file);
      io.out(
        `wrote ${rel.startsWith("..") ? file : rel} (cluster ${tier}, ${tenants} tenant line(s))`,
      );
    }
    return EXIT.ok;
  });
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
