-- +goose Up
-- Postgres gets tollgate_group_abort here; SQLite writes every commit group
-- in a transaction of its own and needs nothing. The version is kept in
-- step with Postgres's.
SELECT 1;

-- +goose Down
SELECT 1;
