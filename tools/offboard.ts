import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Client } from "pg";
import type { StackConfig } from "../infra/config";
import type { TenantModel } from "../infra/model";
import { credentialsSecretName, isLoginKind, LOGIN_KINDS } from "../infra/naming";
import { PROJECT } from "../infra/config";
import { quoteIdent } from "../infra/sql";
import { DumpManifest, dumpWithStats, manifestPath, readManifest, sha256File } from "./lib/archive";
import {
  CommandError,
  CommandIo,
  EXIT,
  ensureParent,
  fileStamp,
  findTenant,
  loadContext,
  readCommandArgs,
  processIo,
  restrictFile,
  runCommand,
  UsageError,
} from "./lib/cli";
import { compareContents, databaseContents, describeContents } from "./lib/contents";
import { safeOutputPath } from "./lib/files";
import { tenantSessions } from "./lib/freeze";
import { ClusterTarget, clusterTarget, connect, lockWaitMessage } from "./lib/pg";
import { sealFile, sealingKey } from "./lib/seal";
import { pulumiCommands } from "./stack";

/**
 * `npm run offboard -- <tenant> [--stack <name>] [--out <file>]`: for a tenant whose file says
 * `state: offboarded` and whose offboarding is applied (logins NOLOGIN, connections
 * disallowed), writes the final dump, sealed with the tenant's key (see lib/seal.ts), and its
 * manifest. The database and key stay for the stack's `retentionDays` after `offboardedAt`.
 *
 * `npm run offboard -- <tenant> --purge --confirm <tenant>`: after the retention period only,
 * drops the tenant's database and roles on its cluster and prints the steps that remove the
 * tenant from the stack state and schedule its KMS key's deletion (crypto-shredding).
 */

const DAY_MS = 24 * 60 * 60 * 1000;

/** The first day a purge is allowed: offboardedAt + retentionDays (UTC calendar days). */
export function retentionEnd(offboardedAt: string, retentionDays: number): string {
  const start = Date.parse(`${offboardedAt}T00:00:00Z`);
  return new Date(start + retentionDays * DAY_MS).toISOString().slice(0, 10);
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "offboard");
    const [id] = args.positionals;
    const ctx = loadContext(args.value("stack"), io.root);
    const { tenant, model } = findTenant(ctx, id);
    if (model.state !== "offboarded" || model.offboardedAt === undefined) {
      throw new CommandError(
        `tenant ${id} is not offboarded: set "state: offboarded" and "offboardedAt: <YYYY-MM-DD>" in ${tenant.file}, run pulumi up (logins NOLOGIN, connections disallowed, no pg_hba line), then npm run offboard -- ${id}`,
      );
    }
    const target = clusterTarget(ctx.cfg, model.tier, ctx.root, io.env);
    if (args.flag("purge")) {
      return purge(ctx.cfg, model, target, io, args.text("confirm"), args.text("final-dump"));
    }
    return finalDump(ctx.cfg, model, target, io, args.text("out"));
  });
}

const finalDumpDir = (root: string, id: string) => path.join(root, "backups", id);

async function finalDump(
  cfg: StackConfig,
  model: TenantModel,
  target: ClusterTarget,
  io: CommandIo,
  out: string | undefined,
): Promise<number> {
  const now = io.now();
  const file = safeOutputPath(
    io.root,
    out ?? path.join("backups", model.id, `${model.id}-final-${fileStamp(now)}.dump.sealed`),
    "--out",
  );
  if (fs.existsSync(file)) throw new CommandError(`${file} exists already; choose another --out`);
  // The key first: without it nothing is opened or written.
  const sealing = await sealingKey(cfg, model, io.env);

  const admin = await connect(target);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-offboard-"));
  try {
    await requireOffboardingApplied(admin, model, target.tier);
    // No login can log in any more, but a session opened before the offboarding still writes:
    // it ends now, before the dump's snapshot, so nothing can write after the final dump.
    const ended = await endTenantSessions(admin, model, target);
    if (ended > 0)
      io.out(`ended ${ended} session(s) of tenant ${model.id} still open on cluster ${model.tier}`);
    const plain = path.join(work, "final.dump");
    // The provisioning role still reaches the closed database through the owner role.
    const client = await connect(target, model.database.name);
    let result;
    try {
      result = await dumpWithStats(client, target, model.database.name, plain, io.env);
    } finally {
      await client.end().catch(() => undefined);
    }
    const after = await tenantSessions(admin, roleNames(model));
    if (after.length > 0) {
      throw new CommandError(
        `${after.length} session(s) of tenant ${model.id} appeared during the final dump (pids ${after.join(", ")}): the dump is not the last word; check that its logins are NOLOGIN (pulumi up) and run npm run offboard -- ${model.id} again; nothing was written`,
      );
    }
    ensureParent(file);
    sealFile(plain, file, model.id, sealing, now);
    restrictFile(file);
    const manifest: DumpManifest = {
      format: "pg-tenants-dump/1",
      tenant: model.id,
      stack: cfg.stack,
      tier: model.tier,
      database: model.database.name,
      createdAt: now.toISOString(),
      serverVersion: result.serverVersion,
      pgDump: result.pgDump,
      sha256: sha256File(file),
      bytes: fs.statSync(file).size,
      sealed: { keySource: sealing.header.keySource },
      tables: result.tables,
      sequences: result.sequences,
      largeObjects: result.largeObjects,
    };
    fs.writeFileSync(manifestPath(file), JSON.stringify(manifest, null, 2) + "\n", {
      mode: 0o600,
    });
    const until = retentionEnd(model.offboardedAt!, cfg.retentionDays);
    io.out(
      `final dump of tenant ${model.id}: ${path.relative(io.root, file)} (${manifest.bytes} bytes, AES-256-GCM with the tenant's ${sealing.header.keySource === "aws-kms" ? `KMS key ${model.key.alias}` : "data key"})`,
    );
    io.out(`${describeContents(result)}; manifest ${path.relative(io.root, manifestPath(file))}`);
    io.out(
      `database ${model.database.name} on cluster ${model.tier} stays closed (no CONNECT, logins NOLOGIN) and is retained with the key until ${until}`,
    );
    io.out(
      `then: npm run offboard -- ${model.id} --purge --confirm ${model.id}${cfg.stack === "local" ? "" : ` --stack ${cfg.stack}`}`,
    );
    return EXIT.ok;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    await admin.end().catch(() => undefined);
  }
}

const roleNames = (model: TenantModel) => model.roles.map((r) => r.name);

/**
 * Ends every session of the tenant's roles on the cluster and waits (10 s at most) until they
 * are gone. Without pg_signal_backend the provisioning role cannot: the error says how to fix it.
 */
async function endTenantSessions(
  admin: Client,
  model: TenantModel,
  target: ClusterTarget,
): Promise<number> {
  const pids = await tenantSessions(admin, roleNames(model));
  for (const pid of pids) {
    try {
      await admin.query("SELECT pg_terminate_backend($1)", [pid]);
    } catch (e) {
      if ((e as { code?: string }).code === "42501") {
        throw new CommandError(
          `${pids.length} session(s) of tenant ${model.id} are still open on cluster ${model.tier} (pids ${pids.join(", ")}) and ${target.user} may not end them: it needs pg_signal_backend (as a superuser: GRANT pg_signal_backend TO ${target.user}; the cluster bootstrap grants it), then run npm run offboard -- ${model.id} again; nothing was written`,
        );
      }
      throw new CommandError(lockWaitMessage(e, `ending session ${pid} of tenant ${model.id}`));
    }
  }
  const deadline = Date.now() + 10_000;
  let left = await tenantSessions(admin, roleNames(model));
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = await tenantSessions(admin, roleNames(model));
  }
  if (left.length > 0) {
    throw new CommandError(
      `${left.length} session(s) of tenant ${model.id} did not end within 10 s (pids ${left.join(", ")}): run npm run offboard -- ${model.id} again; nothing was written`,
    );
  }
  return pids.length;
}

/** The offboarding must be live before the final dump: nobody writes any more. */
async function requireOffboardingApplied(
  admin: Client,
  model: TenantModel,
  tier: string,
): Promise<void> {
  const db = await admin.query<{ connect: string[] }>(
    `SELECT coalesce(array_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END)
              FILTER (WHERE a.privilege_type = 'CONNECT' AND a.grantee <> d.datdba), '{}') AS connect
     FROM pg_database d LEFT JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a ON true
     WHERE d.datname = $1 GROUP BY d.datname`,
    [model.database.name],
  );
  if (db.rowCount === 0)
    throw new CommandError(`database ${model.database.name} does not exist on cluster "${tier}"`);
  const logins = model.roles.filter((r) => isLoginKind(r.kind)).map((r) => r.name);
  const open = await admin.query<{ rolname: string }>(
    "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[]) AND rolcanlogin ORDER BY 1",
    [logins],
  );
  const pending = [
    ...[...db.rows[0].connect]
      .sort()
      .map((grantee) => `${grantee} still holds CONNECT on ${model.database.name}`),
    ...open.rows.map((r) => `role ${r.rolname} can still log in`),
  ];
  if (pending.length > 0) {
    throw new CommandError(
      `the offboarding of tenant ${model.id} is not applied yet (${pending.join(", ")}): run pulumi up first; nothing was changed`,
    );
  }
}

async function purge(
  cfg: StackConfig,
  model: TenantModel,
  target: ClusterTarget,
  io: CommandIo,
  confirm: string | undefined,
  finalDumpFile: string | undefined,
): Promise<number> {
  const until = retentionEnd(model.offboardedAt!, cfg.retentionDays);
  const today = io.now().toISOString().slice(0, 10);
  if (today < until) {
    throw new CommandError(
      `the retention of tenant ${model.id} runs until ${until} (offboardedAt ${model.offboardedAt} + retentionDays ${cfg.retentionDays}): refusing to purge before; nothing was changed`,
    );
  }
  if (confirm !== model.id) {
    throw new UsageError(
      `--purge drops database ${model.database.name} and the roles of tenant ${model.id} on cluster ${model.tier} for good: repeat the tenant id with --confirm ${model.id}`,
    );
  }
  const finalDump = requireFinalDump(io.root, cfg, model, finalDumpFile);

  const admin = await connect(target);
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [
      model.database.name,
    ]);
    if (exists.rowCount !== 0) {
      // The file says offboarded; the cluster must agree before anything is dropped.
      await requireOffboardingApplied(admin, model, model.tier);
      // The final dump must still be the last word: no session, and nothing written since.
      await endTenantSessions(admin, model, target);
      const db = await connect(target, model.database.name);
      let changed: string[];
      try {
        changed = compareContents(
          finalDump,
          await databaseContents(db),
          `database ${model.database.name} now`,
        );
      } finally {
        await db.end().catch(() => undefined);
      }
      if (changed.length > 0) {
        throw new CommandError(
          `database ${model.database.name} changed after its final dump (${changed.join("; ")}): write a new final dump with npm run offboard -- ${model.id} before purging; nothing was changed`,
        );
      }
      try {
        await admin.query(`DROP DATABASE ${quoteIdent(model.database.name)} WITH (FORCE)`);
      } catch (e) {
        throw new CommandError(
          `dropping database ${model.database.name} on cluster ${model.tier} failed (${lockWaitMessage(e, "the drop")}): nothing was dropped; fix the cause and run the purge again`,
        );
      }
      io.out(`dropped database ${model.database.name} on cluster ${model.tier}`);
    } else {
      io.out(`database ${model.database.name} is already gone from cluster ${model.tier}`);
    }
    await dropTenantRoles(admin, model, model.tier, target.user, io);
  } finally {
    await admin.end().catch(() => undefined);
  }
  // A tier move leaves the source closed and retained on the cluster it left (until an operator
  // drops it): a full copy of the data, which a purge must not leave behind.
  for (const tier of Object.keys(cfg.clusters).filter((t) => t !== model.tier)) {
    await dropRetainedCopy(cfg, model, tier, io);
  }
  io.out("");
  for (const line of purgeNextSteps(cfg, model)) io.out(line);
  return EXIT.ok;
}

/**
 * A purge needs this tenant's final dump of this stack (in backups/<id>/ or where --final-dump
 * says): its manifest names the tenant and stack, says it is sealed, and its sha256 matches.
 */
function requireFinalDump(
  root: string,
  cfg: StackConfig,
  model: TenantModel,
  file: string | undefined,
): DumpManifest {
  if (file !== undefined) {
    const problem = finalDumpProblem(path.resolve(root, file), file, cfg, model);
    if (problem !== undefined) throw new CommandError(`${problem}; nothing was changed`);
    return readManifest(path.resolve(root, file))!;
  }
  const dir = finalDumpDir(root, model.id);
  const shown = path.relative(root, dir) || dir;
  const candidates = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => /-final-.*\.dump\.sealed$/.test(f))
        .sort()
    : [];
  const problems = candidates.map((f) =>
    finalDumpProblem(path.join(dir, f), path.join(shown, f), cfg, model),
  );
  // The newest usable final dump is the one the database must still match.
  const usable = candidates.filter((_, i) => problems[i] === undefined);
  if (usable.length > 0) return readManifest(path.join(dir, usable[usable.length - 1]))!;
  const hint = `write it first with npm run offboard -- ${model.id} (or name it with --final-dump <file>); nothing was changed`;
  if (candidates.length === 0) {
    throw new CommandError(`no final dump of tenant ${model.id} in ${shown}: ${hint}`);
  }
  throw new CommandError(
    `no usable final dump of tenant ${model.id} in ${shown} (${problems.join("; ")}): ${hint}`,
  );
}

/** Why `file` is not this tenant's final dump of this stack; undefined when it is. */
function finalDumpProblem(
  file: string,
  shown: string,
  cfg: StackConfig,
  model: TenantModel,
): string | undefined {
  const manifest = fs.existsSync(file) ? readManifest(file) : undefined;
  if (manifest === undefined) return `final dump ${shown} or its manifest ${shown}.json not found`;
  if (manifest.tenant !== model.id)
    return `${shown} is a dump of tenant ${manifest.tenant}, not ${model.id}`;
  if (manifest.stack !== cfg.stack)
    return `${shown} is a dump of stack ${manifest.stack}, not ${cfg.stack}`;
  if (manifest.sealed === undefined)
    return `${shown} is not a sealed final dump (its manifest records no sealing)`;
  if (sha256File(file) !== manifest.sha256)
    return `${shown} does not match the sha256 of its manifest (altered or truncated)`;
  return undefined;
}

/** The tenant component's URN: after the purge, the stack state forgets the tenant. */
export function tenantUrn(stack: string, model: TenantModel): string {
  return `urn:pulumi:${stack}::${PROJECT}::pg-tenants:index:Tenant::${model.logical.tenant}`;
}

/** Drops the tenant's roles on one cluster, members before groups: logins, group, owner. */
async function dropTenantRoles(
  admin: Client,
  model: TenantModel,
  tier: string,
  provisioner: string,
  io: CommandIo,
): Promise<void> {
  const roles = ["rw", "ro", "group", "owner"].map(
    (k) => model.roles.find((r) => r.kind === k)!.name,
  );
  const present = await admin.query<{ rolname: string }>(
    "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])",
    [roles],
  );
  const toDrop = roles.filter((r) => present.rows.some((p) => p.rolname === r));
  for (const role of toDrop) {
    try {
      await admin.query(`DROP ROLE ${quoteIdent(role)}`);
    } catch (e) {
      throw new CommandError(
        `dropping role ${role} on cluster ${tier} failed (${(e as Error).message}): it still owns or holds something in another database; as the provisioning role there run REASSIGN OWNED BY ${quoteIdent(role)} TO ${quoteIdent(provisioner)}; DROP OWNED BY ${quoteIdent(role)}; then run the purge again (the database is already dropped)`,
      );
    }
  }
  if (toDrop.length > 0) io.out(`dropped roles ${toDrop.join(", ")} on cluster ${tier}`);
}

/** The copy a tier move retained on `tier`, if any: its database and roles dropped. */
async function dropRetainedCopy(
  cfg: StackConfig,
  model: TenantModel,
  tier: string,
  io: CommandIo,
): Promise<void> {
  const target = clusterTarget(cfg, tier, io.root, io.env);
  let admin: Client;
  try {
    admin = await connect(target);
  } catch (e) {
    throw new CommandError(
      `cannot check cluster ${tier} for a copy of tenant ${model.id} that a tier move left there (${(e as Error).message}): the database on cluster ${model.tier} is purged; run the purge again once cluster ${tier} is reachable`,
    );
  }
  try {
    const copy = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [
      model.database.name,
    ]);
    if (copy.rowCount !== 0) {
      await admin.query(`DROP DATABASE ${quoteIdent(model.database.name)} WITH (FORCE)`);
      io.out(
        `dropped database ${model.database.name} on cluster ${tier} (the source a tier move retained)`,
      );
    }
    await dropTenantRoles(admin, model, tier, target.user, io);
  } catch (e) {
    if (e instanceof CommandError) throw e;
    throw new CommandError(
      `dropping the copy of tenant ${model.id} on cluster ${tier} failed (${lockWaitMessage(e, "the drop")}): the database on cluster ${model.tier} is purged; fix the cause and run the purge again`,
    );
  } finally {
    await admin.end().catch(() => undefined);
  }
}

export function purgeNextSteps(cfg: StackConfig, model: TenantModel): string[] {
  const lines = [
    "Next steps:",
    `  1. Remove ${path.join(cfg.tenantsDir, `${model.id}.yaml`)} and, before the next pulumi up, the tenant from the stack state`,
    "     (its database and key are protected: the engine refuses to delete them):",
    `       ${pulumiCommands(cfg.stack).cli} state delete --stack ${cfg.stack} --force --target-dependents '${tenantUrn(cfg.stack, model)}'`,
  ];
  if (cfg.keys.provider === "aws-kms") {
    lines.push(
      `  2. Crypto-shredding: schedule the deletion of the tenant's KMS key (its final dumps become unreadable when it is deleted)`,
      `     and delete its credentials secrets:`,
      `       aws kms schedule-key-deletion --key-id ${model.key.alias} --pending-window-in-days ${cfg.keys.deletionWindowDays}`,
      `       aws kms delete-alias --alias-name ${model.key.alias}`,
      ...LOGIN_KINDS.map(
        (k) =>
          `       aws secretsmanager delete-secret --secret-id ${credentialsSecretName(cfg.keys.aliasPrefix, model.id, k)} --recovery-window-in-days 7`,
      ),
    );
  } else {
    lines.push(
      "  2. The local data key lives only in the stack state and leaves with the state delete; delete the",
      `     sealed final dumps in backups/${model.id}/ when they must become unreadable.`,
    );
  }
  return lines;
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
