// Command host is an example SaaS backend metered by Tollgate: what a host
// writes with package client and its middleware.
//
//	TOLLGATE_URL=http://127.0.0.1:8080 PORT=9090 go run ./examples/host
//
// Its customers authenticate with their own Tollgate API key in X-API-Key
// (scope usage:write), as in the reference API, and the middleware uses that
// key, so Tollgate meters the customer's own organisation:
//
//	GET  /v1/hello     one api_calls per request
//	POST /v1/complete  one api_calls, then the completion's llm_tokens once it has answered
//
// Over the plan's quota a request is answered 402, over its rate 429.
// METERING=fast checks with usageGate and records after serving instead of
// consumeUsage before (see package client/middleware); TOLLGATE_FAIL_OPEN=true
// serves requests while Tollgate is unreachable.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate-billing/tollgate/client"
	"github.com/tollgate-billing/tollgate/client/middleware"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	url := getenv("TOLLGATE_URL", "http://127.0.0.1:8080")
	h, closeHost := newHost(url, middleware.Config{
		Mode:     map[string]middleware.Mode{"fast": middleware.Fast}[os.Getenv("METERING")],
		FailOpen: os.Getenv("TOLLGATE_FAIL_OPEN") == "true",
		Log:      log,
	})
	srv := &http.Server{Addr: ":" + getenv("PORT", "9090"), Handler: h, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Info("example host listening", "addr", srv.Addr, "tollgate", url)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
	// Usage queued for Tollgate is sent before exit.
	flush, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := closeHost(flush); err != nil {
		log.Error("usage not recorded", "err", err)
	}
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// newHost returns the host's routes behind the metering middleware, and
// what flushes its recorder. cfg sets the mode, failure policy and log.
func newHost(tollgateURL string, cfg middleware.Config) (http.Handler, func(context.Context) error) {
	tg := client.New(tollgateURL, nil)
	// Accounts are customers' API keys: each is sent with its own key.
	rec := client.NewRecorder(func(key string) *client.Client { return tg.For(client.APIKey(key)) }, client.RecorderOptions{
		OnDrop: func(_ string, events []client.Event, err error) {
			if cfg.Log != nil {
				cfg.Log.Warn("usage not recorded", "events", len(events), "err", err)
			}
		},
	})
	cfg.Tollgate, cfg.Recorder = tg, rec
	cfg.Customer = middleware.APIKeyHeader("X-API-Key")
	m := middleware.New(cfg)

	mux := http.NewServeMux()
	// Each metered route is wrapped on its own, so an unknown path is a
	// plain 404 that costs the customer nothing.
	mux.Handle("GET /v1/hello", m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"message": "Hello from the example host"})
	})))
	mux.Handle("POST /v1/complete", m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Prompt string `json:"prompt"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
			http.Error(w, `{"error":"send {\"prompt\": \"...\"}"}`, http.StatusBadRequest)
			return
		}
		// A stand-in for a model: the completion echoes the prompt, and
		// each word in and out is a token.
		completion := "You said: " + in.Prompt
		tokens := int64(len(strings.Fields(in.Prompt)) + len(strings.Fields(completion)))
		id := uuid.NewString()
		writeJSON(w, map[string]any{"id": id, "completion": completion, "usage": map[string]int64{"tokens": tokens}})
		// Counted once answered; the id makes a retried recording count once.
		_ = m.RecordTokens(r, tokens, id)
	})))
	return mux, rec.Close
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
