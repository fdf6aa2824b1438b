import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { PROJECT } from "../infra/config";
import type { CommandIo } from "../tools/lib/cli";
import { Fleet, FLEET_STACK } from "./fleet";

/**
 * What the day-two command tests share: the fleet's stack written as a stack file under the
 * fleet's root (the commands read stacks/Pulumi.<stack>.yaml like on a checkout), and a command
 * environment that captures output and lends the provisioning passwords through the variables
 * the commands read.
 */

/** Writes stacks/Pulumi.integration.yaml (plain settings only) under the fleet root. */
export function writeStackFile(fleet: Fleet, extra: Record<string, unknown> = {}): void {
  const plain = Object.entries({ ...fleet.config, ...extra }).filter(
    ([k]) => k !== "clusterPasswords",
  );
  const config = Object.fromEntries(plain.map(([k, v]) => [`${PROJECT}:${k}`, v]));
  fs.mkdirSync(path.join(fleet.root, "stacks"), { recursive: true });
  fs.writeFileSync(
    path.join(fleet.root, "stacks", `Pulumi.${FLEET_STACK}.yaml`),
    stringify({ config }),
  );
}

/** The provisioning passwords as the commands read them: PGTENANTS_PASSWORD_<TIER>. */
export function passwordEnv(fleet: Fleet): Record<string, string> {
  const passwords = fleet.config.clusterPasswords as Record<string, string>;
  return Object.fromEntries(
    Object.entries(passwords).map(([tier, pw]) => [`PGTENANTS_PASSWORD_${tier.toUpperCase()}`, pw]),
  );
}

export interface CapturedIo extends CommandIo {
  lines: string[];
  errors: string[];
}

/** A command environment rooted at the fleet, with captured output. */
export function captureIo(
  fleet: Fleet,
  env: Record<string, string | undefined> = {},
  now = () => new Date(),
): CapturedIo {
  const lines: string[] = [];
  const errors: string[] = [];
  const merged: NodeJS.ProcessEnv = { ...process.env, ...passwordEnv(fleet) };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  return {
    root: fleet.root,
    out: (l) => lines.push(l),
    err: (l) => errors.push(l),
    env: merged,
    now,
    lines,
    errors,
  };
}
