import * as path from "path";
import { loadClusterPasswords, loadStackConfig } from "./config";
import { loadManifest } from "./manifest";
import { reservedNames } from "./model";
import { declareFleet } from "./program";

/**
 * The composition root, and the only module with side effects: read the stack config, load and
 * validate the tenants manifest (before any resource is declared), declare the fleet, export.
 */
export = async () => {
  const cfg = loadStackConfig();
  const passwords = loadClusterPasswords(cfg);
  const tenants = loadManifest(path.resolve(cfg.tenantsDir), {
    namePrefix: cfg.namePrefix,
    tiers: Object.keys(cfg.clusters),
    reservedNames: reservedNames(cfg),
  });
  return declareFleet(cfg, tenants, passwords);
};
