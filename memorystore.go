package amqprpc

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultMemoryStoreSize is the size of a [MemoryStore] made with
// NewMemoryStore(0): 64 MiB.
const DefaultMemoryStoreSize = 64 << 20

// memoryEntryOverhead is what an entry costs besides its key and reply, as
// a [MemoryStore] counts it: the entry, its list element and map slot.
const memoryEntryOverhead = 160

// MemoryStore is a [ReplyStore] in this process's memory, bounded in size,
// each entry dropped when its time is up. It covers the requests the broker
// delivers again to the same process: after a lost connection, or a server
// codec closed and opened again. A service of several instances needs a
// store they share (the module github.com/amqprpc/amqprpc/redisstore has
// one on Redis). When full, it forgets the entries written longest ago
// first.
type MemoryStore struct {
	max int
	now func() time.Time // time.Now; tests move it

	mu      sync.Mutex // guards entries, order and size
	entries map[string]*memoryEntry
	order   *list.List // of *memoryEntry, the least recently written first
	size    int        // the bytes counted for every entry
}

// memoryEntry is a claim (reply nil) or a stored reply.
type memoryEntry struct {
	key     string
	owner   string
	reply   *StoredReply
	expires time.Time
	size    int
	elem    *list.Element
}

// NewMemoryStore returns an empty MemoryStore that holds up to maxBytes of
// keys, replies and bookkeeping; below 1, [DefaultMemoryStoreSize].
func NewMemoryStore(maxBytes int) *MemoryStore {
	if maxBytes < 1 {
		maxBytes = DefaultMemoryStoreSize
	}
	return &MemoryStore{max: maxBytes, now: time.Now, entries: make(map[string]*memoryEntry), order: list.New()}
}

// Claim implements [ReplyStore].
func (m *MemoryStore) Claim(_ context.Context, key, owner string, lease time.Duration) (Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	e := m.live(key, now)
	switch {
	case e != nil && e.reply != nil:
		r := *e.reply
		r.Body = append([]byte(nil), e.reply.Body...)
		return Claim{Reply: &r}, nil
	case e != nil && e.owner != owner:
		return Claim{HeldBy: e.owner}, nil
	}
	m.write(&memoryEntry{key: key, owner: owner, expires: now.Add(lease), size: memoryEntryOverhead + len(key) + len(owner)})
	return Claim{}, nil
}

// Put implements [ReplyStore]. A reply larger than the whole store is not
// stored: Put returns an error.
func (m *MemoryStore) Put(_ context.Context, key string, reply StoredReply, ttl time.Duration) error {
	size := memoryEntryOverhead + len(key) + len(reply.ContentType) + len(reply.Body) + len(reply.Error)
	if size > m.max {
		return fmt.Errorf("amqprpc: memory store: a reply of %d bytes does not fit in %d", size, m.max)
	}
	reply.Body = append([]byte(nil), reply.Body...)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.write(&memoryEntry{key: key, reply: &reply, expires: m.now().Add(ttl), size: size})
	return nil
}

// Release implements [ReplyStore].
func (m *MemoryStore) Release(_ context.Context, key, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.live(key, m.now()); e != nil && e.reply == nil && e.owner == owner {
		m.remove(e)
	}
	return nil
}

// Len returns the number of entries held, claims and replies, expired ones
// not yet dropped included.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// live returns key's entry unless it has expired, which it drops. m.mu
// must be held.
func (m *MemoryStore) live(key string, now time.Time) *memoryEntry {
	e := m.entries[key]
	if e != nil && !now.Before(e.expires) {
		m.remove(e)
		return nil
	}
	return e
}

// write puts e in place of key's entry, as the most recently written, and
// drops the least recently written entries until the store fits (or e is
// all it holds). m.mu must be held.
func (m *MemoryStore) write(e *memoryEntry) {
	if old := m.entries[e.key]; old != nil {
		m.remove(old)
	}
	e.elem = m.order.PushBack(e)
	m.entries[e.key] = e
	m.size += e.size
	for m.size > m.max && m.order.Len() > 1 {
		m.remove(m.order.Front().Value.(*memoryEntry))
	}
}

// remove drops e. m.mu must be held.
func (m *MemoryStore) remove(e *memoryEntry) {
	m.order.Remove(e.elem)
	delete(m.entries, e.key)
	m.size -= e.size
}
