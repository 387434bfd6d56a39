-- +goose Up
-- Statements sent through a store.Pipe (internal/store/pipe.go) call this
-- before they write: it undoes the statement (SQLSTATE TG002) when the
-- connection's session value is not the mark of the statement sent before
-- it, which is so when that one did not commit (Postgres rolls the value
-- back with a failed statement), and otherwise sets the value to the
-- statement's own mark. So no statement commits behind one that failed.
-- +goose StatementBegin
CREATE FUNCTION tollgate_pipe_turn(after text, mark text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('tollgate.pipe', true), '') <> after THEN
        RAISE EXCEPTION USING ERRCODE = 'TG002', MESSAGE = 'out of turn';
    END IF;
    PERFORM set_config('tollgate.pipe', mark, false);
    RETURN true;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION tollgate_pipe_turn(text, text);
