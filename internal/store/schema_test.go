package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// The Postgres and SQLite migrations write every table twice, by hand. After
// migrate up both must describe the same schema: the same tables, columns
// (and whether they may be null), primary keys, unique keys and foreign
// keys. Types are left out: the two databases spell them differently.
//
// Partitions are Postgres's alone: its partitioned tables are compared by
// their parent (whose keys every partition carries) and must be those
// listed here, each with a default partition so that no insert fails for
// lack of one; on SQLite the same table is a single one.
func TestBothDialectsMigrateToTheSameSchema(t *testing.T) {
	pg := describe(t, testenv.OpenDB(t, store.Postgres))
	lite := describe(t, testenv.OpenDB(t, store.SQLite))
	partitioned := []string{
		"partitioned usage_event_keys by range(arrival_month) with a default partition",
		"partitioned usage_events by range(occurred_at) with a default partition",
	}
	var found []string
	pg = slices.DeleteFunc(pg, func(l string) bool {
		if strings.HasPrefix(l, "partitioned ") {
			found = append(found, l)
			return true
		}
		return false
	})
	if !slices.Equal(found, partitioned) {
		t.Fatalf("partitioned tables on Postgres:\n  %s\nwant:\n  %s", strings.Join(found, "\n  "), strings.Join(partitioned, "\n  "))
	}
	var onlyPG, onlyLite []string
	for _, l := range pg {
		if !slices.Contains(lite, l) {
			onlyPG = append(onlyPG, l)
		}
	}
	for _, l := range lite {
		if !slices.Contains(pg, l) {
			onlyLite = append(onlyLite, l)
		}
	}
	if len(onlyPG)+len(onlyLite) > 0 {
		t.Fatalf("the migrations drifted apart:\nonly on Postgres:\n  %s\nonly on SQLite:\n  %s",
			strings.Join(onlyPG, "\n  "), strings.Join(onlyLite, "\n  "))
	}
	if len(pg) == 0 {
		t.Fatal("no schema read")
	}
}

// describe lists the schema as sorted lines, one per table, column and key.
func describe(t *testing.T, db *store.DB) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	rows := func(query string, scan func(cols []string)) {
		t.Helper()
		r, err := db.SQL().QueryContext(ctx, query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer r.Close()
		names, _ := r.Columns()
		for r.Next() {
			vals := make([]string, len(names))
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := r.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			scan(vals)
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	}
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }

	if db.Dialect == store.Postgres {
		// Partitions are described by their parent.
		rows(`SELECT c.relname, a.attname,
				CASE WHEN EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class d ON d.oid = i.inhrelid
					WHERE i.inhparent = c.oid AND pg_get_expr(d.relpartbound, d.oid) = 'DEFAULT')
				THEN ' with a default partition' ELSE '' END
			FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace
			JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0]
			WHERE n.nspname = current_schema() AND p.partstrat = 'r'`, func(c []string) {
			add("partitioned %s by range(%s)%s", c[0], c[1], c[2])
		})
		rows(`SELECT table_name, column_name, is_nullable FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name <> 'goose_db_version'
			AND table_name NOT IN (SELECT relname FROM pg_class WHERE relispartition)`, func(c []string) {
			add("column %s.%s nullable=%s", c[0], c[1], strings.ToLower(c[2]))
		})
		rows(`SELECT t.relname, i.indisprimary::text, (i.indpred IS NOT NULL)::text,
				(SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(i.indkey) WITH ORDINALITY k(n, ord)
				 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n)
			FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
			WHERE n.nspname = current_schema() AND i.indisunique AND t.relname <> 'goose_db_version'
			AND NOT t.relispartition`, func(c []string) {
			key(add, c[0], c[1] == "true", c[2] == "true", c[3])
		})
		rows(`SELECT c.conrelid::regclass::text,
				(SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(n, ord)
				 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n),
				c.confrelid::regclass::text,
				(SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(n, ord)
				 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n)
			FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
			JOIN pg_class r ON r.oid = c.conrelid
			WHERE c.contype = 'f' AND n.nspname = current_schema() AND NOT r.relispartition`, func(c []string) {
			add("foreign key %s(%s) -> %s(%s)", c[0], c[1], c[2], c[3])
		})
	} else {
		var tables []string
		rows(`SELECT name FROM sqlite_master WHERE type = 'table'
			AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`, func(c []string) { tables = append(tables, c[0]) })
		for _, tbl := range tables {
			var pk []string
			rows(fmt.Sprintf(`SELECT name, "notnull", pk FROM pragma_table_info('%s') ORDER BY pk`, tbl), func(c []string) {
				// SQLite lets a non-integer primary key column hold NULL
				// unless told otherwise; Postgres never does.
				nullable := c[1] == "0" && c[2] == "0"
				add("column %s.%s nullable=%s", tbl, c[0], map[bool]string{true: "yes", false: "no"}[nullable])
				if c[2] != "0" {
					pk = append(pk, c[0])
				}
			})
			if len(pk) > 0 {
				key(add, tbl, true, false, strings.Join(pk, ","))
			}
			var unique [][2]string
			rows(fmt.Sprintf(`SELECT name, partial FROM pragma_index_list('%s') WHERE "unique" = 1 AND origin <> 'pk'`, tbl), func(c []string) {
				unique = append(unique, [2]string{c[0], c[1]})
			})
			for _, u := range unique {
				var cols []string
				rows(fmt.Sprintf(`SELECT name FROM pragma_index_info('%s') ORDER BY seqno`, u[0]), func(c []string) { cols = append(cols, c[0]) })
				key(add, tbl, false, u[1] == "1", strings.Join(cols, ","))
			}
			rows(fmt.Sprintf(`SELECT "from", "table", "to" FROM pragma_foreign_key_list('%s') ORDER BY seq`, tbl), func(c []string) {
				add("foreign key %s(%s) -> %s(%s)", tbl, c[0], c[1], c[2])
			})
		}
	}
	slices.Sort(out)
	return out
}

func key(add func(string, ...any), table string, primary, partial bool, cols string) {
	switch {
	case primary:
		add("primary key %s(%s)", table, cols)
	case partial:
		add("unique %s(%s) where …", table, cols)
	default:
		add("unique %s(%s)", table, cols)
	}
}

// docs/scaling.md promises that every tenant's rows can be told apart by
// org_id, so that the tables can be distributed on it (Citus) or split per
// tenant, and lists the tables whose primary key does not yet lead with it.
// This keeps both statements true: a new table needs an org_id column or a
// place among the global ones, and a new primary key that does not lead with
// org_id must be added to the list and to the document.
func TestEveryTenantTableCarriesOrgID(t *testing.T) {
	global := map[string]string{
		"organizations":  "its id is the org id",
		"webhook_events": "Stripe's events, recorded before their organisation is known",
	}
	// Tenant tables reached only through a parent that carries org_id; to
	// distribute them they would take an org_id column first.
	viaParent := map[string]string{"webhook_delivery_attempts": "webhook_deliveries"}
	// Tenant tables keyed by an id of their own (a Stripe id or a UUID),
	// with org_id as a column and an index leading with it.
	ownID := []string{
		"api_keys", "checkout_sessions", "invoices", "outbound_events", "subscriptions",
		"webhook_deliveries", "webhook_endpoints",
	}
	lines := describe(t, testenv.OpenDB(t, store.Postgres))
	tables, withOrg, pks := map[string]bool{}, map[string]bool{}, map[string]string{}
	for _, l := range lines {
		var tbl, col, rest string
		if _, err := fmt.Sscanf(l, "column %s %s", &col, &rest); err == nil {
			tbl, col, _ = strings.Cut(col, ".")
			if strings.HasPrefix(tbl, "river_") {
				continue
			}
			tables[tbl] = true
			if col == "org_id" {
				withOrg[tbl] = true
			}
		}
		if strings.HasPrefix(l, "primary key ") {
			tbl, cols, _ := strings.Cut(strings.TrimPrefix(l, "primary key "), "(")
			pks[tbl] = strings.TrimSuffix(cols, ")")
		}
	}
	var missing, notLeading []string
	for tbl := range tables {
		if _, ok := global[tbl]; ok {
			continue
		}
		if _, ok := viaParent[tbl]; ok {
			continue
		}
		if !withOrg[tbl] {
			missing = append(missing, tbl)
		}
		// A table without a primary key (usage_events: partitioned, its
		// keys live in usage_event_keys) is judged by its org_id column.
		if pk, ok := pks[tbl]; ok && !strings.HasPrefix(pk, "org_id") {
			notLeading = append(notLeading, tbl)
		}
	}
	slices.Sort(missing)
	slices.Sort(notLeading)
	if len(missing) > 0 {
		t.Errorf("tables without org_id (give them one, or list them as global with a reason): %v", missing)
	}
	if !slices.Equal(notLeading, ownID) {
		t.Errorf("tenant tables whose primary key does not lead with org_id:\n  %v\nwant (as docs/scaling.md lists them):\n  %v", notLeading, ownID)
	}
	if len(tables) < 10 {
		t.Fatalf("read only %d tables", len(tables))
	}
}
