/**
 * Mocks that apply the program's resources to real PostgreSQL clusters, the way the provider
 * would: the integration harness runs the real program (infra/) under them.
 *
 * Follows @pulumi/postgresql 3.18.1, which wraps cyrilgdn/terraform-provider-postgresql v1.27.0
 * (postgresql/resource_postgresql_{role,database,grant,grant_role,default_privileges,extension}.go
 * and helpers.go). Each resource type issues the statements of the provider's create function,
 * in the same order and transactions, as the provider's connected user (the provisioning role of
 * the cluster its provider points at), including the temporary `GRANT <owner> TO current_user`
 * of withRolesGranted/grantRoleMembership when that user is not yet a member of the owner.
 *
 * A resource that already exists in the cluster (a second run) goes through the provider's
 * update function instead, as when the engine sees a diff; attributes the provider alters only
 * when they changed are compared with what the provider's read returns from the catalog. The
 * real engine leaves an unchanged resource alone, so this is the stricter re-apply. GrantRole has
 * no update: its state is the provider's read after create, and a ForceNew attribute that differs
 * from it (and is not in the resource's ignoreChanges) replaces it, create first, with the old
 * one deleted at the end of the run (`finishRun`), as the engine orders it. Reads that decide
 * nothing (the refresh after each write) are left out. Role passwords and random values are
 * remembered across runs, as the engine's state would.
 *
 * Random resources return real random values. Any other resource type fails the run: nothing is
 * silently skipped.
 */
import { randomBytes, randomInt } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { Client } from "pg";

/** Where a `postgresql` provider points. */
interface ProviderTarget {
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
}

type Inputs = Record<string, unknown>;

const PROVIDER_TYPE = "pulumi:providers:postgresql";

/** Double-quotes an identifier as lib/pq's QuoteIdentifier does (the provider's own quoting). */
function qi(name: string): string {
  const end = name.indexOf("\u0000");
  const cut = end === -1 ? name : name.slice(0, end);
  return `"${cut.replace(/"/g, '""')}"`;
}

/** A string literal as the provider's pqQuoteLiteral writes it (inside single quotes). */
function ql(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

const str = (v: unknown, fallback = ""): string =>
  v === undefined || v === null ? fallback : String(v);
const num = (v: unknown, fallback: number): number =>
  v === undefined || v === null || v === "" ? fallback : Number(v);
const bool = (v: unknown, fallback: boolean): boolean =>
  v === undefined || v === null ? fallback : v === true || v === "true";
const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/** One connection of the provider: queries are recorded (passwords redacted) before they run. */
class Session {
  constructor(
    public readonly client: Client,
    private readonly record: (sql: string) => void,
  ) {}

  async q<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
  ) {
    this.record(sql);
    return this.client.query<R>(sql, params);
  }

  async tx(fn: () => Promise<void>): Promise<void> {
    await this.q("BEGIN");
    try {
      await fn();
      await this.q("COMMIT");
    } catch (err) {
      await this.client.query("ROLLBACK").catch(() => undefined);
      throw err;
    }
  }
}

/** Open provider sessions kept at most, across all clusters and databases. */
const MAX_SESSIONS = 8;

export class ApplyingMocks implements pulumi.runtime.Mocks {
  /** Every statement sent to a cluster, in order, with password literals redacted. */
  public readonly statements: string[] = [];
  /** How many connections were opened to any cluster. */
  public connections = 0;
  /**
   * Each resource's `ignoreChanges`, by logical name: resource options do not reach the mocks,
   * so the harness records them with a stack transform. The bridge drops ignored attributes
   * from the provider's diff, replacements included.
   */
  public readonly ignoreChanges = new Map<string, string[]>();

  private readonly providers = new Map<string, ProviderTarget>();
  private readonly sessions = new Map<string, Session>();
  private readonly clients: Client[] = [];
  /** Values the engine would keep in its state between runs, by logical name. */
  private readonly state = new Map<string, Inputs>();
  /** Deletions of replaced resources, which the engine runs after every other step. */
  private readonly pendingDeletes: Array<() => Promise<void>> = [];
  /** Resources apply one at a time, in registration order (dependencies register first). */
  private queue: Promise<unknown> = Promise.resolve();

  newResource(args: pulumi.runtime.MockResourceArgs): Promise<{ id: string; state: Inputs }> {
    const next = this.queue.then(() => this.apply(args));
    this.queue = next.catch(() => undefined);
    return next;
  }

  call(args: pulumi.runtime.MockCallArgs): Inputs {
    throw new Error(`unexpected invoke ${args.token}: the program must not read from providers`);
  }

  /** Ends a run as the engine does: deletes the resources that were replaced. */
  async finishRun(): Promise<void> {
    await this.queue;
    for (const remove of this.pendingDeletes.splice(0)) await remove();
  }

  /** Closes the connections of the last run. */
  async close(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.end().catch(() => undefined)));
    this.sessions.clear();
  }

  private async apply(
    args: pulumi.runtime.MockResourceArgs,
  ): Promise<{ id: string; state: Inputs }> {
    if (!args.custom) return { id: "", state: {} };
    const inputs = unwrapSecrets(args.inputs) as Inputs;
    try {
      switch (args.type) {
        case PROVIDER_TYPE:
          return this.provider(args.name, inputs);
        case "random:index/randomPassword:RandomPassword":
          return this.remembered(args.name, () => ({ result: randomPassword(inputs) }), inputs);
        case "random:index/randomBytes:RandomBytes":
          return this.remembered(
            args.name,
            () => randomBytesResult(num(inputs.length, 32)),
            inputs,
          );
        case "postgresql:index/role:Role":
          return await this.role(args, inputs);
        case "postgresql:index/grantRole:GrantRole":
          return await this.grantRole(args, inputs);
        case "postgresql:index/database:Database":
          return await this.database(args, inputs);
        case "postgresql:index/grant:Grant":
          return await this.grant(args, inputs);
        case "postgresql:index/defaultPrivileges:DefaultPrivileges":
          return await this.defaultPrivileges(args, inputs);
        case "postgresql:index/extension:Extension":
          return await this.extension(args, inputs);
        default:
          throw new Error(`the applier does not know resource type ${args.type}`);
      }
    } catch (err) {
      throw new Error(`applying ${args.type} ${args.name}: ${(err as Error).message}`);
    }
  }

  private provider(name: string, inputs: Inputs): { id: string; state: Inputs } {
    const id = `provider-${name}`;
    this.providers.set(id, {
      host: str(inputs.host),
      port: num(inputs.port, 5432),
      database: str(inputs.database, "postgres"),
      username: str(inputs.username),
      password: str(inputs.password),
    });
    return { id, state: inputs };
  }

  private remembered(
    name: string,
    make: () => Inputs,
    inputs: Inputs,
  ): { id: string; state: Inputs } {
    const kept = this.state.get(name) ?? make();
    this.state.set(name, kept);
    return { id: `${name}-id`, state: { ...inputs, ...kept } };
  }

  private target(args: pulumi.runtime.MockResourceArgs): ProviderTarget {
    const ref = args.provider ?? "";
    const id = ref.slice(ref.lastIndexOf("::") + 2);
    const target = this.providers.get(id);
    if (target === undefined)
      throw new Error(`no postgresql provider registered for ${JSON.stringify(ref)}`);
    return target;
  }

  /** startTransaction(client, database): a connection to that database as the provider's user. */
  private async session(t: ProviderTarget, database = t.database): Promise<Session> {
    const key = `${t.host}:${t.port}/${database}`;
    const existing = this.sessions.get(key);
    if (existing !== undefined) {
      // Most recently used last, so the oldest session is the first one closed below.
      this.sessions.delete(key);
      this.sessions.set(key, existing);
      return existing;
    }
    // The provider pools connections per database up to maxConnections; a fleet of hundreds of
    // databases must not hold one connection each. Resources apply one at a time, so no session
    // is in use when another is opened.
    while (this.sessions.size >= MAX_SESSIONS) {
      const [oldestKey, oldest] = this.sessions.entries().next().value as [string, Session];
      this.sessions.delete(oldestKey);
      this.clients.splice(this.clients.indexOf(oldest.client), 1);
      await oldest.client.end().catch(() => undefined);
    }
    const client = new Client({
      host: t.host,
      port: t.port,
      user: t.username,
      password: t.password,
      database,
    });
    this.connections++;
    await client.connect();
    this.clients.push(client);
    const s = new Session(client, (sql) => this.statements.push(redact(sql)));
    this.sessions.set(key, s);
    return s;
  }

  // ---- helpers.go -------------------------------------------------------------------------

  private async isMemberOfRole(s: Session, role: string, member: string): Promise<boolean> {
    const col = await s.q(
      "SELECT 1 FROM information_schema.columns WHERE table_name='pg_auth_members' AND column_name = 'set_option'",
    );
    let query =
      "SELECT 1 FROM pg_auth_members WHERE pg_get_userbyid(roleid) = $1 AND pg_get_userbyid(member) = $2";
    if (col.rowCount !== 0) query += " AND set_option";
    return (await s.q(query, [role, member])).rowCount !== 0;
  }

  private async grantRoleMembership(s: Session, role: string, member: string): Promise<boolean> {
    if (member === role || (await this.isMemberOfRole(s, role, member))) return false;
    await s.q(`GRANT ${qi(role)} TO ${qi(member)}`);
    return true;
  }

  private async revokeRoleMembership(s: Session, role: string, member: string): Promise<boolean> {
    if (member === role || !(await this.isMemberOfRole(s, role, member))) return false;
    await s.q(`REVOKE ${qi(role)} FROM ${qi(member)}`);
    return true;
  }

  private async isSuperuser(s: Session, role: string): Promise<boolean> {
    const r = await s.q<{ rolsuper: boolean }>("SELECT rolsuper FROM pg_roles WHERE rolname = $1", [
      role,
    ]);
    if (r.rowCount === 0) throw new Error(`could not check if role ${role} is superuser: no rows`);
    return r.rows[0].rolsuper;
  }

  /** withRolesGranted: temporarily makes current_user a member of each role, inside the transaction. */
  private async withRolesGranted(
    s: Session,
    roles: string[],
    fn: () => Promise<void>,
  ): Promise<void> {
    if (roles.length === 0) return fn();
    const currentUser = (await s.q<{ current_user: string }>("SELECT CURRENT_USER")).rows[0]
      .current_user;
    if (await this.isSuperuser(s, currentUser)) return fn();
    const granted: string[] = [];
    const revoked: string[] = [];
    for (const role of roles) {
      if (await this.isSuperuser(s, role)) continue;
      if (await this.revokeRoleMembership(s, currentUser, role)) revoked.push(role);
      if (await this.grantRoleMembership(s, role, currentUser)) granted.push(role);
    }
    await fn();
    for (const role of granted) await this.revokeRoleMembership(s, role, currentUser);
    for (const role of revoked) {
      if ((await s.q("SELECT 1 FROM pg_roles WHERE rolname=$1", [role])).rowCount === 0) continue;
      await this.grantRoleMembership(s, currentUser, role);
    }
  }

  /** pgLockRole: an advisory lock on the role and its members for the transaction. */
  private async lockRole(s: Session, role: string): Promise<void> {
    await s.q("SET statement_timeout = 0");
    await s.q("SELECT pg_advisory_xact_lock(oid::bigint) FROM pg_roles WHERE rolname = $1", [role]);
    await s.q(
      "SELECT pg_advisory_xact_lock(member::bigint) FROM pg_auth_members JOIN pg_roles ON roleid = pg_roles.oid WHERE rolname = $1",
      [role],
    );
  }

  private async getDatabaseOwner(s: Session): Promise<string> {
    const r = await s.q<{ rolname: string }>(
      "SELECT rolname FROM pg_database JOIN pg_roles ON datdba = pg_roles.oid WHERE datname = current_database()",
    );
    return r.rows[0].rolname;
  }

  /** getRolesToGrant: owners of the schema and of its tables, pg_database_owner resolved (v1.21+). */
  private async rolesToGrant(s: Session, objectType: string, schema: string): Promise<string[]> {
    if (["database", "foreign_data_wrapper", "foreign_server"].includes(objectType)) return [];
    let owners: string[] = [];
    if (objectType !== "schema") {
      const t = await s.q<{ tableowner: string }>(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = $1",
        [schema],
      );
      owners = t.rows.map((r) => r.tableowner);
    }
    const so = await s.q<{ rolname: string }>(
      "SELECT rolname FROM pg_namespace JOIN pg_roles ON nspowner = pg_roles.oid WHERE nspname = $1",
      [schema],
    );
    if (so.rowCount === 0)
      throw new Error(`could not find schema '${schema}' while looking for owner`);
    if (!owners.includes(so.rows[0].rolname)) owners.push(so.rows[0].rolname);
    const resolved: string[] = [];
    for (const o of owners)
      resolved.push(o === "pg_database_owner" ? await this.getDatabaseOwner(s) : o);
    return resolved;
  }

  // ---- resources --------------------------------------------------------------------------

  private async role(args: pulumi.runtime.MockResourceArgs, inputs: Inputs) {
    const t = this.target(args);
    const s = await this.session(t);
    const name = str(inputs.name);
    const existing = await s.q<RoleRow>(ROLE_READ, [name]);
    const desired = {
      password: str(inputs.password),
      validUntil: str(inputs.validUntil, "infinity"),
      connectionLimit: num(inputs.connectionLimit, -1),
      superuser: bool(inputs.superuser, false),
      createDatabase: bool(inputs.createDatabase, false),
      createRole: bool(inputs.createRole, false),
      inherit: bool(inputs.inherit, true),
      login: bool(inputs.login, false),
      bypassRowLevelSecurity: bool(inputs.bypassRowLevelSecurity, false),
      replication: bool(inputs.replication, false),
      roles: list(inputs.roles).sort(),
      searchPaths: list(inputs.searchPaths),
      statementTimeout: num(inputs.statementTimeout, 0),
      idleInTransactionSessionTimeout: num(inputs.idleInTransactionSessionTimeout, 0),
    };
    const stateKey = `role:${args.name}`;

    await s.tx(async () => {
      if (existing.rowCount === 0) {
        // resourcePostgreSQLRoleCreate
        const opts: string[] = [];
        if (desired.password !== "") {
          opts.push(
            desired.password.toUpperCase() === "NULL"
              ? "PASSWORD NULL"
              : `ENCRYPTED PASSWORD ${ql(desired.password)}`,
          );
        }
        opts.push(
          `VALID UNTIL ${ql(desired.validUntil.toLowerCase() === "infinity" ? "infinity" : desired.validUntil)}`,
        );
        opts.push(`CONNECTION LIMIT ${desired.connectionLimit}`);
        opts.push(desired.superuser ? "SUPERUSER" : "NOSUPERUSER");
        opts.push(desired.createDatabase ? "CREATEDB" : "NOCREATEDB");
        opts.push(desired.createRole ? "CREATEROLE" : "NOCREATEROLE");
        opts.push(desired.inherit ? "INHERIT" : "NOINHERIT");
        opts.push(desired.login ? "LOGIN" : "NOLOGIN");
        opts.push(desired.bypassRowLevelSecurity ? "BYPASSRLS" : "NOBYPASSRLS");
        opts.push(desired.replication ? "REPLICATION" : "NOREPLICATION");
        await s.q(`CREATE ROLE ${qi(name)} WITH ${opts.join(" ")}`);
        for (const g of desired.roles) await s.q(`GRANT ${qi(g)} TO ${qi(name)}`);
        await this.alterSearchPath(s, name, desired.searchPaths);
        if (desired.statementTimeout !== 0)
          await this.setTimeout(s, name, "statement_timeout", desired.statementTimeout);
        if (desired.idleInTransactionSessionTimeout !== 0) {
          await this.setTimeout(
            s,
            name,
            "idle_in_transaction_session_timeout",
            desired.idleInTransactionSessionTimeout,
          );
        }
        return;
      }
      // resourcePostgreSQLRoleUpdate: each attribute is altered when it differs from the read.
      const cur = existing.rows[0];
      await this.lockRole(s, name);
      const previousPassword = str(this.state.get(stateKey)?.password);
      if (desired.password !== previousPassword)
        await s.q(`ALTER ROLE ${qi(name)} PASSWORD ${ql(desired.password)}`);
      const flag = async (want: boolean, have: boolean, on: string, off: string) => {
        if (want !== have) await s.q(`ALTER ROLE ${qi(name)} WITH ${want ? on : off}`);
      };
      await flag(desired.bypassRowLevelSecurity, cur.rolbypassrls, "BYPASSRLS", "NOBYPASSRLS");
      if (desired.connectionLimit !== cur.rolconnlimit) {
        await s.q(`ALTER ROLE ${qi(name)} CONNECTION LIMIT ${desired.connectionLimit}`);
      }
      await flag(desired.createDatabase, cur.rolcreatedb, "CREATEDB", "NOCREATEDB");
      await flag(desired.createRole, cur.rolcreaterole, "CREATEROLE", "NOCREATEROLE");
      await flag(desired.inherit, cur.rolinherit, "INHERIT", "NOINHERIT");
      await flag(desired.login, cur.rolcanlogin, "LOGIN", "NOLOGIN");
      await flag(desired.replication, cur.rolreplication, "REPLICATION", "NOREPLICATION");
      await flag(desired.superuser, cur.rolsuper, "SUPERUSER", "NOSUPERUSER");
      if (desired.validUntil !== cur.validuntil)
        await s.q(`ALTER ROLE ${qi(name)} VALID UNTIL ${ql(desired.validUntil)}`);
      // Every update revokes all memberships of the role, then grants `roles` again (#131).
      const granted = await s.q<{ pg_get_userbyid: string }>(
        `SELECT pg_get_userbyid(roleid)
		FROM pg_catalog.pg_auth_members members
		JOIN pg_catalog.pg_roles ON members.member = pg_roles.oid
		WHERE rolname = $1`,
        [name],
      );
      for (const g of granted.rows.map((r) => r.pg_get_userbyid))
        await s.q(`REVOKE ${qi(g)} FROM ${qi(name)}`);
      for (const g of desired.roles) await s.q(`GRANT ${qi(g)} TO ${qi(name)}`);
      await this.alterSearchPath(s, name, desired.searchPaths);
      if (desired.statementTimeout !== configInt(cur.rolconfig, "statement_timeout")) {
        await this.setTimeout(s, name, "statement_timeout", desired.statementTimeout);
      }
      if (
        desired.idleInTransactionSessionTimeout !==
        configInt(cur.rolconfig, "idle_in_transaction_session_timeout")
      ) {
        await this.setTimeout(
          s,
          name,
          "idle_in_transaction_session_timeout",
          desired.idleInTransactionSessionTimeout,
        );
      }
    });
    this.state.set(stateKey, { password: desired.password });
    return { id: name, state: { ...inputs, name } };
  }

  private async alterSearchPath(s: Session, role: string, paths: string[]): Promise<void> {
    const value = paths.length > 0 ? paths.map(qi).join(", ") : "DEFAULT";
    await s.q(`ALTER ROLE ${qi(role)} SET search_path TO ${value}`);
  }

  private async setTimeout(
    s: Session,
    role: string,
    setting: string,
    value: number,
  ): Promise<void> {
    await s.q(
      value !== 0
        ? `ALTER ROLE ${qi(role)} SET ${setting} TO ${value}`
        : `ALTER ROLE ${qi(role)} RESET ${setting}`,
    );
  }

  private async grantRole(args: pulumi.runtime.MockResourceArgs, inputs: Inputs) {
    const s = await this.session(this.target(args));
    const role = str(inputs.role);
    const grantRole = str(inputs.grantRole);
    const admin = bool(inputs.withAdminOption, false);
    const stateKey = `grantRole:${args.name}`;
    const create = async () => {
      await s.tx(async () => {
        await s.q(`REVOKE ${qi(grantRole)} FROM ${qi(role)}`);
        await s.q(`GRANT ${qi(grantRole)} TO ${qi(role)}${admin ? " WITH ADMIN OPTION" : ""}`);
      });
      // The read after create fills the state: the first membership row, whoever granted it.
      this.state.set(stateKey, { withAdminOption: await this.readGrantRole(s, role, grantRole) });
    };
    const previous = this.state.get(stateKey);
    if (previous === undefined) {
      await create();
    } else if (previous.withAdminOption !== admin && !this.ignored(args.name, "withAdminOption")) {
      // Every attribute forces a new resource; GrantRole has no DeleteBeforeReplace, so the
      // engine creates the replacement now and deletes the old resource at the end of the run.
      await create();
      this.pendingDeletes.push(async () => {
        await s.tx(async () => {
          await s.q(`REVOKE ${qi(grantRole)} FROM ${qi(role)}`);
        });
      });
    }
    return {
      id: `${role}_${grantRole}_${str(this.state.get(stateKey)?.withAdminOption)}`,
      state: inputs,
    };
  }

  /** readGrantRole: member and role only, no grantor (PostgreSQL 16+ may hold several rows). */
  private async readGrantRole(
    s: Session,
    role: string,
    grantRole: string,
  ): Promise<boolean | undefined> {
    const r = await s.q<{ admin_option: boolean }>(
      `SELECT pg_get_userbyid(member) as role, pg_get_userbyid(roleid) as grant_role, admin_option
FROM pg_auth_members WHERE pg_get_userbyid(member) = $1 AND pg_get_userbyid(roleid) = $2`,
      [role, grantRole],
    );
    return r.rowCount === 0 ? undefined : r.rows[0].admin_option;
  }

  /** Whether the resource's ignoreChanges (seen through a stack transform) covers this input. */
  private ignored(name: string, input: string): boolean {
    return this.ignoreChanges.get(name)?.includes(input) ?? false;
  }

  private async database(args: pulumi.runtime.MockResourceArgs, inputs: Inputs) {
    const t = this.target(args);
    const s = await this.session(t);
    const name = str(inputs.name);
    const owner = str(inputs.owner);
    const connLimit = num(inputs.connectionLimit, -1);
    const allowConns = bool(inputs.allowConnections, true);
    const isTemplate = bool(inputs.isTemplate, false);
    const read = await s.q<{
      owner: string;
      datconnlimit: number;
      datallowconn: boolean;
      datistemplate: boolean;
    }>(
      "SELECT pg_catalog.pg_get_userbyid(d.datdba) AS owner, d.datconnlimit, d.datallowconn, d.datistemplate FROM pg_database d WHERE datname=$1",
      [name],
    );
    if (read.rowCount === 0) {
      // createDatabase: not in a transaction (CREATE DATABASE cannot run in one).
      const ownerGranted =
        owner !== "" ? await this.grantRoleMembership(s, owner, t.username) : false;
      const parts = [
        `CREATE DATABASE ${qi(name)}`,
        ` OWNER ${qi(owner !== "" ? owner : t.username)}`,
      ];
      const template = str(inputs.template);
      parts.push(
        template.toUpperCase() === "DEFAULT"
          ? " TEMPLATE DEFAULT"
          : template !== ""
            ? ` TEMPLATE ${qi(template)}`
            : " TEMPLATE template0",
      );
      const encoding = str(inputs.encoding);
      parts.push(encoding === "" ? " ENCODING 'UTF8'" : ` ENCODING ${ql(encoding)} `);
      if (inputs.lcCollate !== undefined) parts.push(` LC_COLLATE ${ql(str(inputs.lcCollate))} `);
      if (inputs.lcCtype !== undefined) parts.push(` LC_CTYPE ${ql(str(inputs.lcCtype))} `);
      parts.push(
        ` ALLOW_CONNECTIONS ${allowConns}`,
        ` CONNECTION LIMIT ${connLimit}`,
        ` IS_TEMPLATE ${isTemplate}`,
      );
      try {
        await s.q(parts.join(""));
      } finally {
        if (ownerGranted) await this.revokeRoleMembership(s, owner, t.username);
      }
    } else {
      // resourcePostgreSQLDatabaseUpdate: only what differs from the read is altered.
      const cur = read.rows[0];
      if (owner !== "" && owner !== cur.owner) {
        const ownerGranted = await this.grantRoleMembership(s, owner, t.username);
        try {
          await s.q(`ALTER DATABASE ${qi(name)} OWNER TO ${qi(owner)}`);
        } finally {
          if (ownerGranted) await this.revokeRoleMembership(s, owner, t.username);
        }
      }
      if (connLimit !== cur.datconnlimit)
        await s.q(`ALTER DATABASE ${qi(name)} CONNECTION LIMIT = ${connLimit}`);
      if (allowConns !== cur.datallowconn)
        await s.q(`ALTER DATABASE ${qi(name)} ALLOW_CONNECTIONS ${allowConns}`);
      if (isTemplate !== cur.datistemplate)
        await s.q(`ALTER DATABASE ${qi(name)} IS_TEMPLATE ${isTemplate}`);
    }
    return { id: name, state: { ...inputs, name } };
  }

  private async grant(args: pulumi.runtime.MockResourceArgs, inputs: Inputs) {
    const t = this.target(args);
    const database = str(inputs.database);
    const role = str(inputs.role);
    const schema = str(inputs.schema);
    const objectType = str(inputs.objectType);
    const privileges = list(inputs.privileges).sort();
    if (
      list(inputs.objects).length > 0 ||
      list(inputs.columns).length > 0 ||
      bool(inputs.withGrantOption, false)
    ) {
      throw new Error("objects, columns and withGrantOption are not modelled by the applier");
    }
    if (schema === "" && objectType !== "database") {
      throw new Error("parameter 'schema' is mandatory for postgresql_grant resource");
    }
    const s = await this.session(t, database);
    const on =
      objectType === "database"
        ? `DATABASE ${qi(database)}`
        : objectType === "schema"
          ? `SCHEMA ${qi(schema)}`
          : `ALL ${objectType.toUpperCase()}S IN SCHEMA ${qi(schema)}`;
    // resourcePostgreSQLGrantCreateOrUpdate: the same statements for a create and an update.
    await s.tx(async () => {
      await this.lockRole(s, role);
      if (objectType === "database") {
        await s.q("SET statement_timeout = 0");
        await s.q("SELECT pg_advisory_xact_lock(oid::bigint) FROM pg_database WHERE datname = $1", [
          database,
        ]);
      }
      const owners = await this.rolesToGrant(s, objectType, schema);
      await this.withRolesGranted(s, owners, async () => {
        // pgLockSchema, then revoke everything so that reducing privileges works.
        await s.q(
          "SELECT pg_advisory_xact_lock(oid::bigint) FROM pg_namespace WHERE nspname = $1",
          [schema],
        );
        await s.q(`REVOKE ALL PRIVILEGES ON ${on} FROM ${qi(role)}`);
        if (privileges.length > 0)
          await s.q(`GRANT ${privileges.join(",")} ON ${on} TO ${qi(role)}`);
      });
    });
    const id = [role, database, ...(objectType === "database" ? [] : [schema]), objectType].join(
      "_",
    );
    return { id, state: inputs };
  }

  private async defaultPrivileges(args: pulumi.runtime.MockResourceArgs, inputs: Inputs) {
    const t = this.target(args);
    const database = str(inputs.database);
    const owner = str(inputs.owner);
    const role = str(inputs.role);
    const schema = str(inputs.schema);
    const objectType = str(inputs.objectType);
    const privileges = list(inputs.privileges).sort();
    const s = await this.session(t, database);
    const inSchema = schema !== "" ? `IN SCHEMA ${qi(schema)}` : "";
    const what = `${objectType.toUpperCase()}S`;
    // Create and update are the same function.
    await s.tx(async () => {
      await this.lockRole(s, owner);
      await this.withRolesGranted(s, [owner], async () => {
        await s.q(
          `ALTER DEFAULT PRIVILEGES FOR ROLE ${qi(owner)} ${inSchema} REVOKE ALL ON ${what} FROM ${qi(role)}`,
        );
        if (privileges.length > 0) {
          await s.q(
            `ALTER DEFAULT PRIVILEGES FOR ROLE ${qi(owner)} ${inSchema} GRANT ${privileges.join(",")} ON ${what} TO ${qi(role)}`,
          );
        }
      });
    });
    const id = [role, database, schema !== "" ? schema : "noschema", owner, objectType].join("_");
    return { id, state: inputs };
  }

  private async extension(args: pulumi.runtime.MockResourceArgs, inputs: Inputs) {
    const t = this.target(args);
    const name = str(inputs.name);
    const database = str(inputs.database, t.database);
    const s = await this.session(t, database);
    const read = await s.q(
      "SELECT e.extname, n.nspname, e.extversion FROM pg_catalog.pg_extension e, pg_catalog.pg_namespace n WHERE n.oid = e.extnamespace AND e.extname = $1",
      [name],
    );
    if (read.rowCount === 0) {
      let sql = `CREATE EXTENSION IF NOT EXISTS ${qi(name)}`;
      if (inputs.schema !== undefined) sql += ` SCHEMA ${qi(str(inputs.schema))}`;
      if (inputs.version !== undefined) sql += ` VERSION ${qi(str(inputs.version))}`;
      if (bool(inputs.createCascade, false)) sql += " CASCADE";
      await s.tx(async () => {
        await s.q(sql);
      });
    }
    // An existing extension with no schema or version asked for has nothing to update.
    return { id: `${database}.${name}`, state: inputs };
  }
}

interface RoleRow extends Record<string, unknown> {
  rolsuper: boolean;
  rolinherit: boolean;
  rolcreaterole: boolean;
  rolcreatedb: boolean;
  rolcanlogin: boolean;
  rolconnlimit: number;
  validuntil: string;
  rolconfig: string[] | null;
  rolreplication: boolean;
  rolbypassrls: boolean;
}

/** resourcePostgreSQLRoleReadImpl's columns. */
const ROLE_READ = `SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit,
  COALESCE(rolvaliduntil::TEXT, 'infinity') AS validuntil, rolconfig, rolreplication, rolbypassrls
  FROM pg_catalog.pg_roles WHERE rolname=$1`;

/** Secret inputs reach the mocks wrapped in the runtime's secret signature; the SQL needs the value. */
function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value === null || typeof value !== "object") return value;
  const obj = value as Record<string, unknown>;
  if (obj[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig)
    return unwrapSecrets(obj.value);
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, unwrapSecrets(v)]));
}

function configInt(config: string[] | null, key: string): number {
  const entry = (config ?? []).find((c) => c.startsWith(`${key}=`));
  return entry === undefined ? 0 : Number(entry.slice(key.length + 1));
}

function redact(sql: string): string {
  return sql.replace(/PASSWORD '(?:[^']|'')*'/g, "PASSWORD '<redacted>'");
}

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const UPPER = LOWER.toUpperCase();
const DIGITS = "0123456789";
const SPECIAL = "!@#$%&*()-_=+[]{}<>:?";

/** A random password honouring random.RandomPassword's length and minimum counts. */
function randomPassword(inputs: Inputs): string {
  const length = num(inputs.length, 16);
  const classes: Array<[string, boolean, number]> = [
    [LOWER, bool(inputs.lower, true), num(inputs.minLower, 0)],
    [UPPER, bool(inputs.upper, true), num(inputs.minUpper, 0)],
    [DIGITS, bool(inputs.numeric, true), num(inputs.minNumeric, 0)],
    [SPECIAL, bool(inputs.special, true), num(inputs.minSpecial, 0)],
  ];
  const alphabet = classes
    .filter(([, on]) => on)
    .map(([chars]) => chars)
    .join("");
  const chars: string[] = [];
  for (const [set, on, min] of classes)
    for (let i = 0; on && i < min; i++) chars.push(set[randomInt(set.length)]);
  while (chars.length < length) chars.push(alphabet[randomInt(alphabet.length)]);
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j], chars[i]];
  }
  return chars.join("");
}

function randomBytesResult(length: number): Inputs {
  const bytes = randomBytes(length);
  return { base64: bytes.toString("base64"), hex: bytes.toString("hex") };
}
