import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import type { TenantFile } from "../infra/manifest";

/** A tenant file as the tests and benchmarks write it: the fields they vary, and raw YAML after. */
export interface TenantSpec {
  id: string;
  tier: string;
  /** Default `Tenant <id>`. */
  displayName?: string;
  state?: TenantFile["state"];
  limits?: TenantFile["limits"];
  /** YAML appended as written, for fields and mistakes the structured part cannot express. */
  extra?: string;
}

/** The text of one tenant file. */
export function tenantYaml(t: TenantSpec): string {
  const doc = {
    id: t.id,
    displayName: t.displayName ?? `Tenant ${t.id}`,
    tier: t.tier,
    ...(t.state !== undefined ? { state: t.state } : {}),
    ...(t.limits !== undefined ? { limits: t.limits } : {}),
  };
  return stringify(doc) + (t.extra ?? "");
}

/** Makes `dir` hold exactly these tenant files (other `*.yaml` files in it are removed). */
export function writeTenantFiles(dir: string, tenants: readonly TenantSpec[]): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(dir)) if (f.endsWith(".yaml")) fs.rmSync(path.join(dir, f));
  for (const t of tenants) fs.writeFileSync(path.join(dir, `${t.id}.yaml`), tenantYaml(t));
}

/** Writes tenant files into a fresh temporary folder and returns it. */
export function writeTenants(tenants: readonly TenantSpec[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-tenants-"));
  writeTenantFiles(dir, tenants);
  return dir;
}
