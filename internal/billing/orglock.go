package billing

import "sync"

// orgLocks serialises work on one organisation within this process without
// holding any database resource, so it may span a Stripe call. Entries live
// only while someone holds or waits for them.
type orgLocks struct {
	mu sync.Mutex
	m  map[string]*orgLock
}

type orgLock struct {
	mu      sync.Mutex
	holders int
}

// lock blocks until the organisation's lock is held and returns its unlock.
func (l *orgLocks) lock(orgID string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*orgLock{}
	}
	e := l.m[orgID]
	if e == nil {
		e = &orgLock{}
		l.m[orgID] = e
	}
	e.holders++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.holders--; e.holders == 0 {
			delete(l.m, orgID)
		}
		l.mu.Unlock()
	}
}
