-- One row update and one row insert per transaction: the work of one saga transition done the
-- plain way (scripts/bench-store.sh).
\set id random(1, 20000)
BEGIN;
UPDATE bench_rows SET counter = counter + 1, updated_at = now() WHERE id = :id;
INSERT INTO bench_log (row_id, at, payload) VALUES (:id, now(), repeat('x', 200));
END;
