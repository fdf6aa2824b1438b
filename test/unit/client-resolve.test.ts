import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { domainToASCII } from "node:url";
import {
  normalizeHost,
  statesFromManifest,
  TenantDirectory,
  TenantResolutionError,
  TenantSummaryView,
} from "../../client";

function summary(id: string, cluster = "standard"): TenantSummaryView {
  return {
    displayName: id,
    cluster,
    host: "127.0.0.1",
    port: 55432,
    database: `tenant_${id}`,
    roles: {
      group: `tenant_${id}`,
      owner: `tenant_${id}_owner`,
      rw: `tenant_${id}_rw`,
      ro: `tenant_${id}_ro`,
    },
    keyProvider: "local",
  };
}

const directory = new TenantDirectory({
  tenants: {
    acme: summary("acme"),
    globex: summary("globex", "premium"),
    initech: summary("initech"),
    big_co: summary("big_co"),
  },
  states: {
    acme: { state: "active" },
    globex: { state: "active" },
    initech: { state: "offboarded" },
    big_co: { state: "active" },
    hooli: { state: "active" },
  },
  hostSuffix: "example.com",
});

/** Asserts a resolution failure: its reason and its exact message. */
function fails(fn: () => unknown, reason: string, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(
      err instanceof TenantResolutionError,
      `expected TenantResolutionError, got ${String(err)}`,
    );
    assert.equal(err.reason, reason);
    assert.equal(err.message, message);
    return true;
  });
}

describe("client: resolving a request to its tenant", () => {
  it("resolves a known customer id to its database and logins", () => {
    assert.deepEqual(
      { ...directory.byId("acme"), logins: { ...directory.byId("acme").logins } },
      {
        id: "acme",
        cluster: "standard",
        host: "127.0.0.1",
        port: 55432,
        database: "tenant_acme",
        logins: { rw: "tenant_acme_rw", ro: "tenant_acme_ro" },
      },
    );
    assert.equal(directory.resolve({ customerId: "globex" }).database, "tenant_globex");
    assert.equal(directory.byId("big_co").logins.ro, "tenant_big_co_ro");
  });

  const idCases: Array<[string, unknown, string, string]> = [
    ["an unknown id", "acmex", "unknown-tenant", 'customer id "acmex" names no tenant'],
    [
      "an offboarded tenant",
      "initech",
      "not-active",
      'customer id "initech": tenant initech is offboarded; only active tenants resolve',
    ],
    [
      "a tenant in the manifest but not in the outputs",
      "hooli",
      "unknown-tenant",
      'customer id "hooli": tenant hooli is not provisioned in this stack',
    ],
    [
      "upper case (ids are exact)",
      "ACME",
      "invalid-input",
      'customer id "ACME" is not a tenant id (^[a-z][a-z0-9_]*$)',
    ],
    [
      "surrounding space",
      " acme",
      "invalid-input",
      'customer id " acme" is not a tenant id (^[a-z][a-z0-9_]*$)',
    ],
    ["an empty id", "", "invalid-input", 'customer id "" is not a tenant id (^[a-z][a-z0-9_]*$)'],
    [
      "a prototype key",
      "__proto__",
      "invalid-input",
      'customer id "__proto__" is not a tenant id (^[a-z][a-z0-9_]*$)',
    ],
    [
      "an inherited key",
      "constructor",
      "unknown-tenant",
      'customer id "constructor" names no tenant',
    ],
    ["a number", 42, "invalid-input", 'customer id "42" is not a tenant id (^[a-z][a-z0-9_]*$)'],
  ];
  for (const [name, input, reason, message] of idCases) {
    it(`refuses ${name}`, () => fails(() => directory.byId(input), reason, message));
  }

  const hostCases: Array<[string, string, string]> = [
    ["acme.example.com", "acme", "the exact host"],
    ["ACME.Example.COM", "acme", "upper case"],
    ["acme.example.com.", "acme", "one trailing dot"],
    ["acme.example.com:8443", "acme", "a port"],
    ["Big_Co.example.com.:443", "big_co", "an id with an underscore, case, dot and port"],
  ];
  for (const [host, id, name] of hostCases) {
    it(`resolves a vanity host with ${name}: ${host}`, () => {
      assert.equal(directory.byHost(host).id, id);
      assert.equal(directory.resolve({ host }).id, id);
    });
  }

  const cyrillicAcme = domainToASCII("\u0430cme.example.com");
  const badHosts: Array<[string, string, string, string]> = [
    [
      "a look-alike suffix",
      "acme.example.com.evil.test",
      "invalid-input",
      'host "acme.example.com.evil.test" is not a tenant host: it must be <tenant>.example.com',
    ],
    [
      "a suffix glued to the label",
      "acmeexample.com",
      "invalid-input",
      'host "acmeexample.com" is not a tenant host: it must be <tenant>.example.com',
    ],
    [
      "the bare suffix",
      "example.com",
      "invalid-input",
      'host "example.com" is not a tenant host: it must be <tenant>.example.com',
    ],
    [
      "a nested subdomain",
      "x.acme.example.com",
      "invalid-input",
      'host "x.acme.example.com" is not a tenant host: only one label may precede example.com',
    ],
    [
      "two trailing dots",
      "acme.example.com..",
      "invalid-input",
      'host "acme.example.com.." has an empty label',
    ],
    [
      "a leading dot",
      ".acme.example.com",
      "invalid-input",
      'host ".acme.example.com" has an empty label',
    ],
    [
      "a Unicode look-alike (Cyrillic a)",
      "\u0430cme.example.com",
      "invalid-input",
      'host "\u0430cme.example.com" must be ASCII without spaces; international names arrive in their punycode (xn--) form',
    ],
    [
      "the punycode of the Cyrillic look-alike",
      cyrillicAcme,
      "unknown-tenant",
      `host "${cyrillicAcme}" names no tenant`,
    ],
    [
      "a punycode label that would decode to ASCII",
      "xn--acme-.example.com",
      "invalid-input",
      'host "xn--acme-.example.com" may only contain letters, digits, - and _ in dot-separated labels',
    ],
    [
      "an unknown tenant",
      "hooli.example.com",
      "unknown-tenant",
      'host "hooli.example.com": tenant hooli is not provisioned in this stack',
    ],
    [
      "an offboarded tenant",
      "initech.example.com",
      "not-active",
      'host "initech.example.com": tenant initech is offboarded; only active tenants resolve',
    ],
    [
      "a label that is no tenant id",
      "9acme.example.com",
      "unknown-tenant",
      'host "9acme.example.com" names no tenant',
    ],
    [
      "a space",
      "acme.example.com ",
      "invalid-input",
      'host "acme.example.com " must be ASCII without spaces; international names arrive in their punycode (xn--) form',
    ],
    [
      "an out-of-range port",
      "acme.example.com:70000",
      "invalid-input",
      'host "acme.example.com:70000" has a port above 65535',
    ],
    [
      "a bracketed IP",
      "[::1]:80",
      "invalid-input",
      'host "[::1]:80" may only contain letters, digits, - and _ in dot-separated labels',
    ],
    [
      "user info",
      "acme.example.com@evil.test",
      "invalid-input",
      'host "acme.example.com@evil.test" may only contain letters, digits, - and _ in dot-separated labels',
    ],
  ];
  for (const [name, host, reason, message] of badHosts) {
    it(`refuses ${name}`, () => fails(() => directory.byHost(host), reason, message));
  }

  it("computes the look-alike's punycode form (it must not equal the real label)", () => {
    assert.match(cyrillicAcme, /^xn--/);
    assert.notEqual(cyrillicAcme, "acme.example.com");
  });

  it("asks for exactly one of customerId and host", () => {
    fails(() => directory.resolve({}), "invalid-input", "give exactly one of customerId or host");
    fails(
      () => directory.resolve({ customerId: "acme", host: "acme.example.com" }),
      "invalid-input",
      "give exactly one of customerId or host",
    );
  });

  it("refuses host resolution when no suffix is configured", () => {
    const noSuffix = new TenantDirectory({ tenants: { acme: summary("acme") } });
    assert.throws(() => noSuffix.byHost("acme.example.com"), {
      message: "cannot resolve hosts: no hostSuffix was configured for the tenant directory",
    });
    assert.equal(noSuffix.byId("acme").id, "acme");
  });

  it("accepts several suffixes, normalised like hosts", () => {
    const d = new TenantDirectory({
      tenants: { acme: summary("acme") },
      hostSuffix: [".Example.com.", "example.net"],
    });
    assert.equal(d.byHost("acme.example.net").id, "acme");
    assert.equal(d.byHost("acme.example.com").id, "acme");
    fails(
      () => d.byHost("acme.example.org"),
      "invalid-input",
      'host "acme.example.org" is not a tenant host: it must be <tenant>.example.com or <tenant>.example.net',
    );
  });

  it("without a states view, a summary's own state decides (default active)", () => {
    const d = new TenantDirectory({
      tenants: { acme: summary("acme"), initech: { ...summary("initech"), state: "offboarded" } },
    });
    assert.deepEqual(d.activeIds(), ["acme"]);
    fails(
      () => d.byId("initech"),
      "not-active",
      'customer id "initech": tenant initech is offboarded; only active tenants resolve',
    );
  });

  it("with a states view, a tenant missing from it does not resolve", () => {
    const d = new TenantDirectory({
      tenants: { acme: summary("acme"), globex: summary("globex") },
      states: { acme: { state: "active" } },
    });
    fails(
      () => d.byId("globex"),
      "unknown-tenant",
      'customer id "globex": tenant globex is not in the manifest',
    );
  });

  it("update() takes effect for later lookups: offboarding stops resolution", () => {
    const d = new TenantDirectory({
      tenants: { acme: summary("acme") },
      states: { acme: { state: "active" } },
      hostSuffix: "example.com",
    });
    assert.equal(d.byHost("acme.example.com").id, "acme");
    d.update({ tenants: { acme: summary("acme") }, states: { acme: { state: "offboarded" } } });
    fails(
      () => d.byHost("acme.example.com"),
      "not-active",
      'host "acme.example.com": tenant acme is offboarded; only active tenants resolve',
    );
    assert.deepEqual(d.activeIds(), []);
  });

  it("takes the states view from validated tenant files", () => {
    const states = statesFromManifest([
      { id: "acme", state: "active" },
      { id: "initech", state: "offboarded" },
    ]);
    assert.deepEqual(states, { acme: { state: "active" }, initech: { state: "offboarded" } });
    const d = new TenantDirectory({
      tenants: { acme: summary("acme"), initech: summary("initech") },
      states,
    });
    assert.deepEqual(d.activeIds(), ["acme"]);
  });

  it("rejects a malformed tenants output with the missing fields", () => {
    assert.throws(
      () =>
        new TenantDirectory({
          tenants: {
            acme: { cluster: "standard", host: "h", port: 1 } as unknown as TenantSummaryView,
          },
        }),
      { message: "tenants output: tenant acme lacks database, roles, roles.rw, roles.ro" },
    );
    assert.throws(() => new TenantDirectory({ tenants: { "Acme-1": summary("acme") } }), {
      message: 'tenants output: "Acme-1" is not a tenant id (^[a-z][a-z0-9_]*$)',
    });
  });

  it("normalizes hosts exactly", () => {
    assert.equal(normalizeHost("ACME.example.com.:80"), "acme.example.com");
    assert.equal(normalizeHost("xn--80ak6aa92e.example.com"), "xn--80ak6aa92e.example.com");
    assert.throws(() => normalizeHost("a".repeat(64) + ".example.com"), {
      message: /has a label longer than 63 characters$/,
    });
    assert.throws(() => normalizeHost(undefined), {
      message: 'host "undefined" must be a non-empty string',
    });
  });
});
