import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { loginRoleSecretPasswords } from "../../policy/policies/login-role-secret-passwords";
import { stackViolations } from "./run";
import { link, stackResource, tenantFixtures } from "./util";

const acme = tenantFixtures("acme");
const globex = tenantFixtures("globex");

/** acme's four roles, its logins' passwords linked to its own generators. */
function compliant() {
  const roles = {
    group: stackResource(acme.group()),
    rw: stackResource(acme.rw()),
    ro: stackResource(acme.ro()),
  };
  const passwords = {
    rw: stackResource(acme.password("rw")),
    ro: stackResource(acme.password("ro")),
  };
  link(roles.rw, "password", passwords.rw);
  link(roles.ro, "password", passwords.ro);
  return { roles, passwords, all: [roles.group, roles.rw, roles.ro, passwords.rw, passwords.ro] };
}

describe("login-role-secret-passwords", () => {
  it("passes logins whose passwords come from their own tenant's RandomPassword", async () => {
    assert.deepEqual(await stackViolations(loginRoleSecretPasswords, compliant().all), []);
  });

  it("reports a literal password (no generator behind it)", async () => {
    const s = compliant();
    s.roles.ro.propertyDependencies = {};
    assert.deepEqual(await stackViolations(loginRoleSecretPasswords, s.all), [
      {
        message:
          "Login role tenant_acme_ro must take its password from a secret generator (random:index/randomPassword:RandomPassword), never a literal.",
        urn: s.roles.ro.urn,
      },
    ]);
  });

  it("reports a password taken from another tenant's generator", async () => {
    const s = compliant();
    const foreign = stackResource(globex.password("rw"));
    s.roles.rw.propertyDependencies = {};
    link(s.roles.rw, "password", foreign);
    assert.deepEqual(await stackViolations(loginRoleSecretPasswords, [...s.all, foreign]), [
      {
        message:
          "Login role tenant_acme_rw must take its password from its own tenant's generator, not from globex-rw-password (tenant globex).",
        urn: s.roles.rw.urn,
      },
    ]);
  });

  it("accepts the generator types named in the config", async () => {
    const s = compliant();
    const message =
      "Login role tenant_acme_rw must take its password from a secret generator (example:index:Vault), never a literal.";
    const found = await stackViolations(loginRoleSecretPasswords, s.all, {
      passwordSources: ["example:index:Vault"],
    });
    assert.deepEqual(
      found.map((v) => v.message),
      [message, message.replace("_rw", "_ro")],
    );
  });
});
