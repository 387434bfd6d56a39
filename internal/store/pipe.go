package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
)

// A Pipe sends statements on one Postgres connection of its own, each
// without waiting for the answer to the one before (the extended protocol's
// pipelining: Bind, Execute and Sync per statement, so each is its own
// transaction). The backend then goes from one statement to the next with
// no round trip between them, while a reader goroutine hands the answers
// back in the order the statements were sent.
//
// Statements sent through a pipe take their turns in send order, and a
// statement must not commit when one sent before it on the pipe did not:
// its caller may have judged it as coming after that one. So every
// statement sent through a pipe must call tollgate_pipe_turn($n+1, $n+2)
// (migration 00054) before it writes, where n is the number of arguments
// its caller passes: Send appends the mark of the statement sent before it
// and its own mark. The function sets the connection's session value to
// the statement's mark, and undoes the statement with ErrOutOfTurn when the
// value is not the mark of the statement sent before: Postgres rolls the
// session value back with a statement that fails, so once one statement
// fails, every statement already behind it fails too.
//
// After a failure the pipe is out of step: Send answers ErrOutOfTurn,
// without sending, until a caller passes resync (it must know that every
// statement that had to come before its own has finished); Send then waits
// for the statements in flight to be answered and starts again from the
// last mark that committed.
//
// A broken connection fails every statement in flight with its error
// (each may or may not have committed) and the next Send opens a new one.
// The connection is outside the DB's pool; Close closes it.
type Pipe struct {
	config *pgconn.Config

	mu sync.Mutex
	// conn is the open connection, nil before the first Send and after a
	// failure.
	conn *pipeConn
	// outOfStep is set by any statement that failed, until a resync.
	outOfStep bool
	closed    bool
}

// ErrOutOfTurn is a statement's failure when one sent before it on the
// pipe failed, or when the pipe is out of step and the caller did not ask
// to resync: it wrote nothing.
var ErrOutOfTurn = errors.New("a statement sent before this one on the pipe did not commit")

// ErrPipeClosed is Send's error once the DB is closed.
var ErrPipeClosed = errors.New("the statement pipe is closed")

// outOfTurnCode is the SQLSTATE tollgate_pipe_turn raises.
const outOfTurnCode = "TG002"

// pipeConn is one connection of a pipe, with the statements sent on it
// and not answered yet.
type pipeConn struct {
	fe    *pgproto3.Frontend
	close func() error
	types *pgtype.Map
	// queue holds the calls sent and not answered, in send order; idle is
	// closed whenever it is empty.
	queue []*PipeCall
	idle  chan struct{}
	// prepared holds each query prepared on the connection, by its text.
	prepared map[string]*pipeStatement
	// seq numbers the marks; lastSent is the mark of the statement sent
	// last, confirmed that of the last one committed.
	seq                 uint64
	lastSent, confirmed string
}

// pipeStatement is a query prepared on a pipe's connection.
type pipeStatement struct {
	name   string
	ready  chan struct{} // closed once described (or failed)
	params []uint32
	fields []pgproto3.FieldDescription
	err    error
}

// PipeCall is one statement sent through a pipe.
type PipeCall struct {
	done   chan struct{}
	mark   string
	stmt   *pipeStatement // the statement a Parse describes, nil for an Execute
	fields []pgproto3.FieldDescription
	types  *pgtype.Map
	rows   [][][]byte
	err    error
}

func newPipe(url string) (*Pipe, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	return &Pipe{config: &cfg.Config}, nil
}

// Send sends query with args, and the two marks tollgate_pipe_turn takes
// after them, behind the statements in flight, and returns once it is on
// its way; Wait gives its answer. See Pipe for resync and ErrOutOfTurn.
func (p *Pipe) Send(ctx context.Context, query string, args []any, resync bool) (*PipeCall, error) {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPipeClosed
		}
		if p.outOfStep && !resync {
			p.mu.Unlock()
			return nil, ErrOutOfTurn
		}
		c := p.conn
		if c == nil {
			var err error
			if c, err = p.connect(ctx); err != nil {
				p.mu.Unlock()
				return nil, err
			}
		}
		st, ok := c.prepared[query]
		if !ok {
			st = p.prepare(c, query)
		}
		var wait <-chan struct{}
		select {
		case <-st.ready:
			if st.err != nil {
				p.mu.Unlock()
				return nil, st.err
			}
			if p.outOfStep && len(c.queue) > 0 {
				wait = c.idle
			}
		default:
			wait = st.ready
		}
		if wait != nil {
			// The connection may break or the pipe fall out of step while
			// the lock is let go: look again from the start.
			p.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			p.mu.Lock()
			continue
		}
		if p.outOfStep {
			p.outOfStep = false
			c.lastSent = c.confirmed
		}
		call, err := p.execute(c, st, args)
		p.mu.Unlock()
		return call, err
	}
}

// connect opens the pipe's connection. mu is held.
func (p *Pipe) connect(ctx context.Context) (*pipeConn, error) {
	pc, err := pgconn.ConnectConfig(ctx, p.config)
	if err != nil {
		return nil, err
	}
	hj, err := pc.Hijack()
	if err != nil {
		pc.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	idle := make(chan struct{})
	close(idle)
	c := &pipeConn{fe: hj.Frontend, close: hj.Conn.Close, types: pgtype.NewMap(), idle: idle, prepared: map[string]*pipeStatement{}}
	p.conn = c
	go p.read(c)
	return c, nil
}

// prepare sends query's Parse and Describe; the reader fills in the
// statement. mu is held.
func (p *Pipe) prepare(c *pipeConn, query string) *pipeStatement {
	st := &pipeStatement{name: "tg" + strconv.Itoa(len(c.prepared)), ready: make(chan struct{})}
	c.prepared[query] = st
	c.fe.SendParse(&pgproto3.Parse{Name: st.name, Query: query})
	c.fe.SendDescribe(&pgproto3.Describe{ObjectType: 'S', Name: st.name})
	c.fe.SendSync(&pgproto3.Sync{})
	call := &PipeCall{done: make(chan struct{}), stmt: st}
	if err := p.flush(c, call); err != nil {
		delete(c.prepared, query)
		st.err = err
		close(st.ready)
	}
	return st
}

// execute sends a prepared statement's Bind, Execute and Sync. mu is held.
func (p *Pipe) execute(c *pipeConn, st *pipeStatement, args []any) (*PipeCall, error) {
	c.seq++
	mark := strconv.FormatUint(c.seq, 10)
	args = append(args[:len(args):len(args)], c.lastSent, mark)
	if len(args) != len(st.params) {
		return nil, fmt.Errorf("pipe: %d arguments for %d parameters", len(args), len(st.params))
	}
	params := make([][]byte, len(args))
	for i, a := range args {
		b, err := c.types.Encode(st.params[i], pgtype.BinaryFormatCode, a, nil)
		if err != nil {
			return nil, fmt.Errorf("pipe: encode $%d: %w", i+1, err)
		}
		params[i] = b
	}
	c.fe.SendBind(&pgproto3.Bind{PreparedStatement: st.name, ParameterFormatCodes: []int16{pgtype.BinaryFormatCode}, Parameters: params, ResultFormatCodes: []int16{pgtype.TextFormatCode}})
	c.fe.SendExecute(&pgproto3.Execute{})
	c.fe.SendSync(&pgproto3.Sync{})
	call := &PipeCall{done: make(chan struct{}), mark: mark, fields: st.fields, types: c.types}
	if err := p.flush(c, call); err != nil {
		return nil, err
	}
	c.lastSent = mark
	return call, nil
}

// flush writes what was sent and queues call for its answer. A failed
// write closes the connection, and its reader fails what is in flight.
// mu is held.
func (p *Pipe) flush(c *pipeConn, call *PipeCall) error {
	if err := c.fe.Flush(); err != nil {
		p.drop(c)
		return err
	}
	if len(c.queue) == 0 {
		c.idle = make(chan struct{})
	}
	c.queue = append(c.queue, call)
	return nil
}

// drop closes c and forgets it, so the next Send opens a new connection.
// The reader, whose next read fails, answers what was in flight. mu is
// held.
func (p *Pipe) drop(c *pipeConn) {
	if p.conn == c {
		p.conn = nil
	}
	c.close()
}

// broken fails every call in flight on c with err, on c's reader once it
// cannot read on. What was in flight may or may not have committed, so the
// pipe is out of step, as after a failed statement. mu is held.
func (p *Pipe) broken(c *pipeConn, err error) {
	p.drop(c)
	p.outOfStep = true
	for _, call := range c.queue {
		if call.stmt != nil {
			call.stmt.err = err
			close(call.stmt.ready)
		}
		call.err = fmt.Errorf("pipe: connection lost: %w", err)
		close(call.done)
	}
	c.queue = nil
	select {
	case <-c.idle:
	default:
		close(c.idle)
	}
}

// read hands c's answers to its calls, in order, until c breaks.
func (p *Pipe) read(c *pipeConn) {
	var call *PipeCall
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			p.mu.Lock()
			p.broken(c, err)
			p.mu.Unlock()
			return
		}
		if call == nil {
			p.mu.Lock()
			if len(c.queue) > 0 {
				call = c.queue[0]
			}
			p.mu.Unlock()
		}
		switch m := msg.(type) {
		case *pgproto3.ParameterDescription:
			if call != nil && call.stmt != nil {
				call.stmt.params = append([]uint32(nil), m.ParameterOIDs...)
			}
		case *pgproto3.RowDescription:
			if call != nil && call.stmt != nil {
				call.stmt.fields = append([]pgproto3.FieldDescription(nil), m.Fields...)
			}
		case *pgproto3.DataRow:
			if call != nil {
				row := make([][]byte, len(m.Values))
				for i, v := range m.Values {
					if v != nil {
						row[i] = append([]byte{}, v...)
					}
				}
				call.rows = append(call.rows, row)
			}
		case *pgproto3.ErrorResponse:
			pgErr := pgconn.ErrorResponseToPgError(m)
			if call == nil { // a FATAL of the connection's own, such as a terminated backend
				p.mu.Lock()
				p.broken(c, pgErr)
				p.mu.Unlock()
				return
			}
			call.err = pgErr
		case *pgproto3.ReadyForQuery:
			if call == nil {
				continue
			}
			p.mu.Lock()
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil
				close(c.idle)
			}
			if call.err != nil && call.stmt == nil {
				p.outOfStep = true
			} else if call.mark != "" {
				c.confirmed = call.mark
			}
			p.mu.Unlock()
			if st := call.stmt; st != nil {
				st.err = call.err
				close(st.ready)
			}
			close(call.done)
			call = nil
		}
	}
}

// Wait returns the statement's rows once it has been answered. A
// statement undone by tollgate_pipe_turn gives ErrOutOfTurn. When ctx ends
// first the statement may still commit.
func (call *PipeCall) Wait(ctx context.Context) (*PipeRows, error) {
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var pgErr *pgconn.PgError
	if errors.As(call.err, &pgErr) && pgErr.Code == outOfTurnCode {
		return nil, ErrOutOfTurn
	}
	if call.err != nil {
		return nil, call.err
	}
	return &PipeRows{fields: call.fields, types: call.types, rows: call.rows, next: -1}, nil
}

// PipeRows are a statement's answer, read like sql.Rows.
type PipeRows struct {
	fields []pgproto3.FieldDescription
	types  *pgtype.Map
	rows   [][][]byte
	next   int
}

// Next moves to the next row.
func (r *PipeRows) Next() bool {
	r.next++
	return r.next < len(r.rows)
}

// Scan copies the row's columns into dest.
func (r *PipeRows) Scan(dest ...any) error {
	row := r.rows[r.next]
	if len(dest) != len(row) || len(row) != len(r.fields) {
		return fmt.Errorf("pipe: %d destinations for %d columns", len(dest), len(row))
	}
	for i, d := range dest {
		if err := r.types.Scan(r.fields[i].DataTypeOID, pgtype.TextFormatCode, row[i], d); err != nil {
			return fmt.Errorf("pipe: column %s: %w", r.fields[i].Name, err)
		}
	}
	return nil
}

// Err is nil: the whole answer was read before Wait returned.
func (r *PipeRows) Err() error { return nil }

// Close does nothing, as with Err.
func (r *PipeRows) Close() error { return nil }

// close closes the connection, failing what is in flight.
func (p *Pipe) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if c := p.conn; c != nil {
		p.drop(c)
	}
}
