package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Maintenance marks a node as being emptied for maintenance: the planner sends nothing to it and evacuation
// plans move everything off it.
type Maintenance struct {
	Node   string    `json:"node"`
	By     string    `json:"by"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// SetMaintenance flags a node, replacing an earlier flag of the same node.
func (s *Store) SetMaintenance(ctx context.Context, m Maintenance) error {
	if m.Node == "" {
		return fmt.Errorf("setting maintenance: empty node name")
	}
	if m.Since.IsZero() {
		m.Since = s.now().UTC()
	}
	return s.update(ctx, "setting maintenance of node "+m.Node, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketMaintenance), []byte(m.Node), &m)
	})
}

// ClearMaintenance removes a node's flag and returns it; ok is false when the node was not flagged.
func (s *Store) ClearMaintenance(ctx context.Context, node string) (m Maintenance, ok bool, err error) {
	err = s.update(ctx, "clearing maintenance of node "+node, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMaintenance)
		if err := getJSON(b, []byte(node), &m); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		ok = true
		return b.Delete([]byte(node))
	})
	return m, ok, err
}

// Maintenance returns a node's flag; ok is false when the node is not flagged.
func (s *Store) Maintenance(ctx context.Context, node string) (m Maintenance, ok bool, err error) {
	err = s.view(ctx, "reading maintenance of node "+node, func(tx *bolt.Tx) error {
		err := getJSON(tx.Bucket(bucketMaintenance), []byte(node), &m)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		ok = err == nil
		return err
	})
	return m, ok, err
}

// MaintenanceNodes returns every flag, sorted by node name.
func (s *Store) MaintenanceNodes(ctx context.Context) ([]Maintenance, error) {
	var out []Maintenance
	err := s.view(ctx, "listing maintenance flags", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMaintenance)
		return b.ForEach(func(k, v []byte) error {
			var m Maintenance
			if err := decode(b, k, v, &m); err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	return out, err
}
