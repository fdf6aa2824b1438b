import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { chromium } from "playwright-core";
import type { Advice } from "../../tools/usage/advice";
import { renderUsageHtml } from "../../tools/usage/html";
import type { UsageReport } from "../../tools/usage/report";
import { main } from "../../tools/usage";
import { captureIo, writeStackFile } from "../../harness/dayTwo";
import { connectAs, Fleet, FLEET_STACK, freePort, provisionFleet } from "../../harness/fleet";

/**
 * `npm run usage` over a load this test generates on clusters the program provisioned: the
 * heavy writer ranks first with the exact rows it wrote, `--advise` names it with the move to
 * declare, the idle premium tenant could go down, the Prometheus textfile carries the same
 * figures, and the HTML report renders in a real headless Chromium with a bar per tenant.
 */

const CHROMIUM = "/usr/bin/chromium";
const INTERVAL = 12;

let fleet: Fleet;
let report: UsageReport & { advice: Advice[] };
let metrics: string;
let stderr: string[];

/** The known load: heavy writes and spills a sort to disk, light only reads, calm does nothing. */
async function generateLoad(): Promise<void> {
  const heavy = await connectAs(fleet.outputs.credentials.heavy.rw);
  // A second session of heavy's, held open for a while: the sampled peak must see it.
  const held = await connectAs(fleet.outputs.credentials.heavy.ro);
  const light = await connectAs(fleet.outputs.credentials.light.ro);
  try {
    await heavy.query(
      "INSERT INTO app.events (kind, payload) SELECT 'k' || g % 7, jsonb_build_object('n', g) FROM generate_series(1, 5000) g",
    );
    await heavy.query(
      "UPDATE app.events SET kind = 'updated' WHERE id IN (SELECT id FROM app.events ORDER BY id LIMIT 1000)",
    );
    await heavy.query(
      "DELETE FROM app.events WHERE id IN (SELECT id FROM app.events ORDER BY id DESC LIMIT 500)",
    );
    await heavy.query("SET work_mem = '64kB'");
    await heavy.query(
      "SELECT count(*) FROM (SELECT g FROM generate_series(1, 400000) g ORDER BY g DESC) s",
    );
    for (let i = 0; i < 20; i++) await light.query("SELECT count(*) FROM app.events");
    await new Promise((r) => setTimeout(r, 2500));
  } finally {
    // Ending the sessions publishes their counters at once (idle ones wait up to 10 s).
    await Promise.all([heavy.end(), held.end(), light.end()]);
  }
}

beforeAll(async () => {
  fleet = await provisionFleet({
    tiers: ["standard", "premium"],
    tenants: [
      { id: "heavy", tier: "standard" },
      { id: "light", tier: "standard" },
      { id: "calm", tier: "premium" },
    ],
  });
  // light's own rows to read, written before the interval.
  const seed = await connectAs(fleet.outputs.credentials.light.rw);
  await seed.query("INSERT INTO app.events (kind) SELECT 'seed' FROM generate_series(1, 1000)");
  await seed.end();
  // Thresholds a small test load crosses: any statement time counts.
  const clusters = fleet.config.clusters as Record<string, Record<string, unknown>>;
  writeStackFile(fleet, {
    clusters: Object.fromEntries(
      Object.entries(clusters).map(([tier, c]) => [
        tier,
        { ...c, advice: { maxLoadShare: 0.5, minLoadMsPerSecond: 1, maxSizeMb: 1024 } },
      ]),
    ),
  });
  const metricsFile = path.join(fleet.root, "metrics", "pg-tenants.prom");
  const io = captureIo(fleet);
  let load: Promise<void> | undefined;
  const err = io.err;
  io.err = (line) => {
    err(line);
    // The opening sample is taken: start the load the interval measures.
    if (line.startsWith("sampling ")) load = generateLoad();
  };
  const code = await main(
    [
      "--stack",
      FLEET_STACK,
      "--interval",
      `${INTERVAL}s`,
      "--format",
      "json",
      "--advise",
      "--metrics",
      metricsFile,
    ],
    io,
  );
  await load;
  stderr = io.errors;
  expect(code).toBe(0);
  report = JSON.parse(io.lines.join("\n"));
  metrics = fs.readFileSync(metricsFile, "utf8");
});
afterAll(async () => {
  await fleet?.stop();
});

const row = (id: string) => report.tenants.find((t) => t.tenant === id)!;

describe("npm run usage over a known load", () => {
  it("says what it samples, for how long, on stderr only", () => {
    expect(stderr).toEqual([`sampling 2 cluster(s) of stack ${FLEET_STACK} for ${INTERVAL} s`]);
    expect(report.intervalSeconds).toBeGreaterThanOrEqual(INTERVAL);
    expect(report.connectionSamples).toBeGreaterThanOrEqual(INTERVAL - 2);
  });

  it("ranks the heavy writer first, with the rows it wrote, its temp files and its growth", () => {
    expect(report.tenants.map((t) => t.tenant)).toEqual(["heavy", "light", "calm"]);
    const heavy = row("heavy");
    expect(heavy.interval).toMatchObject({
      inserted: 5000,
      updated: 1000,
      deleted: 500,
      rowsWritten: 6500,
    });
    // The rate is over the interval (its length rounded to 0.1 s in the report).
    expect(Math.abs(heavy.perSecond.rowsWritten * report.intervalSeconds - 6500)).toBeLessThan(65);
    expect(heavy.interval.tempFiles).toBeGreaterThanOrEqual(1);
    expect(heavy.interval.tempBytes).toBeGreaterThan(1024 * 1024);
    expect(heavy.interval.xacts).toBeGreaterThanOrEqual(5);
    expect(heavy.growthBytes).toBeGreaterThan(0);
    expect(heavy.loadShare).toBeGreaterThan(0.5);
    expect(heavy.connections.peak).toBeGreaterThanOrEqual(2);
    expect(heavy.connections.limit).toBe(40);
    expect(heavy.connections.now).toBe(0);
    expect(heavy.sinceReset.rowsWritten).toBeGreaterThanOrEqual(6500);
  });

  it("shows the reader's reads and the idle tenant's nothing", () => {
    const light = row("light");
    expect(light.interval.rowsWritten).toBe(0);
    expect(light.interval.xacts).toBeGreaterThanOrEqual(20);
    // 20 scans of its 1,000 rows.
    expect(light.interval.rowsRead).toBeGreaterThanOrEqual(20 * 1000);
    expect(row("calm").interval).toMatchObject({ xacts: 0, rowsWritten: 0, rowsRead: 0 });
    expect(row("calm").loadShare).toBe(0);
  });

  it("totals each cluster against its connection budget", () => {
    const standard = report.clusters.find((c) => c.tier === "standard")!;
    expect(standard.tenants).toBe(2);
    expect(standard.connections).toMatchObject({
      maxConnections: 100,
      tenantSlots: 92,
      tenantLimits: 80,
      pooler: null,
    });
    expect(standard.connections.peak).toBeGreaterThanOrEqual(3);
    expect(standard.perSecond.rowsWritten).toBeCloseTo(row("heavy").perSecond.rowsWritten, 1);
  });

  it("advises the heavy writer up with its evidence and the exact move, and the idle premium tenant down", () => {
    expect(report.advice.map((a) => [a.tenant, a.action, a.declare])).toEqual([
      ["heavy", "up", "move: { to: premium }"],
      ["calm", "down", "move: { to: standard }"],
    ]);
    expect(report.advice[0].evidence[0]).toMatch(
      /^load: \d+(\.\d)?% of cluster standard's statement time \(\d+(\.\d+)? ms\/s; threshold 50%\)$/,
    );
  });

  it("writes the same figures as a Prometheus textfile, labelled tenant, tier and state", () => {
    const heavy = row("heavy");
    expect(metrics).toContain(
      `pgtenants_tenant_rows_written_per_second{tenant="heavy",tier="standard",state="active"} ${heavy.perSecond.rowsWritten}\n`,
    );
    expect(metrics).toContain(
      `pgtenants_tenant_connection_limit{tenant="calm",tier="premium",state="active"} 40\n`,
    );
    expect(metrics).toContain(
      'pgtenants_tenant_advice{tenant="heavy",tier="standard",action="up",to="premium"} 1',
    );
  });
});

describe("npm run usage -- --serve", () => {
  it("serves Prometheus metrics at /metrics once the first interval is sampled, until SIGTERM", async () => {
    const port = await freePort();
    const io = captureIo(fleet);
    const served = main(["--stack", FLEET_STACK, "--interval", "10s", "--serve", String(port)], io);
    const url = `http://127.0.0.1:${port}`;
    const get = async (p: string) => {
      for (let i = 0; i < 100; i++) {
        try {
          return await fetch(url + p);
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      throw new Error("the metrics server never listened");
    };
    expect((await get("/metrics")).status).toBe(503);
    expect((await get("/other")).status).toBe(404);
    let body = "";
    for (let i = 0; i < 60 && body === ""; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const r = await get("/metrics");
      if (r.status === 200) body = await r.text();
    }
    process.emit("SIGTERM");
    expect(await served).toBe(0);
    expect(body).toContain(
      'pgtenants_tenant_connection_limit{tenant="heavy",tier="standard",state="active"} 40',
    );
    expect(body).toContain("pgtenants_usage_interval_seconds 10");
    expect(io.lines[0]).toBe(
      `serving usage metrics on http://127.0.0.1:${port}/metrics, a new interval every 10 s`,
    );
    expect(io.lines[1]).toMatch(/: 3 tenant\(s\) over 1\d(\.\d)? s; busiest /);
    // Closed with the command.
    await expect(fetch(`${url}/metrics`)).rejects.toThrow();
  });
});

describe("the HTML report in a real headless Chromium", () => {
  it("renders with a bar per tenant in each chart, loads nothing, and is screenshotted", async () => {
    expect(fs.existsSync(CHROMIUM)).toBe(true);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-usage-html-"));
    const file = path.join(dir, "usage.html");
    fs.writeFileSync(file, renderUsageHtml(report, report.advice));
    const profile = path.join(dir, "profile");
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 900, height: 700 },
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const requests: string[] = [];
      context.on("request", (r) => requests.push(r.url()));
      const page = await context.newPage();
      await page.goto(`file://${file}`);
      const bars = await page.$$eval("svg.chart g[data-tenant]", (gs) =>
        gs.map((g) => ({
          chart: g.closest("svg")?.getAttribute("data-chart"),
          tier: g.closest("section")?.getAttribute("data-tier"),
          tenant: g.getAttribute("data-tenant"),
          width: Number(g.querySelectorAll("rect")[1]?.getAttribute("width")),
        })),
      );
      const shot = path.join(dir, "usage.png");
      await page.screenshot({ path: shot, fullPage: true });
      expect(requests).toEqual([`file://${file}`]);
      expect(bars.map((b) => `${b.tier} ${b.chart} ${b.tenant}`).sort()).toEqual(
        [
          ...["load", "connections", "size"].flatMap((chart) => [
            `standard ${chart} heavy`,
            `standard ${chart} light`,
            `premium ${chart} calm`,
          ]),
        ].sort(),
      );
      // heavy's load bar is the widest of its cluster; calm's is empty.
      const width = (chart: string, tenant: string) =>
        bars.find((b) => b.chart === chart && b.tenant === tenant)!.width;
      expect(width("load", "heavy")).toBeGreaterThan(width("load", "light"));
      expect(width("load", "calm")).toBe(0);
      const png = fs.readFileSync(shot);
      expect(png.subarray(1, 4).toString()).toBe("PNG");
      expect(png.length).toBeGreaterThan(10_000);
    } finally {
      await context.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
