"""event store and api: an append, and a keyed command's append, as one server-side call (PostgreSQL only)

`es_append` is the store's append of one stream (the lock, the version check, releases and
claims, the insert) and `api_keyed_append` is a command sent with an Idempotency-Key (the lock,
the key's lookup, `es_append`, the key's row), each called as one statement outside any
transaction: one round trip, committed when it ends, where a keyed command's pipelined statements took two
round trips and seven statements (docs/architecture.md, "The store's hot paths").
Every statement in a plpgsql function reads a snapshot of its own, so what is read after the
lock sees every append committed before it. SQLite has no server-side functions: nothing there.

Revision ID: append_functions
Revises: api_idempotency_keys
"""
from alembic import op

revision = "append_functions"
down_revision = "api_idempotency_keys"
branch_labels = None
depends_on = None

# the parameters both functions take for the append, in this order (es_app.store.postgres._call_params)
APPEND_PARAMS = """
    p_lock bigint, p_stream text, p_category text, p_mode text, p_expected int,
    p_event_ids text[], p_types text[], p_schema_versions int[], p_data text[], p_metadata text[],
    p_recorded timestamptz, p_claim_scopes text[], p_claim_values text[],
    p_release_scopes text[], p_release_values text[]"""

ES_APPEND = f"""
CREATE OR REPLACE FUNCTION es_append({APPEND_PARAMS},
    OUT outcome text, OUT version int, OUT positions bigint[])
LANGUAGE plpgsql AS $$
DECLARE
  current_version int;
  holder text;
BEGIN
  IF p_lock IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(p_lock);
  END IF;
  SELECT coalesce(max(e.version), 0) INTO current_version FROM events e WHERE e.stream_id = p_stream;
  IF NOT (p_mode = 'any' OR (p_mode = 'no_stream' AND current_version = 0)
          OR (p_mode = 'stream_exists' AND current_version > 0)
          OR (p_mode = 'exact' AND current_version = p_expected)) THEN
    outcome := 'mismatch';
    version := current_version;
    RETURN;
  END IF;
  FOR i IN 1 .. coalesce(array_length(p_release_scopes, 1), 0) LOOP
    DELETE FROM unique_claims c
      WHERE c.scope = p_release_scopes[i] AND c.value = p_release_values[i] AND c.owner = p_stream;
  END LOOP;
  FOR i IN 1 .. coalesce(array_length(p_claim_scopes, 1), 0) LOOP
    INSERT INTO unique_claims (scope, value, owner) VALUES (p_claim_scopes[i], p_claim_values[i], p_stream)
      ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT c.owner INTO holder FROM unique_claims c
        WHERE c.scope = p_claim_scopes[i] AND c.value = p_claim_values[i];
      IF holder IS DISTINCT FROM p_stream THEN  -- the whole call is undone; the caller raises ClaimTaken
        RAISE EXCEPTION USING ERRCODE = 'ES409', MESSAGE = holder,
          DETAIL = p_claim_scopes[i], HINT = p_claim_values[i];
      END IF;
    END IF;
  END LOOP;
  WITH landed AS (
    INSERT INTO events (stream_id, category, version, event_id, event_type, schema_version, data, metadata,
                        recorded_at)
    SELECT p_stream, p_category, current_version + u.n, u.event_id, u.event_type, u.schema_version,
           u.data::jsonb, u.metadata::jsonb, p_recorded
    FROM unnest(p_event_ids, p_types, p_schema_versions, p_data, p_metadata) WITH ORDINALITY
         AS u(event_id, event_type, schema_version, data, metadata, n)
    ORDER BY u.n
    RETURNING events.version, events.position)
  SELECT max(landed.version), array_agg(landed.position ORDER BY landed.position) INTO version, positions
  FROM landed;
  outcome := 'appended';
END $$;
"""

API_KEYED_APPEND = f"""
CREATE OR REPLACE FUNCTION api_keyed_append(
    p_key text, p_request_hash text, p_status int, p_location_prefix text, p_created timestamptz,
    {APPEND_PARAMS},
    OUT outcome text, OUT version int, OUT positions bigint[],
    OUT status_code int, OUT body jsonb, OUT headers jsonb, OUT request_hash text)
LANGUAGE plpgsql AS $$
DECLARE
  last_position bigint;
BEGIN
  IF p_lock IS NOT NULL THEN  -- before the key's lookup: two requests with one key are serialised here
    PERFORM pg_advisory_xact_lock(p_lock);
  END IF;
  SELECT k.status_code, k.body, k.headers, k.request_hash INTO status_code, body, headers, request_hash
    FROM api_idempotency_keys k WHERE k.key = p_key;
  IF FOUND THEN
    outcome := 'replay';
    RETURN;
  END IF;
  SELECT a.outcome, a.version, a.positions INTO outcome, version, positions
    FROM es_append(p_lock, p_stream, p_category, p_mode, p_expected, p_event_ids, p_types, p_schema_versions,
                   p_data, p_metadata, p_recorded, p_claim_scopes, p_claim_values, p_release_scopes,
                   p_release_values) AS a;
  IF outcome <> 'appended' THEN
    RETURN;
  END IF;
  -- the first answer, as es_app.api.idempotency.Answer makes it (tests hold the two equal)
  last_position := positions[array_upper(positions, 1)];
  status_code := p_status;
  body := jsonb_build_object('id', p_stream, 'version', version, 'position', last_position);
  headers := jsonb_build_object('ETag', '"' || version || '"');
  IF p_location_prefix IS NOT NULL THEN
    headers := headers || jsonb_build_object('Location', p_location_prefix || p_stream);
  END IF;
  request_hash := p_request_hash;
  INSERT INTO api_idempotency_keys (key, request_hash, status_code, body, headers, stream_id, position, created_at)
    VALUES (p_key, p_request_hash, p_status, body, headers, p_stream, last_position, p_created);
END $$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(ES_APPEND)
        op.execute(API_KEYED_APPEND)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS api_keyed_append")
        op.execute("DROP FUNCTION IF EXISTS es_append")
