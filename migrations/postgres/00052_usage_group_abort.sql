-- +goose Up
-- A commit group of recordUsage calls is written by one statement when it
-- can be (internal/usage/oneshot.go). The statement calls this to undo
-- itself when a total turns out too close to a hard limit, or an alert
-- threshold is crossed: both need the group's transaction to go on, and
-- the group is then written again in one. The reason is the message.
-- +goose StatementBegin
CREATE FUNCTION tollgate_group_abort(reason text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'TG001', MESSAGE = reason;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION tollgate_group_abort(text);
