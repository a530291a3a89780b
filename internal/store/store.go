package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors callers branch on; the errors returned wrap them with context.
var (
	// ErrLocked: another process holds the store file open.
	ErrLocked = errors.New("store locked by another process")
	// ErrCorrupt: the file is not a readable store (not bbolt, damaged pages, or undecodable records).
	ErrCorrupt = errors.New("store file is corrupt")
	// ErrNotFound: no record with that key.
	ErrNotFound = errors.New("not found")
	// ErrGuestBusy: the guest already has a migration in the journal that has not ended.
	ErrGuestBusy = errors.New("guest has an unfinished migration in the journal")
	// ErrFinal: the journal entry has already ended and cannot change.
	ErrFinal = errors.New("journal entry already final")
	// ErrInvalidTransition: a plan cannot go from its current state to the one asked for.
	ErrInvalidTransition = errors.New("invalid plan state transition")
)

// schemaVersion is written into new files; Open refuses files of a newer version.
const schemaVersion = 1

var (
	bucketMeta          = []byte("meta")
	bucketPlans         = []byte("plans")
	bucketApprovals     = []byte("approvals")
	bucketMaintenance   = []byte("maintenance")
	bucketJournal       = []byte("journal")
	bucketJournalActive = []byte("journal_active")
	bucketDedupe        = []byte("webhook_dedupe")
	keySchema           = []byte("schema_version")

	allBuckets = [][]byte{bucketMeta, bucketPlans, bucketApprovals, bucketMaintenance, bucketJournal,
		bucketJournalActive, bucketDedupe}
)

// Options tune Open.
type Options struct {
	// LockTimeout bounds the wait for the file lock; a store held by another process fails with ErrLocked
	// after it. Zero means 1 second.
	LockTimeout time.Duration
	// Now is the clock used for UpdatedAt stamps; nil means time.Now.
	Now func() time.Time
}

// Store is an open state file. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	now  func() time.Time
}

// Open opens or creates the store at path. A missing file is created; an existing one must be a store of a
// known schema version and pass bbolt's consistency check, else Open fails naming the path and leaves the file
// alone.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("opening store %s: is a directory", path)
	}
	db, err := openBolt(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, now: opts.Now}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// openBolt turns bbolt's failure modes into errors that say what is wrong with which file. bbolt can panic on
// some damaged pages; that is a corrupt file too, not a crash of the balancer.
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("opening store %s: %w: %v", path, ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("opening store %s: %w (gave up after %s)", path, ErrLocked, timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("opening store %s: %w: %v", path, ErrCorrupt, err)
	default:
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
}

// init checks the file's consistency and schema and creates missing buckets.
func (s *Store) init() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("opening store %s: %w: %v", s.path, ErrCorrupt, r)
		}
	}()
	err = s.db.View(func(tx *bolt.Tx) error {
		for cerr := range tx.Check() {
			return cerr
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("opening store %s: %w: %v", s.path, ErrCorrupt, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("creating bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keySchema)
		if v == nil {
			return meta.Put(keySchema, u64(schemaVersion))
		}
		if len(v) != 8 {
			return fmt.Errorf("%w: schema version record is %d bytes", ErrCorrupt, len(v))
		}
		if got := binary.BigEndian.Uint64(v); got > schemaVersion {
			return fmt.Errorf("schema version %d is newer than this balancer's %d", got, schemaVersion)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("opening store %s: %w", s.path, err)
	}
	return nil
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store %s: %w", s.path, err)
	}
	return nil
}

// update runs fn in a write transaction unless ctx is already done. bbolt transactions cannot be interrupted,
// but they are short.
func (s *Store) update(ctx context.Context, what string, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := s.db.Update(fn); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (s *Store) view(ctx context.Context, what string, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := s.db.View(fn); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	return b.Put(key, data)
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return ErrNotFound
	}
	return decode(b, key, data, v)
}

func decode(_ *bolt.Bucket, key, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: record %q: %v", ErrCorrupt, key, err)
	}
	return nil
}
