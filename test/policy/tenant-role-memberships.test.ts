import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { tenantRoleMemberships } from "../../policy/policies/tenant-role-memberships";
import { resourceViolations } from "./run";
import { tenantFixtures, withProps } from "./util";

const acme = tenantFixtures("acme");

describe("tenant-role-memberships", () => {
  it("passes a compliant tenant's roles and the provisioning role's membership of the owner", async () => {
    for (const f of [acme.group(), acme.owner(), acme.rw(), acme.ro(), acme.provisionerOwner()]) {
      assert.deepEqual(await resourceViolations(tenantRoleMemberships, f), []);
    }
  });

  it("passes the capabilities a tier may give: advisory locks to both logins, large objects to rw", async () => {
    const rw = withProps(acme.rw(), {
      roles: ["tenant_acme", "pgtenants_advisory_locks", "pgtenants_large_objects"],
    });
    const ro = withProps(acme.ro(), { roles: ["tenant_acme", "pgtenants_advisory_locks"] });
    assert.deepEqual(await resourceViolations(tenantRoleMemberships, rw), []);
    assert.deepEqual(await resourceViolations(tenantRoleMemberships, ro), []);
  });

  const roleCases: [
    change: string,
    fixture: () => ReturnType<typeof acme.rw>,
    messages: string[],
  ][] = [
    [
      "a login also a member of another tenant's group",
      () => withProps(acme.rw(), { roles: ["tenant_acme", "tenant_globex"] }),
      ["Role tenant_acme_rw must not be granted tenant_globex, a role of tenant globex."],
    ],
    [
      "a login also a member of its tenant's owner",
      () => withProps(acme.rw(), { roles: ["tenant_acme", "tenant_acme_owner"] }),
      [
        "Login role tenant_acme_rw must be a member of its tenant's group tenant_acme and of no role but pgtenants_advisory_locks or pgtenants_large_objects (also a member of tenant_acme_owner).",
      ],
    ],
    [
      "a login also a member of a built-in role",
      () => withProps(acme.ro(), { roles: ["tenant_acme", "pg_read_all_data"] }),
      [
        "Login role tenant_acme_ro must be a member of its tenant's group tenant_acme and of no role but pgtenants_advisory_locks (also a member of pg_read_all_data).",
      ],
    ],
    [
      "the ro login given the large-object capability (rw only)",
      () => withProps(acme.ro(), { roles: ["tenant_acme", "pgtenants_large_objects"] }),
      [
        "Login role tenant_acme_ro must be a member of its tenant's group tenant_acme and of no role but pgtenants_advisory_locks (also a member of pgtenants_large_objects).",
      ],
    ],
    [
      "the owner given a capability",
      () => withProps(acme.owner(), { roles: ["pgtenants_advisory_locks"] }),
      [
        "Role tenant_acme_owner must not be a member of any role (is a member of pgtenants_advisory_locks).",
      ],
    ],
    [
      "a login that is not a member of its group",
      () => withProps(acme.ro(), { roles: [] }),
      ["Login role tenant_acme_ro must be a member of its tenant's group tenant_acme."],
    ],
    [
      "the group made a member of a role",
      () => withProps(acme.group(), { roles: ["tenant_acme_owner"] }),
      ["Role tenant_acme must not be a member of any role (is a member of tenant_acme_owner)."],
    ],
    [
      "the owner made a member of another tenant's owner",
      () => withProps(acme.owner(), { roles: ["tenant_globex_owner"] }),
      ["Role tenant_acme_owner must not be granted tenant_globex_owner, a role of tenant globex."],
    ],
  ];
  for (const [change, fixture, messages] of roleCases) {
    it(`reports ${change}`, async () => {
      assert.deepEqual(await resourceViolations(tenantRoleMemberships, fixture()), messages);
    });
  }

  const grantCases: [change: string, props: Record<string, unknown>, messages: string[]][] = [
    [
      "a GrantRole of another tenant's role to a tenant role",
      { role: "tenant_acme_rw", grantRole: "tenant_globex" },
      ["Role tenant_acme_rw must not be granted tenant_globex, a role of tenant globex."],
    ],
    [
      "a GrantRole between one tenant's roles",
      { role: "tenant_acme_rw", grantRole: "tenant_acme" },
      [
        "Memberships among tenant acme's roles must be declared on the role (roles), not by a GrantRole of tenant_acme to tenant_acme_rw.",
      ],
    ],
    [
      "a GrantRole of a built-in role to a tenant role",
      { role: "tenant_acme_ro", grantRole: "pg_read_all_data" },
      [
        "Tenant role tenant_acme_ro must not be granted pg_read_all_data: tenant roles are members of their own group only.",
      ],
    ],
    [
      "a tenant role granted to a role other than the provisioning role",
      { role: "reporting" },
      [
        "Tenant role tenant_acme_owner must be granted only to the cluster's provisioning role (pgtenants_provisioner), not to reporting.",
      ],
    ],
    [
      "a tenant role granted WITH ADMIN OPTION",
      { withAdminOption: true },
      [
        "Tenant role tenant_acme_owner must not be granted WITH ADMIN OPTION (to pgtenants_provisioner).",
      ],
    ],
  ];
  for (const [change, props, messages] of grantCases) {
    it(`reports ${change}`, async () => {
      assert.deepEqual(
        await resourceViolations(tenantRoleMemberships, withProps(acme.provisionerOwner(), props)),
        messages,
      );
    });
  }

  it("reads tenant names with the configured prefix", async () => {
    const role = withProps(acme.rw(), { name: "t_acme_rw", roles: ["t_acme", "t_globex"] });
    assert.deepEqual(await resourceViolations(tenantRoleMemberships, role, { namePrefix: "t_" }), [
      "Role t_acme_rw must not be granted t_globex, a role of tenant globex.",
    ]);
    // Under the default prefix these are no tenant's names: nothing to check.
    assert.deepEqual(await resourceViolations(tenantRoleMemberships, role), []);
  });
});
