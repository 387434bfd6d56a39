package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// results is what -json writes: the run's figures, for comparing runs.
type results struct {
	Time        time.Time `json:"time"`
	GoVersion   string    `json:"goVersion"`
	CPUs        int       `json:"cpus"`
	LoadAverage string    `json:"loadAverageAtEnd"`
	// Failures lists phases whose requests failed; their figures do not
	// count.
	Failures []string       `json:"failures"`
	Gate     *gateResult    `json:"gate,omitempty"`
	Record   []recordRow    `json:"record,omitempty"`
	History  *historyResult `json:"history,omitempty"`
	// Ingest is the ingest section's table, figure by figure.
	Ingest []ingestFigure `json:"ingest,omitempty"`
	// IngestCPU is where the one-event phases' CPU went, per event: on
	// one organisation, on 64, in the single-row floor, and per request of
	// `{ __typename }` and of a bare net/http handler from as many clients.
	IngestCPU map[string]CPUPerOp `json:"ingestCPU,omitempty"`
}

func writeJSON(path string, began time.Time, g *gateResult, rec []recordRow, h *historyResult, in *ingestResult) error {
	if path == "" {
		return nil
	}
	r := results{Time: began.UTC(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), LoadAverage: loadAverage(),
		Failures: failures, Gate: g, Record: rec, History: h}
	if in != nil {
		r.Ingest = in.figures()
		if in.OneOrgCPU.Busy > 0 {
			r.IngestCPU = map[string]CPUPerOp{"oneOrg": in.OneOrgCPU, "manyOrgs": in.ManyOrgsCPU, "floor": in.FloorCPU, "bare": in.BareOneCPU, "netHTTP": in.NetHTTPCPU}
		}
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}
