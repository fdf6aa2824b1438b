import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { parseStackConfig } from "../../infra/config";
import { buildTenantModel } from "../../infra/model";
import { purgeNextSteps, retentionEnd } from "../../tools/offboard";
import { readStackFile } from "../../tools/stack";
import { localConfig, tenant } from "../../harness/localStack";

/** What npm run offboard prints: the steps after a purge, and the end of the retention period. */

describe("operator steps offboard prints", () => {
  const cfg = localConfig();
  const model = buildTenantModel(tenant(), cfg);

  it("schedules the KMS key deletion with the stack's window on aws-kms stacks", () => {
    const prod = parseStackConfig("production", readStackFile("production").raw);
    const lines = purgeNextSteps(prod, buildTenantModel(tenant(), prod));
    assert.ok(
      lines.includes(
        "       aws kms schedule-key-deletion --key-id alias/pg-tenants/production/acme --pending-window-in-days 30",
      ),
    );
    assert.ok(
      lines.includes(
        "       aws secretsmanager delete-secret --secret-id pg-tenants/production/acme/rw --recovery-window-in-days 7",
      ),
    );
    assert.ok(!purgeNextSteps(cfg, model).some((l) => l.includes("aws kms")));
    assert.ok(
      purgeNextSteps(cfg, model).includes(
        "       npm run local -- pulumi state delete --stack local --force --target-dependents 'urn:pulumi:local::pg-tenants::pg-tenants:index:Tenant::acme'",
      ),
    );
  });

  it("counts retention in calendar days from offboardedAt", () => {
    assert.equal(retentionEnd("2026-11-01", 30), "2026-12-01");
    assert.equal(retentionEnd("2026-02-27", 2), "2026-03-01");
    assert.equal(retentionEnd("2026-11-01", 0), "2026-11-01");
  });
});
