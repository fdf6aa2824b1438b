import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import type { Client } from "pg";
import {
  CredentialsOutput,
  LocalOutputsCredentials,
  TenantConnector,
  TenantDirectory,
  TlsTrust,
} from "../../client";
import { Fleet, provisionFleet } from "../../harness/fleet";

/**
 * sslmode, for real: the harness cluster gets a server certificate signed by a throwaway CA
 * (made with the openssl command line), and each mode is checked from the server's side
 * (`pg_stat_ssl`) or by the refusal it must produce.
 */

const OPENSSL = spawnSync("openssl", ["version"], { encoding: "utf8" }).status === 0;
let fleet: Fleet;
let certs: string;
let ca: string;
const connectors: TenantConnector[] = [];

function openssl(args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: certs, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed:\n${r.stderr}`);
}

/** A server certificate signed by the CA, for the subject alternative name given. */
function serverCert(name: string, san: string): void {
  fs.writeFileSync(path.join(certs, `${name}.ext`), `subjectAltName=${san}\n`);
  openssl([
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${name}`,
  ]);
  openssl([
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-out",
    `${name}.crt`,
    "-extfile",
    `${name}.ext`,
  ]);
}

/** Installs a certificate in the data directory, owned by the server's OS user, and reloads. */
async function useCertificate(name: string): Promise<void> {
  const c = fleet.clusters.standard;
  const owner = fs.statSync(c.dataDir);
  for (const ext of ["crt", "key"]) {
    const target = path.join(c.dataDir, `${name}.${ext}`);
    fs.copyFileSync(path.join(certs, `${name}.${ext}`), target);
    fs.chmodSync(target, 0o600);
    fs.chownSync(target, owner.uid, owner.gid);
  }
  const admin = await c.superuserClient();
  try {
    await admin.query(`ALTER SYSTEM SET ssl_cert_file = ${admin.escapeLiteral(`${name}.crt`)}`);
    await admin.query(`ALTER SYSTEM SET ssl_key_file = ${admin.escapeLiteral(`${name}.key`)}`);
    await admin.query("ALTER SYSTEM SET ssl = on");
    await admin.query("SELECT pg_reload_conf()");
  } finally {
    await admin.end();
  }
  for (let i = 0; i < 200; i++) {
    const check = await c.superuserClient();
    try {
      const r = await check.query<{ ssl: string; cert: string }>(
        "SELECT current_setting('ssl') AS ssl, current_setting('ssl_cert_file') AS cert",
      );
      if (r.rows[0].ssl === "on" && r.rows[0].cert === `${name}.crt`) return;
    } finally {
      await check.end();
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`the server did not load certificate ${name}`);
}

beforeAll(async () => {
  if (!OPENSSL) return;
  fleet = await provisionFleet({
    tiers: ["standard"],
    tenants: [{ id: "acme", tier: "standard" }],
  });
  certs = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-client-tls-"));
  openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=pg-tenants test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  serverCert("by-ip", "IP:127.0.0.1");
  serverCert("by-name", "DNS:db.pgtenants.test");
  ca = fs.readFileSync(path.join(certs, "ca.crt"), "utf8");
});

afterAll(async () => {
  await Promise.all(connectors.map((c) => c.close()));
  await fleet?.stop();
  if (certs !== undefined) fs.rmSync(certs, { recursive: true, force: true });
});

function connector(sslmode: string, tls?: TlsTrust): TenantConnector {
  const outputs = JSON.parse(JSON.stringify(fleet.outputs.credentials)) as CredentialsOutput;
  outputs.acme.rw.sslmode = sslmode;
  const tc = new TenantConnector({
    directory: new TenantDirectory({ tenants: fleet.outputs.tenants }),
    credentials: new LocalOutputsCredentials(outputs),
    connectTimeoutMs: 5000,
    ...(tls !== undefined ? { tls } : {}),
  });
  connectors.push(tc);
  return tc;
}

/**
 * Whether the server sees this session encrypted, and as whom. pg_stat_ssl is closed to tenant
 * logins (containment): the session gives its pid, the superuser reads its row.
 */
async function session(tc: TenantConnector): Promise<{ ssl: boolean; user: string }> {
  return tc.withTenant("acme", "rw", async (c) => {
    const me = await (c as Client).query<{ pid: number; user: string }>(
      "SELECT pg_backend_pid() AS pid, current_user AS user",
    );
    const su = await fleet.clusters.standard.superuserClient();
    try {
      const r = await su.query<{ ssl: boolean }>("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", [
        me.rows[0].pid,
      ]);
      return { ssl: r.rows[0].ssl, user: me.rows[0].user };
    } finally {
      await su.end();
    }
  });
}

// Without the openssl command there is no certificate to serve: the suite is reported as skipped.
(OPENSSL ? describe : describe.skip)(
  "client: sslmode from the credentials, against a server with TLS",
  () => {
    it("disable: plain text even though the server offers TLS", async () => {
      await useCertificate("by-ip");
      assert.deepEqual(await session(connector("disable")), { ssl: false, user: "tenant_acme_rw" });
    });

    it("require: TLS without checking the certificate (signed by an unknown CA)", async () => {
      await useCertificate("by-ip");
      assert.deepEqual(await session(connector("require")), { ssl: true, user: "tenant_acme_rw" });
    });

    it("verify-full: TLS when the CA is trusted and the certificate names the host; refused otherwise", async () => {
      await useCertificate("by-ip");
      assert.deepEqual(await session(connector("verify-full", { ca })), {
        ssl: true,
        user: "tenant_acme_rw",
      });
      await assert.rejects(session(connector("verify-full")), {
        code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
        message: "unable to verify the first certificate",
      });
    });

    it("verify-ca accepts a trusted certificate for another name; verify-full refuses it", async () => {
      await useCertificate("by-name");
      assert.deepEqual(await session(connector("verify-ca", { ca })), {
        ssl: true,
        user: "tenant_acme_rw",
      });
      await assert.rejects(session(connector("verify-ca")), {
        code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
        message: "unable to verify the first certificate",
      });
      await assert.rejects(session(connector("verify-full", { ca })), {
        code: "ERR_TLS_CERT_ALTNAME_INVALID",
        message:
          "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: ",
      });
    });

    it("refuses prefer, which could silently fall back to plain text", async () => {
      await assert.rejects(session(connector("prefer")), {
        message:
          'unsupported sslmode "prefer": use one of disable, require, verify-ca, verify-full',
      });
    });
  },
);
