import { PolicyPack } from "@pulumi/policy";
import { PACK_NAME, policies } from "./pack";

// The pack's only side effect: `pulumi preview|up --policy-pack policy` runs this file, which
// starts the analyzer. Nothing else may construct the PolicyPack (it serves gRPC and exits the
// process on errors); the offline check and the tests import ./pack instead.
new PolicyPack(PACK_NAME, {
  description:
    "Tenant isolation rules of pg-tenants: roles, memberships, grants, databases, clusters and keys.",
  enforcementLevel: "mandatory",
  policies,
});
