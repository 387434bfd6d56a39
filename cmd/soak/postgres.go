package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const soakDB = "tollgate_soak"

// postgres is the database the two Tollgate processes share: a private
// cluster in the harness's directory when one can be made (restarting it
// disturbs nobody), else a private database on the machine's server.
type postgres struct {
	private bool
	version int
	// private cluster
	binDir, dataDir, logPath string
	port                     int
	runAs                    string // "postgres" when the harness runs as root
	// shared server
	adminURL, dbName, host string
	sharedPort             int
	restartShared          bool

	log *slog.Logger
}

func newPostgres(ctx context.Context, dir string, o options, log *slog.Logger) (*postgres, error) {
	p := &postgres{log: log}
	perr := errors.New("-shared-postgres was given")
	if !o.forceShared {
		if perr = p.startPrivate(ctx, dir); perr == nil {
			return p, nil
		}
	}
	log.Warn("not starting a private Postgres cluster; using a private database on the shared server", "reason", perr)
	if err := p.useShared(ctx, o); err != nil {
		return nil, errors.Join(fmt.Errorf("private cluster: %w", perr), fmt.Errorf("shared server: %w", err))
	}
	return p, nil
}

func (p *postgres) describe() string {
	if p.private {
		return fmt.Sprintf("private PostgreSQL %d cluster on 127.0.0.1:%d (restarted with pg_ctl)", p.version, p.port)
	}
	restart := "NOT restarted: pass -restart-shared-postgres to restart the shared cluster"
	if p.restartShared {
		restart = "restarted with pg_ctlcluster"
	}
	return fmt.Sprintf("database %s on the shared PostgreSQL %d at %s:%d (%s)", p.dbName, p.version, p.host, p.sharedPort, restart)
}

// url is DATABASE_URL for Tollgate and the harness's own queries.
func (p *postgres) url() string {
	if p.private {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, soakDB)
	}
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", p.host, p.sharedPort, p.dbName)
}

// newestPostgres finds the highest installed server version.
func newestPostgres() (int, string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		if initdb, err := exec.LookPath("initdb"); err == nil {
			dirs = []string{initdb}
		}
	}
	type found struct {
		v   int
		bin string
	}
	var all []found
	for _, d := range dirs {
		bin := filepath.Dir(d)
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
		all = append(all, found{v, bin})
	}
	if len(all) == 0 {
		return 0, "", errors.New("no initdb found under /usr/lib/postgresql or on PATH")
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	return all[0].v, all[0].bin, nil
}

func (p *postgres) startPrivate(ctx context.Context, dir string) error {
	v, bin, err := newestPostgres()
	if err != nil {
		return err
	}
	p.version, p.binDir = v, bin
	pgDir := filepath.Join(dir, "postgres")
	if err := os.MkdirAll(pgDir, 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		// Postgres refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root and there is no postgres user: %w", err)
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			return fmt.Errorf("running as root and runuser is missing: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(pgDir, uid, gid); err != nil {
			return err
		}
		p.runAs = "postgres"
	}
	p.dataDir, p.logPath = filepath.Join(pgDir, "data"), filepath.Join(pgDir, "postgres.log")
	if p.port, err = freePort(); err != nil {
		return err
	}
	if out, err := p.pgCommand(ctx, "initdb", "-D", p.dataDir, "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	if err := p.ctl(ctx, "start"); err != nil {
		return err
	}
	p.private = true
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port))
	if err != nil {
		p.close()
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+soakDB); err != nil {
		p.close()
		return err
	}
	return nil
}

// pgCommand runs one of the server's binaries as the user that owns the
// cluster.
func (p *postgres) pgCommand(ctx context.Context, name string, args ...string) (string, error) {
	argv := append([]string{filepath.Join(p.binDir, name)}, args...)
	if p.runAs != "" {
		argv = append([]string{"runuser", "-u", p.runAs, "--"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// Own process group: a Ctrl-C meant for the harness must not reach the
	// postmaster, which the harness stops itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Dir = filepath.Dir(p.dataDir)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// ctl runs pg_ctl start, stop or restart and waits for it to finish.
func (p *postgres) ctl(ctx context.Context, action string, extra ...string) error {
	args := []string{action, "-D", p.dataDir, "-w", "-t", "60"}
	switch action {
	case "start", "restart":
		args = append(args, "-l", p.logPath, "-o",
			fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", p.port, filepath.Dir(p.dataDir)))
	}
	args = append(args, extra...)
	if out, err := p.pgCommand(ctx, "pg_ctl", args...); err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", action, err, out)
	}
	return nil
}

func (p *postgres) useShared(ctx context.Context, o options) error {
	admin, err := pgx.Connect(ctx, o.sharedPGURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	cfg := admin.Config()
	p.host, p.sharedPort, p.adminURL, p.restartShared = cfg.Host, int(cfg.Port), o.sharedPGURL, o.restartShared
	var num int
	if err := admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return err
	}
	p.version = num / 10000
	p.dbName = fmt.Sprintf("%s_%d", soakDB, time.Now().UnixNano())
	_, err = admin.Exec(ctx, "CREATE DATABASE "+p.dbName)
	return err
}

// restart stops Postgres, keeps it down for down, and starts it again. It
// returns what it did, or "" when the shared cluster may not be touched.
func (p *postgres) restart(ctx context.Context, down time.Duration) (string, error) {
	if p.private {
		if err := p.ctl(ctx, "stop", "-m", "fast"); err != nil {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(down):
		}
		return fmt.Sprintf("stopped (fast), down %s, started", down), p.ctl(ctx, "start")
	}
	if !p.restartShared {
		return "", nil
	}
	cmd := exec.CommandContext(ctx, "pg_ctlcluster", "--skip-systemctl-redirect", strconv.Itoa(p.version), "main", "restart")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pg_ctlcluster restart: %w: %s", err, out)
	}
	return "shared cluster restarted (pg_ctlcluster)", nil
}

// close stops the private cluster or drops the private database.
func (p *postgres) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if p.private {
		if _, err := p.pgCommand(ctx, "pg_ctl", "status", "-D", p.dataDir); err != nil {
			return // not running: interrupted while it was down for a restart
		}
		if err := p.ctl(ctx, "stop", "-m", "fast"); err != nil {
			p.log.Warn("fast stop failed; stopping postgres immediately", "err", err)
			_ = p.ctl(ctx, "stop", "-m", "immediate")
		}
		return
	}
	if p.dbName == "" {
		return
	}
	pool, err := pgxpool.New(ctx, p.adminURL)
	if err != nil {
		p.log.Warn("could not drop the soak database", "db", p.dbName, "err", err)
		return
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "DROP DATABASE IF EXISTS "+p.dbName+" WITH (FORCE)"); err != nil {
		p.log.Warn("could not drop the soak database", "db", p.dbName, "err", err)
	}
}
