import type { TenantModel } from "../../infra/model";
import { PROJECT } from "../../infra/config";
import { pulumiCommands } from "../stack";
import type { MovePhase, MoveRow } from "./journal";

/**
 * What a move says: the report of a give-back, the journal's phases in words, the state a tenant
 * is in at each phase and the command that finishes or gives back, and the operator's next steps
 * after a move.
 */

/** "done", "skipped" (not needed), or the error message of a step that failed. */
export type Outcome = "done" | "skipped" | string;

/** What giving the source back did, step by step, and what remains to do. */
export function abandonReport(o: {
  id: string;
  from: string;
  to: string;
  database: string;
  emptied: Outcome;
  thawed: Outcome;
}): string {
  const target =
    o.emptied === "skipped"
      ? `the target database on cluster ${o.to} was left empty (the load was rolled back)`
      : o.emptied === "done"
        ? `the target database on cluster ${o.to} was emptied again`
        : `emptying the target database ${o.database} on cluster ${o.to} failed (${o.emptied}): it still holds the copied rows; run npm run move -- ${o.id} --abort again to empty it`;
  const source =
    o.thawed === "done"
      ? `the source on cluster ${o.from} serves as before (logins restored)`
      : `the source on cluster ${o.from} does not serve yet: giving it back failed (${o.thawed})`;
  return `the move was abandoned: ${target}, ${source}; fix the cause and run npm run move -- ${o.id} again`;
}

/** The journal's phase in words, as the tenant sees it. */
export function describePhase(phase: MovePhase): string {
  switch (phase) {
    case "frozen":
      return "frozen, not copied yet";
    case "copied":
      return "frozen, copied and verified, source not closed yet";
    case "closed":
      return "copied and verified, source closed, tenant file not rewritten yet";
    case "done":
      return "done";
    case "aborting":
      return "being given back";
    case "aborted":
      return "aborted";
  }
}

/** Exactly the state a tenant is in at a phase of its move. */
export function stateReport(
  row: Pick<MoveRow, "tenant" | "fromTier" | "toTier" | "phase" | "database">,
  file: string,
): string {
  const frozen = `its logins are NOLOGIN on cluster ${row.fromTier}: tenant ${row.tenant} is served nowhere`;
  switch (row.phase) {
    case "frozen":
      return `state: ${frozen}; the target database ${row.database} on cluster ${row.toTier} holds no verified copy yet.`;
    case "copied":
      return `state: ${frozen}; the target database ${row.database} on cluster ${row.toTier} holds the verified copy; the source still allows connections; ${file} is unchanged.`;
    case "closed":
      return `state: the source database ${row.database} on cluster ${row.fromTier} is closed (ALLOW_CONNECTIONS false, logins NOLOGIN) and the target on cluster ${row.toTier} holds the verified copy; tenant ${row.tenant} is served nowhere until ${file} says tier: ${row.toTier} and pulumi up runs.`;
    case "aborting":
      return `state: tenant ${row.tenant} serves from cluster ${row.fromTier} again (logins restored); the target database on cluster ${row.toTier} may still hold a copy.`;
    case "done":
    case "aborted":
      return `state: the move is ${row.phase}.`;
  }
}

/** The one command that finishes, and the one that gives back. */
export function resumeHint(row: Pick<MoveRow, "tenant" | "fromTier">): string {
  return `run npm run move -- ${row.tenant} to finish the move, or npm run move -- ${row.tenant} --abort to serve from cluster ${row.fromTier} again`;
}

/** The placement's URN in the stack state: the parent chain Tenant > TenantPlacement. */
export function placementUrn(stack: string, model: TenantModel): string {
  return `urn:pulumi:${stack}::${PROJECT}::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement::${model.id}@${model.tier}`;
}

/** What the operator does after a move, with the exact names. */
export function nextSteps(stack: string, model: TenantModel, to: string): string[] {
  const roles = [model.names.rw, model.names.ro, model.names.group, model.names.owner];
  const pulumi = pulumiCommands(stack);
  return [
    "Next steps:",
    `  1. Commit the tenant file. Before the next pulumi up, take the source placement out of the stack state`,
    `     (the engine would otherwise plan to delete the protected database ${model.database.name} on ${model.tier} and refuse):`,
    `       ${pulumi.cli} state delete --stack ${stack} --force --target-dependents '${placementUrn(stack, model)}'`,
    `     This changes only the state: the source database and roles stay on cluster ${model.tier}.`,
    `  2. ${pulumi.up}: the credentials now point at cluster ${to}; ${model.tier}'s pg_hba no longer admits the tenant.`,
    `  3. When the source copy is no longer wanted (npm run audit lists it as retained), as the provisioning role on ${model.tier}:`,
    `       DROP DATABASE ${model.database.name};`,
    `       DROP ROLE ${roles.join(", ")};`,
  ];
}
