import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { tenantDatabaseSettings } from "../../policy/policies/tenant-database-settings";
import { resourceViolations } from "./run";
import { tenantFixtures, withProps } from "./util";

const acme = tenantFixtures("acme");

describe("tenant-database-settings", () => {
  it("passes a protected, named database cloned from the approved template", async () => {
    assert.deepEqual(await resourceViolations(tenantDatabaseSettings, acme.database()), []);
  });

  it("reports another template", async () => {
    assert.deepEqual(
      await resourceViolations(
        tenantDatabaseSettings,
        withProps(acme.database(), { template: "template1" }),
      ),
      [
        "Tenant database tenant_acme must be cloned from an approved template (customer_template_v1), not template1.",
      ],
    );
  });

  it("reports no template (PostgreSQL's template0)", async () => {
    assert.deepEqual(
      await resourceViolations(
        tenantDatabaseSettings,
        withProps(acme.database(), { template: undefined }),
      ),
      [
        "Tenant database tenant_acme must be cloned from an approved template (customer_template_v1), not the default template0.",
      ],
    );
  });

  it("takes the approved templates from the config", async () => {
    const v2 = withProps(acme.database(), { template: "customer_template_v2" });
    assert.deepEqual(
      await resourceViolations(tenantDatabaseSettings, v2, {
        approvedTemplates: ["customer_template_v1", "customer_template_v2"],
      }),
      [],
    );
  });

  it("reports a database without protect", async () => {
    assert.deepEqual(
      await resourceViolations(tenantDatabaseSettings, { ...acme.database(), protect: false }),
      [
        "Tenant database tenant_acme must be protected (protect: true) so that no plan can drop it.",
      ],
    );
  });

  it("reports an autonamed database", async () => {
    assert.deepEqual(
      await resourceViolations(
        tenantDatabaseSettings,
        withProps(acme.database(), { name: undefined }),
      ),
      [
        "Tenant database acme@standard-db must set its name explicitly (an autonamed database gets a random suffix).",
      ],
    );
  });
});
