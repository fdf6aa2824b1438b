import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { describe, it } from "@jest/globals";
import Ajv2020 from "ajv/dist/2020";
import { parse } from "yaml";
import { renderSchema, SCHEMA_PATH } from "../../tools/schema";

describe("tenants/tenant.schema.json", () => {
  it("is generated from the manifest's schema (run npm run schema after changing it)", () => {
    assert.equal(fs.readFileSync(SCHEMA_PATH, "utf8"), renderSchema());
  });

  const validate = new Ajv2020({ strict: false }).compile(
    JSON.parse(fs.readFileSync(SCHEMA_PATH, "utf8")),
  );

  for (const file of fs.readdirSync("tenants").filter((f) => f.endsWith(".yaml"))) {
    it(`accepts the sample ${file}`, () => {
      const ok = validate(parse(fs.readFileSync(path.join("tenants", file), "utf8")));
      assert.equal(ok, true, JSON.stringify(validate.errors));
    });
  }

  const bad: Array<[string, unknown]> = [
    ["an unknown field", { id: "acme", displayName: "A", tier: "standard", owner: "bob" }],
    ["an id with a quote", { id: "acme'", displayName: "A", tier: "standard" }],
    ["a missing tier", { id: "acme", displayName: "A" }],
    [
      "a connection limit of 0",
      { id: "acme", displayName: "A", tier: "standard", limits: { connectionLimit: 0 } },
    ],
  ];
  for (const [what, doc] of bad) {
    it(`lets editors flag ${what}`, () => assert.equal(validate(doc), false));
  }
});
