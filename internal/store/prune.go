package store

import (
	"context"
	"strings"
)

// DeleteInBatches deletes from table the rows whose ids pick selects, batch
// at a time, until a batch comes up short, and returns how many it deleted.
// pick is a SELECT of the table's id ending in "LIMIT ?", whose last
// argument (after args) is the batch size; it should walk an index, oldest
// first. Each batch is its own statement, so a backlog is cleared in short
// transactions (on SQLite each holds the only write lock); on error, the
// batches already deleted stay deleted and are counted.
//
// Neither dialect has DELETE … LIMIT, so each batch deletes by primary key
// the ids its subquery picks. On Postgres the ids go through an array
// (`id IN (subquery)` is planned as a hash join over a sequential scan of
// the whole table, once per batch), and SKIP LOCKED lets replicas pruning
// at the same moment take different batches instead of queueing behind
// one another.
func (db *DB) DeleteInBatches(ctx context.Context, table, pick string, batch int, args ...any) (int64, error) {
	var q strings.Builder
	q.WriteString("DELETE FROM " + table)
	if db.Dialect == Postgres {
		q.WriteString(" WHERE id = ANY (ARRAY(" + pick + " FOR UPDATE SKIP LOCKED))")
	} else {
		q.WriteString(" WHERE id IN (" + pick + ")")
	}
	args = append(args[:len(args):len(args)], batch)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res := db.WithContext(ctx).Exec(q.String(), args...)
		if res.Error != nil {
			return total, res.Error
		}
		total += res.RowsAffected
		if res.RowsAffected < int64(batch) {
			return total, nil
		}
	}
}
