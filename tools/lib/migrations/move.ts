import type { Client } from "pg";
import { CommandError } from "../cli";
import { readState } from "./history";

/**
 * A move copies data, never schema: the target (cloned by the program from the stack's
 * template) must be at the source's version. Checked before anything is frozen or copied.
 */
export async function requireSameVersion(
  source: Client,
  target: Client,
  id: string,
  stack: string,
): Promise<void> {
  const version = async (c: Client) => (await readState(c)).history?.length ?? 1;
  const [from, to] = [await version(source), await version(target)];
  if (from === to) return;
  throw new CommandError(
    from < to
      ? `tenant ${id}: the source is at template version ${from}, the target at ${to}; bring the source to version ${to} first (migrate --stack ${stack} --tenant ${id}), then run the move again; nothing was changed`
      : `tenant ${id}: the source is at template version ${from}, the target at ${to} (cloned from an older template); name the source's version in the stack's pg-tenants:template, run pulumi up and migrate, then run the move again; nothing was changed`,
  );
}
