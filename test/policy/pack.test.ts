import { afterAll, beforeAll, describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "child_process";
import * as path from "path";
import * as grpc from "@grpc/grpc-js";
import { Empty } from "google-protobuf/google/protobuf/empty_pb";
import { Struct } from "google-protobuf/google/protobuf/struct_pb";
import { AnalyzerClient } from "@pulumi/pulumi/proto/analyzer_grpc_pb";
import {
  AnalyzeRequest,
  AnalyzeResponse,
  AnalyzerInfo,
  AnalyzerResourceOptions,
} from "@pulumi/pulumi/proto/analyzer_pb";
import { policies } from "../../policy/pack";

/**
 * The pack as `pulumi preview --policy-pack policy` runs it: the SDK's policy-pack host loads
 * policy/index.ts (type-checking it with ts-node, as the CLI does), which starts the analyzer;
 * this test then speaks the analyzer protocol to it as the engine would. Nothing here constructs
 * the PolicyPack in this process.
 */

const POLICY_DIR = path.resolve(__dirname, "..", "..", "policy");
const HOST = require.resolve("@pulumi/pulumi/cmd/run-policy-pack", { paths: [POLICY_DIR] });

let pack: ChildProcess;
let client: AnalyzerClient;
let stderr = "";

beforeAll(async () => {
  // The host's first argument is the engine's address; the analyzer serves without calling it.
  pack = spawn(process.execPath, [HOST, "127.0.0.1:1", "."], {
    cwd: POLICY_DIR,
    stdio: ["ignore", "pipe", "pipe"],
  });
  pack.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<string>((resolve, reject) => {
    let out = "";
    pack.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^(\d+)\n/.exec(out);
      if (m) resolve(m[1]);
    });
    pack.on("exit", (code) =>
      reject(new Error(`the pack exited (${code}) before serving:\n${stderr}`)),
    );
    setTimeout(
      () => reject(new Error(`the pack did not serve within 120 s:\n${stderr}`)),
      120_000,
    ).unref();
  });
  client = new AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(() => {
  client?.close();
  pack?.kill();
});

function info(): Promise<AnalyzerInfo> {
  return new Promise((resolve, reject) =>
    client.getAnalyzerInfo(new Empty(), (err, res) => (err ? reject(err) : resolve(res))),
  );
}

function analyze(
  type: string,
  name: string,
  props: Record<string, unknown>,
  protect = false,
): Promise<AnalyzeResponse> {
  const req = new AnalyzeRequest();
  req.setType(type);
  req.setName(name);
  req.setUrn(
    `urn:pulumi:production::pg-tenants::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement$${type}::${name}`,
  );
  req.setProperties(Struct.fromJavaScript(props as Record<string, never>));
  const options = new AnalyzerResourceOptions();
  options.setProtect(protect);
  req.setOptions(options);
  return new Promise((resolve, reject) =>
    client.analyze(req, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

const diagnostics = (res: AnalyzeResponse) =>
  res.getDiagnosticsList().map((d) => `${d.getPolicyname()}: ${d.getMessage()}`);
/** How the engine shows a violation: the policy's description, then the message. */
const shown = (name: string, message: string) =>
  `${name}: ${policies.find((p) => p.name === name)?.description}\n${message}`;

describe("the policy pack under the Pulumi policy host", () => {
  it("loads and announces every policy of policy/pack.ts", async () => {
    const analyzer = await info();
    assert.equal(analyzer.getName(), "pg-tenants");
    assert.deepEqual(
      analyzer.getPoliciesList().map((p) => p.getName()),
      policies.map((p) => p.name),
    );
  });

  it("passes a compliant tenant role and reports a superuser one, as the engine receives it", async () => {
    const role = {
      name: "tenant_acme_rw",
      login: true,
      superuser: false,
      connectionLimit: 20,
      password: "generated",
      roles: ["tenant_acme"],
    };
    assert.deepEqual(
      diagnostics(await analyze("postgresql:index/role:Role", "acme@standard-role-rw", role)),
      [],
    );
    assert.deepEqual(
      diagnostics(
        await analyze("postgresql:index/role:Role", "acme@standard-role-rw", {
          ...role,
          superuser: true,
        }),
      ),
      [
        shown(
          "tenant-role-attributes",
          "Tenant role tenant_acme_rw must not be SUPERUSER (superuser must be false).",
        ),
      ],
    );
  });

  it("sees resource options: an unprotected database is reported", async () => {
    const db = {
      name: "tenant_acme",
      owner: "tenant_acme_owner",
      template: "customer_template_v1",
    };
    assert.deepEqual(
      diagnostics(
        await analyze("postgresql:index/database:Database", "acme@standard-db", db, true),
      ),
      [],
    );
    assert.deepEqual(
      diagnostics(
        await analyze("postgresql:index/database:Database", "acme@standard-db", db, false),
      ),
      [
        shown(
          "tenant-database-settings",
          "Tenant database tenant_acme must be protected (protect: true) so that no plan can drop it.",
        ),
      ],
    );
  });
});
