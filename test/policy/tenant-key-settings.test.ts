import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { tenantKeySettings } from "../../policy/policies/tenant-key-settings";
import { resourceViolations } from "./run";
import { tenantFixtures, withProps } from "./util";

const acme = tenantFixtures("acme");

describe("tenant-key-settings", () => {
  it("passes a rotating key with a 30-day deletion window", async () => {
    assert.deepEqual(await resourceViolations(tenantKeySettings, acme.kmsKey()), []);
    // AWS's default window is 30 days.
    assert.deepEqual(
      await resourceViolations(
        tenantKeySettings,
        withProps(acme.kmsKey(), { deletionWindowInDays: undefined }),
      ),
      [],
    );
  });

  it("reports rotation off", async () => {
    assert.deepEqual(
      await resourceViolations(
        tenantKeySettings,
        withProps(acme.kmsKey(), { enableKeyRotation: false }),
      ),
      ["Tenant KMS key acme-key-kms must have rotation on (enableKeyRotation: true)."],
    );
  });

  it("reports rotation unset", async () => {
    assert.deepEqual(
      await resourceViolations(
        tenantKeySettings,
        withProps(acme.kmsKey(), { enableKeyRotation: undefined }),
      ),
      ["Tenant KMS key acme-key-kms must have rotation on (enableKeyRotation: true)."],
    );
  });

  it("reports a deletion window below the configured minimum", async () => {
    const key = withProps(acme.kmsKey(), { deletionWindowInDays: 7 });
    assert.deepEqual(await resourceViolations(tenantKeySettings, key), [
      "Tenant KMS key acme-key-kms must keep a deletion window of at least 30 days (has 7).",
    ]);
    assert.deepEqual(
      await resourceViolations(tenantKeySettings, key, { minDeletionWindowDays: 7 }),
      [],
    );
    assert.deepEqual(
      await resourceViolations(tenantKeySettings, key, { minDeletionWindowDays: 8 }),
      ["Tenant KMS key acme-key-kms must keep a deletion window of at least 8 days (has 7)."],
    );
  });
});
