// Package migrations embeds Tollgate's versioned SQL schema, one directory
// per dialect. Both directories carry the same versions; goose applies them.
package migrations

import "embed"

// FS holds postgres/*.sql and sqlite/*.sql.
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS
