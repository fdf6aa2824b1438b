-- customer_template_v1: the schema every tenant database starts from.
-- Applied by the cluster bootstrap inside the template database, which is then marked
-- IS_TEMPLATE true and ALLOW_CONNECTIONS false. Objects belong to pg_database_owner, so in
-- every clone they belong to that clone's owner (tenant_<id>_owner) without a REASSIGN.

REVOKE CREATE ON SCHEMA public FROM PUBLIC;

CREATE SCHEMA app AUTHORIZATION pg_database_owner;

CREATE TABLE app.customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE app.customers OWNER TO pg_database_owner;

CREATE TABLE app.invoices (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES app.customers (id),
  amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
  -- Sensitive fields are stored encrypted with the tenant's data key (pgp_sym_encrypt).
  note_encrypted bytea,
  issued_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE app.invoices OWNER TO pg_database_owner;

CREATE TABLE app.events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE app.events OWNER TO pg_database_owner;
