-- +goose Up
-- Postgres gets tollgate_pipe_turn here; SQLite has no statement pipe and
-- needs nothing. The version is kept in step with Postgres's.
SELECT 1;

-- +goose Down
SELECT 1;
