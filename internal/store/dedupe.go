package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// WebhookKey identifies one Alertmanager notification of one alert: Alertmanager delivers at least once and HA
// pairs deliver twice, so the same key arriving again is a duplicate.
type WebhookKey struct {
	Fingerprint string
	StartsAt    time.Time
	// Status is "firing" or "resolved".
	Status string
}

func (k WebhookKey) bytes() []byte {
	return fmt.Appendf(nil, "%s\x00%s\x00%s", k.Fingerprint, k.StartsAt.UTC().Format(time.RFC3339Nano), k.Status)
}

// MarkWebhook records key until the given expiry and reports whether it is new. A key seen before and not
// yet expired (at now) is a duplicate: first is false and the stored expiry is kept.
func (s *Store) MarkWebhook(ctx context.Context, key WebhookKey, now, until time.Time) (first bool, err error) {
	if key.Fingerprint == "" {
		return false, fmt.Errorf("marking webhook: empty fingerprint")
	}
	k := key.bytes()
	err = s.update(ctx, "marking webhook "+key.Fingerprint, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDedupe)
		if v := b.Get(k); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > now.UnixNano() {
			return nil
		}
		first = true
		return b.Put(k, u64(uint64(until.UnixNano())))
	})
	return first, err
}

// sweepDedupe deletes keys whose expiry is at or before now.
func sweepDedupe(b *bolt.Bucket, now time.Time) (int, error) {
	var stale [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano() {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(stale), nil
}
