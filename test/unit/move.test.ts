import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "@jest/globals";
import { buildTenantModel } from "../../infra/model";
import {
  abandonReport,
  nextSteps,
  placementUrn,
  resumeHint,
  rewriteTenantFile,
  stateReport,
} from "../../tools/move";
import { tenantUrn } from "../../tools/offboard";
import { localConfig, tenant } from "../../harness/localStack";

/** What npm run move prints and writes: the operator's next steps, the tenant file, its reports. */

describe("operator steps move prints", () => {
  const cfg = localConfig();
  const model = buildTenantModel(tenant(), cfg);

  it("names the placement and tenant URNs the engine uses", () => {
    assert.equal(
      placementUrn("production", model),
      "urn:pulumi:production::pg-tenants::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement::acme@standard",
    );
    assert.equal(
      tenantUrn("production", model),
      "urn:pulumi:production::pg-tenants::pg-tenants:index:Tenant::acme",
    );
    assert.deepEqual(nextSteps("production", model, "premium").slice(3, 6), [
      "       pulumi state delete --stack production --force --target-dependents 'urn:pulumi:production::pg-tenants::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement::acme@standard'",
      "     This changes only the state: the source database and roles stay on cluster standard.",
      "  2. pulumi up --stack production: the credentials now point at cluster premium; standard's pg_hba no longer admits the tenant.",
    ]);
    // The local stack's built engine has no pulumi on PATH: its steps go through npm run local.
    assert.deepEqual(
      nextSteps("local", model, "premium").filter((l) => /pulumi state delete|^ {2}2\./.test(l)),
      [
        "       npm run local -- pulumi state delete --stack local --force --target-dependents 'urn:pulumi:local::pg-tenants::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement::acme@standard'",
        "  2. npm run local: the credentials now point at cluster premium; standard's pg_hba no longer admits the tenant.",
      ],
    );
  });

  it("rewrites the tenant file after a move keeping its comments and other fields", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-rewrite-"));
    const f = path.join(dir, "acme.yaml");
    fs.writeFileSync(
      f,
      "# yaml-language-server: $schema=./tenant.schema.json\nid: acme\n# the customer\ndisplayName: Acme\ntier: standard\nmove:\n  to: premium\nlimits:\n  connectionLimit: 5\n",
    );
    rewriteTenantFile(f, "premium");
    assert.equal(
      fs.readFileSync(f, "utf8"),
      "# yaml-language-server: $schema=./tenant.schema.json\nid: acme\n# the customer\ndisplayName: Acme\ntier: premium\nlimits:\n  connectionLimit: 5\n",
    );
    fs.rmSync(dir, { recursive: true });
  });
});

describe("what a failed move reports", () => {
  const cfg = localConfig();
  const model = buildTenantModel(tenant(), cfg);
  const report = (emptied: string, thawed: string) =>
    abandonReport({
      id: "acme",
      from: "standard",
      to: "premium",
      database: "tenant_acme",
      emptied,
      thawed,
    });

  it("says which of emptying the target and restoring the logins happened", () => {
    assert.equal(
      report("skipped", "done"),
      "the move was abandoned: the target database on cluster premium was left empty (the load was rolled back), the source on cluster standard serves as before (logins restored); fix the cause and run npm run move -- acme again",
    );
    assert.equal(
      report("connection terminated", "done"),
      "the move was abandoned: emptying the target database tenant_acme on cluster premium failed (connection terminated): it still holds the copied rows; run npm run move -- acme --abort again to empty it, the source on cluster standard serves as before (logins restored); fix the cause and run npm run move -- acme again",
    );
    assert.equal(
      report("done", "connection terminated"),
      "the move was abandoned: the target database on cluster premium was emptied again, the source on cluster standard does not serve yet: giving it back failed (connection terminated); fix the cause and run npm run move -- acme again",
    );
  });

  it("states exactly where an interrupted move stands, and the one command for each way out", () => {
    const row = {
      tenant: "acme",
      fromTier: "standard",
      toTier: "premium",
      database: "tenant_acme",
    } as const;
    assert.deepEqual(
      (["frozen", "copied", "closed", "aborting"] as const).map((phase) =>
        stateReport({ ...row, phase }, "tenants/acme.yaml"),
      ),
      [
        "state: its logins are NOLOGIN on cluster standard: tenant acme is served nowhere; the target database tenant_acme on cluster premium holds no verified copy yet.",
        "state: its logins are NOLOGIN on cluster standard: tenant acme is served nowhere; the target database tenant_acme on cluster premium holds the verified copy; the source still allows connections; tenants/acme.yaml is unchanged.",
        "state: the source database tenant_acme on cluster standard is closed (ALLOW_CONNECTIONS false, logins NOLOGIN) and the target on cluster premium holds the verified copy; tenant acme is served nowhere until tenants/acme.yaml says tier: premium and pulumi up runs.",
        "state: tenant acme serves from cluster standard again (logins restored); the target database on cluster premium may still hold a copy.",
      ],
    );
    assert.equal(
      resumeHint(row),
      "run npm run move -- acme to finish the move, or npm run move -- acme --abort to serve from cluster standard again",
    );
    assert.ok(model.id === "acme");
  });
});
