"""The analytics file's fixed schema: the history tables the pipeline appends to and the
views analysts query (the README shows how). Applied by every writer (store.py), so a file
made by an older version gains new columns and views at the next write.
"""

# Tables with a fixed schema: history that analysts query and the pipeline appends to.
SCHEMA = """
CREATE TABLE IF NOT EXISTS operation_outcomes (
    run_id VARCHAR, source VARCHAR, source_file VARCHAR, source_row INTEGER,
    phone_number VARCHAR, number_id VARCHAR, action VARCHAR,
    target_enabled BOOLEAN, target_address_id VARCHAR, result VARCHAR, reason VARCHAR,
    batch_id VARCHAR, job_id VARCHAR, job_status VARCHAR,
    error_code VARCHAR, error_title VARCHAR, error_detail VARCHAR, error_pointer VARCHAR,
    extras VARCHAR, planned_at TIMESTAMPTZ, submitted_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ, recorded_at TIMESTAMPTZ, address_given VARCHAR,
    enabled_before BOOLEAN, address_id_before VARCHAR, applied BOOLEAN, account VARCHAR
);
-- Files made before addresses could be given by their fields (issue 7).
ALTER TABLE operation_outcomes ADD COLUMN IF NOT EXISTS address_given VARCHAR;
-- Files made before issue 27: the setting before the change, whether the run applied, the
-- account (NULL in older rows; the views infer `applied` from the results).
ALTER TABLE operation_outcomes ADD COLUMN IF NOT EXISTS enabled_before BOOLEAN;
ALTER TABLE operation_outcomes ADD COLUMN IF NOT EXISTS address_id_before VARCHAR;
ALTER TABLE operation_outcomes ADD COLUMN IF NOT EXISTS applied BOOLEAN;
ALTER TABLE operation_outcomes ADD COLUMN IF NOT EXISTS account VARCHAR;
CREATE TABLE IF NOT EXISTS address_resolutions (
    run_id VARCHAR, source VARCHAR, address_key VARCHAR, address_given VARCHAR,
    status VARCHAR, address_id VARCHAR, candidates VARCHAR, "rows" INTEGER,
    phone_numbers VARCHAR, errors VARCHAR, suggested VARCHAR, detail VARCHAR,
    recorded_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS _spool_applied (spool_id VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ);
"""

# Views for analysts; the README shows how to query them.
VIEWS = """
-- A run applied when it says so, or (rows from before the column, results a later run
-- published for a stopped one) when any of its numbers has a job's result.
CREATE OR REPLACE VIEW applied_runs AS
SELECT run_id FROM operation_outcomes GROUP BY run_id
HAVING coalesce(bool_or(applied), false)
    OR bool_or(result IN ('succeeded', 'failed', 'pending', 'expired'));

-- The latest row of every number from any run, plan-only runs included (a plan-only run's
-- `planned` hides an earlier failure here: see latest_applied_outcome_per_number).
CREATE OR REPLACE VIEW latest_outcome_per_number AS
SELECT * FROM operation_outcomes
WHERE coalesce(phone_number, number_id) IS NOT NULL
QUALIFY row_number() OVER (
    PARTITION BY coalesce(phone_number, number_id) ORDER BY recorded_at DESC, run_id DESC
) = 1;

-- What the account was last told, per number: the latest row from applied runs only,
-- rejected rows left out (a rejected row never reached the account).
CREATE OR REPLACE VIEW latest_applied_outcome_per_number AS
SELECT * FROM operation_outcomes
WHERE coalesce(phone_number, number_id) IS NOT NULL AND result <> 'rejected'
  AND run_id IN (SELECT run_id FROM applied_runs)
QUALIFY row_number() OVER (
    PARTITION BY coalesce(phone_number, number_id) ORDER BY recorded_at DESC, run_id DESC
) = 1;

-- What is failing now: numbers whose latest applied result is failed or expired.
CREATE OR REPLACE VIEW failing_now AS
SELECT * FROM latest_applied_outcome_per_number WHERE result IN ('failed', 'expired');

CREATE OR REPLACE VIEW failures_by_error_code AS
SELECT error_code, error_title, count(*) AS failures,
       count(DISTINCT coalesce(phone_number, number_id)) AS numbers,
       min(recorded_at) AS first_seen, max(recorded_at) AS last_seen
FROM operation_outcomes WHERE result IN ('failed', 'expired')
GROUP BY ALL ORDER BY failures DESC;

CREATE OR REPLACE VIEW run_summary AS
SELECT run_id, any_value(source) AS source, min(recorded_at) AS recorded_at,
       run_id IN (SELECT run_id FROM applied_runs) AS applied,
       any_value(account) AS account,
       count(*) AS desired_rows,
       count(*) FILTER (result = 'succeeded') AS succeeded,
       count(*) FILTER (result = 'failed') AS failed,
       count(*) FILTER (result = 'pending') AS pending,
       count(*) FILTER (result = 'expired') AS expired,
       count(*) FILTER (result = 'unchanged') AS unchanged,
       count(*) FILTER (result = 'planned') AS planned,
       count(*) FILTER (result = 'skipped') AS skipped,
       count(*) FILTER (result = 'rejected') AS rejected
FROM operation_outcomes GROUP BY run_id ORDER BY recorded_at DESC;
"""
