// Package executor runs approved moves through the Proxmox VE API, safely: every move passes a staged
// pipeline (precheck against the live API → idempotency against the journal → execute → follow the task →
// verify the guest's new place), each step journaled write-ahead in the store, so that a balancer killed at any
// point reconciles on start without repeating or forgetting a migration.
//
// Dry runs go through the same pipeline with a migrator that records instead of POSTing, so a dry run and a
// real run cannot diverge in what they check.
package executor
